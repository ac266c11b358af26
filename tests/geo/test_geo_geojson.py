"""GeoJSON fence validation: every problem is found, named, and located by its JSON path."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest
import shapely

from geo import geojson
from geo.errors import GeoError, GeometryInvalid
from geo.models import FenceFeature, Problem
from tests.support.geo import circle, feature, polygon, polygon_feature

SQ = [[2.35, 48.85], [2.351, 48.85], [2.351, 48.851], [2.35, 48.851], [2.35, 48.85]]


def problems(data: Any) -> list[Problem]:
    with pytest.raises(GeometryInvalid) as caught:
        geojson.parse_feature(data)
    assert caught.value.problems, "GeometryInvalid without problems"
    return caught.value.problems


def attempt(data: Any) -> tuple[FenceFeature | None, list[Problem]]:
    try:
        return geojson.parse_feature(data), []
    except GeometryInvalid as exc:
        return None, exc.problems


def one(data: Any, code: str) -> Problem:
    found = [p for p in problems(data) if p.code == code]
    assert len(found) == 1, problems(data)
    return found[0]


# -- valid input ----------------------------------------------------------------------------


def test_polygon_feature_is_parsed() -> None:
    parsed = geojson.parse_feature(polygon_feature(SQ, name="front door"))
    assert parsed.kind == "polygon"
    assert parsed.radius_m is None
    assert parsed.geometry.equals(shapely.Polygon(SQ))
    assert parsed.properties == {"name": "front door"}


def test_point_with_radius_is_a_circle() -> None:
    parsed = geojson.parse_feature(
        feature({"type": "Point", "coordinates": [2.35, 48.85]}, radius_m=75)
    )
    assert parsed.kind == "circle"
    assert parsed.radius_m == 75.0
    assert parsed.geometry.equals(shapely.Point(2.35, 48.85))


def test_altitude_is_allowed_and_ignored() -> None:
    ring = [[*p, 35.0] for p in SQ]
    parsed = geojson.parse_feature(polygon_feature(ring))
    assert not parsed.geometry.has_z
    assert parsed.geometry.equals(shapely.Polygon(SQ))
    point = geojson.parse_feature(
        feature({"type": "Point", "coordinates": [2.35, 48.85, 12]}, radius_m=50)
    )
    assert not point.geometry.has_z


def test_polygon_with_hole_and_multipolygon_are_valid() -> None:
    shell = [[2.35, 48.85], [2.36, 48.85], [2.36, 48.86], [2.35, 48.86], [2.35, 48.85]]
    hole = [[2.352, 48.852], [2.352, 48.854], [2.354, 48.854], [2.352, 48.852]]
    assert geojson.parse_feature(polygon_feature(shell, hole)).geometry.interiors
    far = [[p[0] + 0.1, p[1]] for p in SQ]
    multi = feature({"type": "MultiPolygon", "coordinates": [[SQ], [far]]})
    assert geojson.parse_feature(multi).geometry.geom_type == "MultiPolygon"


def test_radius_bounds_are_inclusive() -> None:
    for radius in (geojson.MIN_RADIUS_M, geojson.MAX_RADIUS_M):
        data = feature({"type": "Point", "coordinates": [2.35, 48.85]}, radius_m=radius)
        assert geojson.parse_feature(data).radius_m == radius


def test_exactly_max_vertices_is_accepted() -> None:
    n = geojson.MAX_VERTICES - 1
    ring = [
        [2.35 + 0.01 * math.cos(2 * math.pi * k / n), 48.85 + 0.01 * math.sin(2 * math.pi * k / n)]
        for k in range(n)
    ]
    ring.append(ring[0])
    assert len(ring) == geojson.MAX_VERTICES
    geojson.parse_feature(polygon_feature(ring))


def test_round_trip_of_fences() -> None:
    fences = [
        circle(1, 2.35, 48.85, 120.0),
        polygon(2, shapely.Polygon(SQ)),
        polygon(
            3, shapely.MultiPolygon([shapely.Polygon(SQ), shapely.box(2.4, 48.8, 2.41, 48.81)])
        ),
    ]
    for fence in fences:
        data = geojson.fence_to_feature(fence)
        assert data["type"] == "Feature"
        assert data["id"] == fence.id
        parsed = geojson.parse_feature(data)
        assert parsed.kind == fence.kind
        assert parsed.radius_m == fence.radius_m
        assert parsed.geometry.equals(fence.geometry)
    assert geojson.fence_to_feature(fences[0])["geometry"] == {
        "type": "Point",
        "coordinates": [2.35, 48.85],
    }


# -- the document ---------------------------------------------------------------------------


def test_not_an_object() -> None:
    problem = one([2.35, 48.85], "wrong_type")
    assert problem.path == ""
    assert "Feature" in problem.message
    assert "array" in problem.message


def test_bare_geometry_is_not_a_feature() -> None:
    found = problems({"type": "Polygon", "coordinates": [SQ]})
    assert len(found) == 1
    assert found[0].path == "type"
    assert found[0].code == "not_a_feature"
    assert "not a GeoJSON Feature" in found[0].message
    assert "wrap the geometry in a Feature" in found[0].message


def test_missing_geometry() -> None:
    problem = one({"type": "Feature", "properties": {}}, "missing_geometry")
    assert problem.path == "geometry"
    assert "geometry is missing" in problem.message


def test_null_geometry() -> None:
    problem = one({"type": "Feature", "geometry": None, "properties": {}}, "missing_geometry")
    assert problem.path == "geometry"
    assert "geometry is null" in problem.message


def test_geometry_of_the_wrong_type() -> None:
    problem = one({"type": "Feature", "geometry": "POLYGON((0 0, 1 0, 1 1, 0 0))"}, "wrong_type")
    assert problem.path == "geometry"
    assert "geometry object" in problem.message
    assert "string" in problem.message


def test_unsupported_geometry_type() -> None:
    data = feature({"type": "LineString", "coordinates": SQ})
    problem = one(data, "unsupported_geometry")
    assert problem.path == "geometry.type"
    assert "'LineString'" in problem.message


def test_properties_of_the_wrong_type() -> None:
    data = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [SQ]},
        "properties": 7,
    }
    problem = one(data, "wrong_type")
    assert problem.path == "properties"
    assert "properties must be an object" in problem.message


def test_foreign_crs_is_refused() -> None:
    data = polygon_feature(SQ)
    data["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}
    problem = one(data, "unsupported_crs")
    assert problem.path == "crs"
    assert "WGS 84" in problem.message
    assert "3857" in problem.message


# -- coordinates and positions --------------------------------------------------------------


def test_coordinates_of_the_wrong_type() -> None:
    problem = one(feature({"type": "Polygon", "coordinates": "2.35 48.85"}), "wrong_type")
    assert problem.path == "geometry.coordinates"
    assert "array of rings" in problem.message


def test_missing_coordinates() -> None:
    problem = one(feature({"type": "Polygon"}), "missing_coordinates")
    assert problem.path == "geometry.coordinates"
    assert "null" in problem.message


def test_empty_polygon() -> None:
    problem = one(feature({"type": "Polygon", "coordinates": []}), "empty_geometry")
    assert problem.path == "geometry.coordinates"
    assert "at least one ring" in problem.message


def test_ring_of_the_wrong_type() -> None:
    problem = one(polygon_feature({"lon": 2.35}), "wrong_type")
    assert problem.path == "geometry.coordinates[0]"
    assert "ring must be an array" in problem.message


def test_position_of_the_wrong_type() -> None:
    ring: list[Any] = [*SQ]
    ring[2] = "2.351,48.851"
    problem = one(polygon_feature(ring), "wrong_type")
    assert problem.path == "geometry.coordinates[0][2]"
    assert "position must be an array" in problem.message


@pytest.mark.parametrize("position", [[2.35], [2.35, 48.85, 1.0, 2.0]])
def test_position_of_the_wrong_length(position: list[float]) -> None:
    data = feature({"type": "Point", "coordinates": position}, radius_m=50)
    problem = one(data, "wrong_position_length")
    assert problem.path == "geometry.coordinates"
    assert f"got {len(position)} numbers" in problem.message


def test_non_numeric_coordinate() -> None:
    ring: list[Any] = [list(p) for p in SQ]
    ring[1][0] = "2.351"
    problem = one(polygon_feature(ring), "not_a_number")
    assert problem.path == "geometry.coordinates[0][1][0]"
    assert "longitude must be a number" in problem.message
    assert "'2.351'" in problem.message


def test_boolean_is_not_a_number() -> None:
    data = feature({"type": "Point", "coordinates": [2.35, True]}, radius_m=50)
    problem = one(data, "not_a_number")
    assert problem.path == "geometry.coordinates[1]"
    assert "latitude must be a number" in problem.message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_coordinate(value: float) -> None:
    data = feature({"type": "Point", "coordinates": [2.35, value]}, radius_m=50)
    problem = one(data, "not_finite")
    assert problem.path == "geometry.coordinates[1]"
    assert "finite" in problem.message
    assert str(value) in problem.message


def test_integer_too_big_for_a_float() -> None:
    data = feature({"type": "Point", "coordinates": [10**400, 48.85]}, radius_m=10**30)
    found = problems(data)
    assert [(p.path, p.code) for p in found] == [
        ("geometry.coordinates[0]", "not_finite"),
        ("properties.radius_m", "radius_out_of_range"),
    ]
    assert "401-digit number" in found[0].message


def test_longitude_out_of_range() -> None:
    ring = [list(p) for p in SQ]
    ring[2] = [182.5, 48.851]
    problem = one(polygon_feature(ring), "longitude_out_of_range")
    assert problem.path == "geometry.coordinates[0][2][0]"
    assert "longitude 182.5 is outside [-180, 180]" in problem.message


def test_latitude_out_of_range() -> None:
    data = feature({"type": "Point", "coordinates": [120.0, 95.0]}, radius_m=50)
    problem = one(data, "latitude_out_of_range")
    assert problem.path == "geometry.coordinates[1]"
    assert "latitude 95 is outside [-90, 90]" in problem.message


def test_swapped_coordinates() -> None:
    # Tokyo written as [lat, lon].
    data = feature({"type": "Point", "coordinates": [35.68, 139.76]}, radius_m=50)
    problem = one(data, "swapped_coordinates")
    assert problem.path == "geometry.coordinates"
    assert "looks like [lat, lon]; GeoJSON order is [lon, lat]" in problem.message
    assert "[35.68, 139.76]" in problem.message


# -- rings and topology ---------------------------------------------------------------------


def test_ring_not_closed() -> None:
    ring = [*SQ[:-1], [2.3501, 48.85]]
    problem = one(polygon_feature(ring), "ring_not_closed")
    assert problem.path == "geometry.coordinates[0][4]"
    assert "not closed" in problem.message
    assert "repeat the first position" in problem.message


def test_ring_too_short() -> None:
    ring = [SQ[0], SQ[1], SQ[0]]
    problem = one(polygon_feature(ring), "ring_too_short")
    assert problem.path == "geometry.coordinates[0]"
    assert "3 positions" in problem.message
    assert "at least 4" in problem.message


def test_ring_without_area() -> None:
    ring = [[2.35, 48.85], [2.36, 48.85], [2.37, 48.85], [2.35, 48.85]]
    problem = one(polygon_feature(ring), "ring_degenerate")
    assert problem.path == "geometry.coordinates[0]"
    assert "encloses no area" in problem.message


def test_self_intersection_says_where() -> None:
    bow_tie = [[2.35, 48.85], [2.36, 48.86], [2.36, 48.85], [2.35, 48.86], [2.35, 48.85]]
    problem = one(polygon_feature(bow_tie), "self_intersection")
    assert problem.path == "geometry.coordinates[0][0]"
    assert "intersects itself at [2.355, 48.855]" in problem.message
    assert "positions 0-1, 2-3" in problem.message


def test_every_self_intersection_is_reported() -> None:
    # A ring crossing itself twice: a zigzag with two crossings.
    ring = [
        [0.0, 0.0],
        [4.0, 0.0],
        [4.0, 2.0],
        [3.0, -1.0],
        [2.0, 2.0],
        [1.0, -1.0],
        [0.0, 2.0],
        [0.0, 0.0],
    ]
    found = [p for p in problems(polygon_feature(ring)) if p.code == "self_intersection"]
    assert len(found) >= 2
    assert all(p.path.startswith("geometry.coordinates[0][") for p in found)


def test_scribbled_ring_lists_the_first_crossings_and_counts_them_all() -> None:
    rng = random.Random(7)
    ring = [[rng.uniform(2.35, 2.36), rng.uniform(48.85, 48.86)] for _ in range(300)]
    ring.append(ring[0])
    found = problems(polygon_feature(ring))
    assert all(p.code == "self_intersection" for p in found)
    assert len(found) == 21
    assert found[-1].path == "geometry.coordinates[0]"
    assert "only the first 20 are listed" in found[-1].message


def test_hole_outside_the_shell() -> None:
    shell = [[2.35, 48.85], [2.36, 48.85], [2.36, 48.86], [2.35, 48.86], [2.35, 48.85]]
    hole = [[2.37, 48.85], [2.38, 48.85], [2.38, 48.86], [2.37, 48.85]]
    problem = one(polygon_feature(shell, hole), "hole_outside_shell")
    assert problem.path == "geometry.coordinates[1]"
    assert "lies outside the outer ring" in problem.message


def test_hole_crossing_the_shell() -> None:
    shell = [[2.35, 48.85], [2.36, 48.85], [2.36, 48.86], [2.35, 48.86], [2.35, 48.85]]
    hole = [[2.355, 48.852], [2.365, 48.852], [2.365, 48.854], [2.355, 48.852]]
    problem = one(polygon_feature(shell, hole), "hole_outside_shell")
    assert problem.path == "geometry.coordinates[1]"
    assert "reaches outside the outer ring" in problem.message
    assert "[2.36, 48.852]" in problem.message


def test_nested_holes_fall_back_to_the_geos_reason() -> None:
    shell = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [0.0, 0.0]]
    hole = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 0.5]]
    inner = [[0.6, 0.6], [0.9, 0.6], [0.9, 0.8], [0.6, 0.6]]
    problem = one(polygon_feature(shell, hole, inner), "invalid_polygon")
    assert problem.path == "geometry.coordinates"
    assert "nested" in problem.message.lower()
    assert "[0.6, 0.6]" in problem.message


def test_antimeridian_crossing() -> None:
    ring = [[179.9, -16.0], [-179.9, -16.0], [-179.9, -16.1], [179.9, -16.1], [179.9, -16.0]]
    found = [p for p in problems(polygon_feature(ring)) if p.code == "crosses_antimeridian"]
    assert [p.path for p in found] == ["geometry.coordinates[0][1]", "geometry.coordinates[0][3]"]
    assert "antimeridian" in found[0].message
    assert "RFC 7946 section 3.1.9" in found[0].message
    assert "split" in found[0].message


def test_too_many_vertices() -> None:
    n = geojson.MAX_VERTICES
    ring = [
        [2.35 + 0.01 * math.cos(2 * math.pi * k / n), 48.85 + 0.01 * math.sin(2 * math.pi * k / n)]
        for k in range(n)
    ]
    ring.append(ring[0])
    problem = one(polygon_feature(ring), "too_many_vertices")
    assert problem.path == "geometry.coordinates"
    assert f"{n + 1} positions" in problem.message
    assert f"at most {geojson.MAX_VERTICES}" in problem.message


def test_far_too_many_vertices_are_not_checked_one_by_one() -> None:
    ring: list[Any] = [["x", 48.85]] * (20 * geojson.MAX_VERTICES)
    assert [p.code for p in problems(polygon_feature(ring))] == ["too_many_vertices"]


def test_overlapping_parts_of_a_multipolygon() -> None:
    other = [[2.3505, 48.8505], [2.36, 48.8505], [2.36, 48.86], [2.3505, 48.8505]]
    data = feature({"type": "MultiPolygon", "coordinates": [[SQ], [other]]})
    problem = one(data, "polygons_overlap")
    assert problem.path == "geometry.coordinates[1]"
    assert "overlap" in problem.message


def test_multipolygon_parts_sharing_an_edge() -> None:
    right = [[p[0] + 0.001, p[1]] for p in SQ]
    data = feature({"type": "MultiPolygon", "coordinates": [[SQ], [right]]})
    problem = one(data, "polygons_overlap")
    assert "share an edge" in problem.message


def test_multipolygon_paths_name_the_part() -> None:
    bad: list[Any] = [list(p) for p in SQ]
    bad[3] = [2.35, "x"]
    data = feature({"type": "MultiPolygon", "coordinates": [[SQ], [bad]]})
    problem = one(data, "not_a_number")
    assert problem.path == "geometry.coordinates[1][0][3][1]"


# -- circles --------------------------------------------------------------------------------


def test_radius_missing() -> None:
    problem = one(feature({"type": "Point", "coordinates": [2.35, 48.85]}), "radius_missing")
    assert problem.path == "properties.radius_m"
    assert "needs properties.radius_m" in problem.message


@pytest.mark.parametrize("radius", [9.99, 0, -5, 10_000.5])
def test_radius_out_of_range(radius: float) -> None:
    data = feature({"type": "Point", "coordinates": [2.35, 48.85]}, radius_m=radius)
    problem = one(data, "radius_out_of_range")
    assert problem.path == "properties.radius_m"
    assert "between 10 and 10000 metres" in problem.message


def test_radius_not_a_number() -> None:
    data = feature({"type": "Point", "coordinates": [2.35, 48.85]}, radius_m="50")
    problem = one(data, "radius_not_number")
    assert problem.path == "properties.radius_m"
    assert "'50'" in problem.message


def test_radius_not_finite() -> None:
    data = feature({"type": "Point", "coordinates": [2.35, 48.85]}, radius_m=math.nan)
    problem = one(data, "radius_not_finite")
    assert "finite" in problem.message


def test_radius_on_a_polygon() -> None:
    problem = one(polygon_feature(SQ, radius_m=50), "radius_not_allowed")
    assert problem.path == "properties.radius_m"
    assert "only applies to a Point" in problem.message


# -- all problems at once, collections ------------------------------------------------------


def test_all_problems_are_collected() -> None:
    data = feature({"type": "Point", "coordinates": [35.68, 139.76]}, radius_m=5)
    codes = {p.code for p in problems(data)}
    assert codes == {"swapped_coordinates", "radius_out_of_range"}
    ring = [[2.35, 48.85], [2.36, "x"], [2.36, 48.86], [200.0, 48.86]]
    codes = {p.code for p in problems(polygon_feature(ring))}
    assert codes == {"not_a_number", "longitude_out_of_range"}


def test_error_is_a_geo_error_with_a_summary() -> None:
    with pytest.raises(GeoError) as caught:
        geojson.parse_feature(feature({"type": "Point", "coordinates": [35.68, 139.76]}))
    assert "geometry.coordinates" in str(caught.value)
    assert "(and 1 more)" in str(caught.value)


def test_feature_collection_paths() -> None:
    good = polygon_feature(SQ)
    bad_ring = [list(p) for p in SQ]
    bad_ring[2] = [2.351, 95.5]
    collection = {
        "type": "FeatureCollection",
        "features": [good, good, good, polygon_feature(bad_ring), "nope"],
    }
    with pytest.raises(GeometryInvalid) as caught:
        geojson.parse_feature_collection(collection)
    paths = [p.path for p in caught.value.problems]
    assert paths == ["features[3].geometry.coordinates[0][2]", "features[4]"]
    parsed = geojson.parse_feature_collection({"type": "FeatureCollection", "features": [good]})
    assert [f.kind for f in parsed] == ["polygon"]


def test_feature_collection_shape() -> None:
    with pytest.raises(GeometryInvalid) as caught:
        geojson.parse_feature_collection({"type": "Feature", "features": {}})
    assert [p.path for p in caught.value.problems] == ["type", "features"]
    with pytest.raises(GeometryInvalid) as caught:
        geojson.parse_feature_collection(None)
    assert caught.value.problems[0].path == ""
    assert geojson.parse_feature_collection({"type": "FeatureCollection", "features": []}) == []


def test_feature_collection_sent_as_a_feature() -> None:
    found = problems({"type": "FeatureCollection", "features": []})
    assert [p.code for p in found] == ["not_a_feature"]
    assert "FeatureCollection import" in found[0].message


# -- nothing invalid comes out as valid -----------------------------------------------------


def test_random_rings_are_either_refused_or_truly_valid() -> None:
    rng = random.Random(20260504)
    accepted = refused = 0
    for _ in range(400):
        n = rng.randint(3, 9)
        ring: list[Any] = [
            [rng.choice([2.35, 2.351, 2.352, 179.99, -179.99, 185.0]), rng.uniform(48.85, 48.86)]
            if rng.random() < 0.1
            else [rng.uniform(2.35, 2.36), rng.uniform(48.85, 48.86)]
            for _ in range(n)
        ]
        if rng.random() < 0.9:
            ring.append(list(ring[0]))
        if rng.random() < 0.05:
            ring[rng.randrange(len(ring))] = [math.nan, 48.85]
        parsed, found = attempt(polygon_feature(ring))
        if parsed is None:
            refused += 1
            assert found
            assert all(p.path.startswith("geometry.coordinates") and p.message for p in found)
            continue
        accepted += 1
        shape = parsed.geometry
        assert shape.is_valid, shapely.is_valid_reason(shape)
        assert shape.area > 0
        lons = [x for x, _ in shape.exterior.coords]
        assert all(-180.0 <= x <= 180.0 for x in lons)
        assert max(abs(a - b) for a, b in itertools.pairwise(lons)) <= 180.0
    assert accepted > 20
    assert refused > 100
