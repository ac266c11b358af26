"""Distances in metres: haversine, metre bounding boxes at any latitude, polygon distance."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import shapely

from geo import distance
from tests.support.geo import destination

M_PER_DEG = 6_371_008.8 * math.pi / 180.0


def test_haversine_known_values() -> None:
    assert distance.haversine_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(M_PER_DEG, rel=1e-12)
    assert distance.haversine_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(M_PER_DEG, rel=1e-12)
    # A short east-west hop at 60°N is half as long as at the equator.
    assert distance.haversine_m(10.0, 60.0, 10.001, 60.0) == pytest.approx(
        0.001 * M_PER_DEG * 0.5, rel=1e-6
    )
    # Across the antimeridian the short way round.
    assert distance.haversine_m(179.9995, 0.0, -179.9995, 0.0) == pytest.approx(
        0.001 * M_PER_DEG, rel=1e-6
    )
    assert distance.haversine_m(0.0, 0.0, 180.0, 0.0) == pytest.approx(math.pi * 6_371_008.8)


def test_haversine_array_matches_scalar() -> None:
    rng = np.random.default_rng(1)
    lon1, lon2 = rng.uniform(-180, 180, (2, 200))
    lat1, lat2 = rng.uniform(-90, 90, (2, 200))
    got = distance.haversine_m_array(lon1, lat1, lon2, lat2)
    want = [distance.haversine_m(*args) for args in zip(lon1, lat1, lon2, lat2, strict=True)]
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("lat", [0.0, 45.0, 60.0, 80.0, -72.5, 89.0])
def test_bbox_contains_the_whole_circle(lat: float) -> None:
    metres = 5_000.0
    west, south, east, north = distance.bbox_around(10.0, lat, metres)
    for bearing in range(0, 360, 3):
        lon_b, lat_b = destination(10.0, lat, bearing, metres)
        assert west - 1e-9 <= lon_b <= east + 1e-9
        assert south - 1e-9 <= lat_b <= north + 1e-9
    # Tight: the circle reaches the north and south edges and (almost) the east edge.
    assert north - lat == pytest.approx(metres / M_PER_DEG)
    reach_east = max(destination(10.0, lat, b / 10, metres)[0] for b in range(0, 1800))
    assert east == pytest.approx(reach_east, abs=1e-6)


def test_bbox_is_wider_than_the_naive_cosine_rule_at_high_latitude() -> None:
    west, _, east, _ = distance.bbox_around(0.0, 80.0, 10_000.0)
    naive = 10_000.0 / M_PER_DEG / math.cos(math.radians(80.0))
    assert east > naive
    assert west == -east


def test_bbox_near_the_pole_spans_all_longitudes() -> None:
    west, south, east, north = distance.bbox_around(33.0, 89.99, 2_000.0)
    assert (west, east, north) == (-180.0, 180.0, 90.0)
    assert south == pytest.approx(89.99 - 2_000.0 / M_PER_DEG)
    assert distance.bbox_around(0.0, -90.0, 10.0)[::2] == (-180.0, 180.0)


def test_bbox_across_the_antimeridian_has_west_greater_than_east() -> None:
    west, _, east, _ = distance.bbox_around(179.9999, 0.0, 100.0)
    assert west > east
    assert west == pytest.approx(179.9999 - 100.0 / M_PER_DEG)
    assert east == pytest.approx(-180.0 + (179.9999 + 100.0 / M_PER_DEG - 180.0))


def test_bbox_array_matches_scalar() -> None:
    rng = random.Random(5)
    points = [
        (rng.uniform(-180, 180), rng.uniform(-90, 90), rng.uniform(0, 50_000)) for _ in range(300)
    ]
    points += [(179.9999, 0.0, 100.0), (-179.9999, 10.0, 100.0), (0.0, 89.999, 500.0)]
    lon, lat, m = (np.array(v) for v in zip(*points, strict=True))
    arrays = distance.bbox_around_array(lon, lat, m)
    for k, (lo, la, me) in enumerate(points):
        assert tuple(a[k] for a in arrays) == pytest.approx(distance.bbox_around(lo, la, me))


def test_polygon_distance_to_an_edge_at_the_equator() -> None:
    square = shapely.box(0.0, 0.0, 0.001, 0.001)
    # 0.0005° east of the east edge, level with its middle.
    got = distance.polygon_distance_m(square, 0.0015, 0.0005)
    assert got == pytest.approx(0.0005 * M_PER_DEG, rel=1e-6)


def test_polygon_distance_uses_metres_not_degrees_at_60n() -> None:
    square = shapely.box(10.0, 60.0, 10.001, 60.001)
    east = distance.polygon_distance_m(square, 10.002, 60.0005)
    north = distance.polygon_distance_m(square, 10.0005, 60.002)
    # One thousandth of a degree: ~55.6 m of longitude at 60°N but ~111.2 m of latitude.
    assert east == pytest.approx(0.001 * M_PER_DEG * math.cos(math.radians(60.0005)), rel=1e-4)
    assert north == pytest.approx(0.001 * M_PER_DEG, rel=1e-6)
    # Diagonal from the north-east corner: Pythagoras in metres.
    corner = distance.polygon_distance_m(square, 10.002, 60.002)
    dx = 0.001 * M_PER_DEG * math.cos(math.radians(60.002))
    assert corner == pytest.approx(math.hypot(dx, 0.001 * M_PER_DEG), rel=1e-4)


def test_polygon_distance_inside_on_edge_and_in_a_hole() -> None:
    shell = [(0.0, 0.0), (0.01, 0.0), (0.01, 0.01), (0.0, 0.01)]
    hole = [(0.004, 0.004), (0.006, 0.004), (0.006, 0.006), (0.004, 0.006)]
    ring = shapely.Polygon(shell, [hole])
    assert distance.polygon_distance_m(ring, 0.002, 0.002) == 0.0
    assert distance.polygon_distance_m(ring, 0.01, 0.005) == 0.0
    # The middle of the hole is 0.001° from the hole's edges.
    assert distance.polygon_distance_m(ring, 0.005, 0.005) == pytest.approx(
        0.001 * M_PER_DEG, rel=1e-6
    )


def test_polygon_distance_across_the_antimeridian() -> None:
    east_side = shapely.box(-180.0, 0.0, -179.999, 0.001)
    assert distance.polygon_distance_m(east_side, 179.9995, 0.0005) == pytest.approx(
        0.0005 * M_PER_DEG, rel=1e-6
    )
