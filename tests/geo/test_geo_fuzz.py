"""Property-based fuzzing of the geometry input (hypothesis): any JSON value, GeoJSON-ish
documents with broken parts, and degenerate polygons either parse into a valid fence or
raise GeometryInvalid whose problems each name a path and a code; nothing else escapes,
and nothing invalid is ever accepted."""

from __future__ import annotations

import math
from typing import Any

import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo import geojson
from geo.errors import GeometryInvalid

FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
coordinate = st.floats(min_value=-200, max_value=200) | st.sampled_from(
    [math.nan, math.inf, -math.inf, 180.0, -180.0, 90.0, -90.0, 180.0000001]
)
near = st.floats(min_value=-0.001, max_value=0.001, allow_nan=False)
position = st.lists(coordinate, min_size=0, max_size=4) | json_values


def _feature(geometry: Any, properties: Any = None) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"name": "f"} if properties is None else properties,
    }


def _outcome(data: object) -> object:
    try:
        feature = geojson.parse_feature(data)
    except GeometryInvalid as exc:
        refused = exc
    else:
        refused = None
    if refused is not None:
        assert refused.problems, "a refusal says what is wrong"
        assert all(p.code and p.message for p in refused.problems)
        return refused
    # Accepted: it must really be a usable fence.
    geom = feature.geometry
    assert shapely.is_valid(geom), shapely.is_valid_reason(geom)
    if feature.kind == "circle":
        assert feature.radius_m is not None and 10 <= feature.radius_m <= 10_000
        assert -180 <= geom.x <= 180 and -90 <= geom.y <= 90
    else:
        assert geom.area > 0
        minx, miny, maxx, maxy = geom.bounds
        assert -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
    return feature


@FUZZ
@given(json_values)
def test_any_json_value_is_parsed_or_refused_with_problems(value: object) -> None:
    _outcome(value)
    _outcome(_feature(value))


@FUZZ
@given(
    st.sampled_from(["Point", "Polygon", "MultiPolygon", "LineString", "point", None, 7]),
    st.lists(position, max_size=6) | json_values,
    json_values | st.fixed_dictionaries({"radius_m": json_values, "name": st.text(max_size=4)}),
)
def test_malformed_geojson_is_refused_with_problems(
    kind: Any, coordinates: Any, properties: Any
) -> None:
    _outcome(_feature({"type": kind, "coordinates": coordinates}, properties))


@FUZZ
@given(st.lists(st.tuples(near, near), min_size=0, max_size=8), st.booleans())
def test_degenerate_polygons_are_refused_or_valid(offsets: list[Any], close: bool) -> None:
    """Tiny, collinear, repeated, unclosed and self-crossing rings around one spot."""
    ring = [[2.35 + dx, 48.85 + dy] for dx, dy in offsets]
    if close and ring:
        ring.append(list(ring[0]))
    outcome = _outcome(_feature({"type": "Polygon", "coordinates": [ring]}))
    if not isinstance(outcome, GeometryInvalid):
        assert len(ring) >= 4 and ring[0] == ring[-1]


@FUZZ
@given(st.floats(allow_nan=True, allow_infinity=True), coordinate, coordinate)
def test_circles_outside_the_limits_are_refused(radius: float, lon: float, lat: float) -> None:
    outcome = _outcome(
        _feature({"type": "Point", "coordinates": [lon, lat]}, {"name": "c", "radius_m": radius})
    )
    ok = (
        math.isfinite(radius)
        and 10 <= radius <= 10_000
        and math.isfinite(lon)
        and math.isfinite(lat)
        and -180 <= lon <= 180
        and -90 <= lat <= 90
    )
    assert isinstance(outcome, GeometryInvalid) != ok
