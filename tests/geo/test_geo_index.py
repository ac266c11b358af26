"""The fence index: exact metre matches, equal to brute force, and scoped to one merchant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from geo import distance
from geo.index import FenceIndex
from geo.models import Fence
from tests.support.geo import circle, offset_ellipsoid, polygon, square


def brute_force(
    fences: list[Fence], lon: float, lat: float, reach: float, merchant: int
) -> dict[int, float]:
    out = {}
    for f in fences:
        if f.merchant_id != merchant:
            continue
        if f.kind == "circle":
            assert f.radius_m is not None
            d = distance.haversine_m(lon, lat, f.geometry.x, f.geometry.y) - f.radius_m
            d = max(d, 0.0)
        else:
            d = distance.polygon_distance_m(f.geometry, lon, lat)
        if d <= reach:
            out[f.id] = d
    return out


def random_fences(rng: np.random.Generator, n: int, lon: float, lat: float) -> list[Fence]:
    fences: list[Fence] = []
    for i in range(1, n + 1):
        clon, clat = offset_ellipsoid(lon, lat, *rng.uniform(-1_500, 1_500, 2))
        merchant = int(rng.integers(1, 4))
        kind = rng.random()
        if kind < 0.7:
            fences.append(circle(i, clon, clat, float(rng.uniform(10, 300)), merchant))
            continue
        corners = int(rng.integers(5, 40))
        angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
        radii = rng.uniform(15, 150, corners)
        ring = [
            offset_ellipsoid(clon, clat, r * math.cos(a), r * math.sin(a))
            for a, r in zip(angles, radii, strict=True)
        ]
        shape = shapely.Polygon(ring)
        if not shape.is_valid:
            shape = shape.convex_hull
        if kind > 0.9:
            # A polygon with a hole, plus a second part: a MultiPolygon.
            hole = shapely.Point(clon, clat).buffer(0.00005, quad_segs=3)
            if shape.contains(hole):
                shape = shapely.Polygon(shape.exterior.coords, [hole.exterior.coords])
            far = shapely.box(clon + 0.01, clat, clon + 0.011, clat + 0.001)
            shape = shapely.MultiPolygon([shape, far])
        fences.append(polygon(i, shape, merchant))
    return fences


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_match_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lon0, lat0 = (2.35, 48.85) if seed != 3 else (18.07, 59.33)
    fences = random_fences(rng, 400, lon0, lat0)
    index = FenceIndex.build(fences)
    n = 300
    lons, lats = np.transpose(
        [offset_ellipsoid(lon0, lat0, *rng.uniform(-1_800, 1_800, 2)) for _ in range(n)]
    )
    accuracy = rng.uniform(0, 120, n)
    merchants = rng.integers(1, 5, n)  # merchant 4 has no fences
    batch = index.match_many(lons, lats, accuracy, merchants, margin_m=20.0).to_dicts()
    total = 0
    for k in range(n):
        want = brute_force(fences, lons[k], lats[k], accuracy[k] + 20.0, int(merchants[k]))
        got = index.match(lons[k], lats[k], accuracy[k], int(merchants[k]), margin_m=20.0)
        assert got.keys() == want.keys() == batch[k].keys()
        for fence_id, d in want.items():
            assert got[fence_id] == pytest.approx(d, abs=1e-6)
            assert batch[k][fence_id] == pytest.approx(d, abs=1e-6)
        total += len(want)
    assert total > 100  # the test means something only if fences do match


def test_merchant_filtering() -> None:
    fences = [
        circle(1, 2.35, 48.85, 100, merchant_id=7),
        circle(2, 2.35, 48.85, 100, merchant_id=8),
    ]
    index = FenceIndex.build(fences)
    assert index.match(2.35, 48.85, 10, 7) == {1: 0.0}
    assert index.match(2.35, 48.85, 10, 8) == {2: 0.0}
    assert index.match(2.35, 48.85, 10, 9) == {}
    batch = index.match_many([2.35, 2.35, 2.35], [48.85] * 3, 10.0, [7, 8, 9])
    assert batch.to_dicts() == [{1: 0.0}, {2: 0.0}, {}]


@pytest.mark.parametrize("lat", [0.0, 60.0])
def test_circle_is_a_true_metre_circle(lat: float) -> None:
    radius = 100.0
    index = FenceIndex.build([circle(1, 10.0, lat, radius)])
    for bearing in range(0, 360, 15):
        east = math.sin(math.radians(bearing))
        north = math.cos(math.radians(bearing))
        inside = offset_ellipsoid(10.0, lat, (radius - 1) * east, (radius - 1) * north)
        outside = offset_ellipsoid(10.0, lat, (radius + 1) * east, (radius + 1) * north)
        assert index.match(*inside, 0.0, 1) == {1: 0.0}
        assert index.match(*outside, 0.0, 1) == {}
        d = index.match(*outside, 3.0, 1)[1]
        assert 0.0 < d < 2.0
    # At 60°N the circle spans twice as many degrees of longitude as of latitude.
    if lat == 60.0:
        lon_edge = offset_ellipsoid(10.0, lat, radius - 1, 0.0)[0] - 10.0
        lat_edge = offset_ellipsoid(10.0, lat, 0.0, radius - 1)[1] - lat
        assert lon_edge / lat_edge == pytest.approx(2.0, rel=0.01)


def test_polygon_distance_in_metres() -> None:
    # A ~100 m square at 60°N; a point 50 m east of its east edge, halfway up.
    sq = square(10.0, 60.0, 100.0)
    index = FenceIndex.build([polygon(5, sq)])
    west, south, east, north = sq.bounds
    lon, lat = offset_ellipsoid(east, (south + north) / 2, 50.0, 0.0)
    got = index.match(lon, lat, 60.0, 1)[5]
    assert got == pytest.approx(50.0, abs=0.25)  # sphere vs WGS 84: within 0.5 %
    assert got == pytest.approx(distance.polygon_distance_m(sq, lon, lat), abs=1e-6)
    assert index.match(lon, lat, 45.0, 1) == {}
    assert index.match((west + east) / 2, (south + north) / 2, 0.0, 1) == {5: 0.0}


def test_holes_and_parts_one_ping_at_a_time_and_in_batches() -> None:
    """Inside a hole is outside, measured to the hole's ring; inside the second part of
    a multipolygon is inside; on the way in between, the nearest ring counts."""
    lon0, lat0 = 2.35, 48.85
    outer = square(*offset_ellipsoid(lon0, lat0, -200.0, -200.0), 400.0)
    hole = square(*offset_ellipsoid(lon0, lat0, -50.0, -50.0), 100.0)
    ring = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    part = square(*offset_ellipsoid(lon0, lat0, 900.0, -100.0), 200.0)
    shape = shapely.MultiPolygon([ring, part])
    index = FenceIndex.build([polygon(7, shape)])
    cases = [
        ((0.0, 0.0), 50.0),  # the hole's centre: 50 m from its edge
        ((30.0, 0.0), 20.0),
        ((120.0, 0.0), 0.0),  # in the ring
        ((1_000.0, 50.0), 0.0),  # in the second part
        ((850.0, 0.0), 50.0),  # between the two: nearer the second part
    ]
    for (east, north), want in cases:
        lon, lat = offset_ellipsoid(lon0, lat0, east, north)
        reference = distance.polygon_distance_m(shape, lon, lat)
        assert reference == pytest.approx(want, abs=0.5)
        got = index.match(lon, lat, 60.0, 1)
        assert got == {7: pytest.approx(reference, abs=1e-6)}
        assert index.match_many([lon], [lat], [60.0], [1]).to_dicts()[0] == got


def test_matches_across_the_antimeridian() -> None:
    fences = [
        circle(1, 179.9995, 0.0, 50.0),
        polygon(2, shapely.box(179.999, 0.001, 180.0, 0.002)),
    ]
    index = FenceIndex.build(fences)
    lon, lat = -179.9995, 0.0005
    want = brute_force(fences, lon, lat, 100.0, 1)
    assert set(want) == {1, 2}
    got = index.match(lon, lat, 100.0, 1)
    assert got == pytest.approx(want, abs=1e-6)
    assert index.match_many([lon], [lat], [100.0], [1]).to_dicts()[0] == pytest.approx(
        want, abs=1e-6
    )


def test_circle_around_the_pole() -> None:
    index = FenceIndex.build([circle(1, 0.0, 89.9995, 200.0)])
    assert index.match(120.0, 89.9995, 10.0, 1) == {1: 0.0}
    assert index.match_many([-150.0], [89.9999], [5.0], [1]).to_dicts() == [{1: 0.0}]


def test_batch_matches_layout() -> None:
    fences = [circle(i, 2.35 + i * 0.0001, 48.85, 50, 1) for i in (3, 1, 2)]
    index = FenceIndex.build(fences)
    batch = index.match_many([2.35, 10.0, 2.3502], [48.85, 10.0, 48.85], [5.0, 5.0, 5.0], 1)
    assert batch.n_pings == 3
    assert batch.ping.tolist() == [0, 0, 0, 2, 2, 2]
    assert batch.fence_id.tolist() == [1, 2, 3, 1, 2, 3]
    assert (batch.distance_m == 0.0).all()
    empty = FenceIndex.build([]).match_many([2.35], [48.85], [5.0], [1])
    assert empty.to_dicts() == [{}]


def test_len_get_and_fences() -> None:
    fences = [circle(1, 2.35, 48.85, 50, 2), polygon(2, square(2.35, 48.85, 30), 1)]
    index = FenceIndex.build(iter(fences))
    assert len(index) == 2
    assert index.get(2) is fences[1]
    assert index.get(99) is None
    assert index.fences() == tuple(fences)
    assert len(FenceIndex.build([])) == 0
    assert FenceIndex.build([]).match(2.35, 48.85, 10, 1) == {}


def test_snapshot_arrays_are_read_only() -> None:
    index = FenceIndex.build([circle(1, 2.35, 48.85, 50)])
    with pytest.raises(ValueError, match="read-only"):
        index._radius[0] = 1.0


def test_bad_fences_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        FenceIndex.build([circle(1, 2.35, 48.85, 50), circle(1, 2.36, 48.85, 50)])
    with pytest.raises(ValueError, match="fence 4"):
        FenceIndex.build([circle(4, 2.35, 48.85, 0.0)])
    with pytest.raises(ValueError, match="fence 5"):
        FenceIndex.build([polygon(5, shapely.Point(2.35, 48.85))])
    with pytest.raises(ValueError, match="shapely geometry"):
        FenceIndex.build([polygon(6, "POLYGON EMPTY")])
