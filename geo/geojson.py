"""Parse and validate geofences submitted as GeoJSON (RFC 7946), and serialise fences back.

A fence is a Feature whose geometry is a Polygon or MultiPolygon in [lon, lat], or a Point
with `properties.radius_m` (a true metre circle). Validation reports every problem it finds,
each with the JSON path where it is, so a store manager can fix them all in one go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import shapely

from geo import polygons, positions
from geo.errors import GeometryInvalid
from geo.models import Fence, FenceFeature, Problem

MAX_VERTICES = polygons.MAX_VERTICES

MIN_RADIUS_M = 10.0
"""Smallest circle radius: below this, phone location noise decides enter and exit."""

MAX_RADIUS_M = 10_000.0
"""Largest circle radius; beyond it a geofence stops meaning "at this store"."""

_POLYGON_TYPES = ("Polygon", "MultiPolygon")
_GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)
# WGS 84 lon/lat names that GeoJSON 2008 producers still write into a "crs" member.
_LONLAT_CRS_NAMES = (
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326",
)


def parse_feature(data: object, *, path: str = "") -> FenceFeature:
    """Validate one GeoJSON Feature; raise `GeometryInvalid` listing every problem."""
    feature, problems = _check_feature(data, path)
    if problems or feature is None:
        raise GeometryInvalid(problems)
    return feature


def parse_feature_collection(data: object) -> list[FenceFeature]:
    """Validate a FeatureCollection of fences; problems carry paths like `features[3]...`."""
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        raise GeometryInvalid([positions.not_object("", data, "a GeoJSON FeatureCollection")])
    if data.get("type") != "FeatureCollection":
        problems.append(
            Problem(
                path="type",
                code="not_feature_collection",
                message="expected type 'FeatureCollection', got "
                f"{positions.show(data.get('type'))}",
            )
        )
    features = data.get("features")
    if not isinstance(features, list):
        problems.append(
            Problem(
                path="features",
                code="wrong_type",
                message=f"'features' must be an array of Features, got {positions.kind(features)}",
            )
        )
        raise GeometryInvalid(problems)
    parsed: list[FenceFeature] = []
    for i, item in enumerate(features):
        feature, found = _check_feature(item, f"features[{i}]")
        problems.extend(found)
        if feature is not None:
            parsed.append(feature)
    if problems:
        raise GeometryInvalid(problems)
    return parsed


def geometry_to_geojson(geometry: Any) -> dict[str, Any]:
    """A shapely Point, Polygon or MultiPolygon as a GeoJSON geometry object of plain lists.

    Polygons follow RFC 7946's right-hand rule (exterior counterclockwise, holes clockwise),
    also those stored before input was normalised.
    """
    kind = geometry.geom_type
    if kind != "Point":
        geometry = shapely.orient_polygons(geometry)
    if kind == "Point":
        return {"type": "Point", "coordinates": [float(geometry.x), float(geometry.y)]}
    if kind == "Polygon":
        return {"type": "Polygon", "coordinates": _polygon_coords(geometry)}
    if kind == "MultiPolygon":
        return {
            "type": "MultiPolygon",
            "coordinates": [_polygon_coords(part) for part in geometry.geoms],
        }
    raise ValueError(f"fences are Points or (Multi)Polygons, not {kind}")


def fence_to_feature(fence: Fence) -> dict[str, Any]:
    """A fence as a GeoJSON Feature that `parse_feature` accepts again (circles keep radius_m)."""
    properties: dict[str, Any] = {
        "kind": fence.kind,
        "merchant_id": fence.merchant_id,
        "store_id": fence.store_id,
    }
    if fence.kind == "circle":
        properties["radius_m"] = fence.radius_m
    return {
        "type": "Feature",
        "id": fence.id,
        "geometry": geometry_to_geojson(fence.geometry),
        "properties": properties,
    }


# -- Feature level -------------------------------------------------------------------------


def _check_feature(data: object, path: str) -> tuple[FenceFeature | None, list[Problem]]:
    if not isinstance(data, Mapping):
        return None, [positions.not_object(path, data, "a GeoJSON Feature")]
    problems: list[Problem] = []
    if not _check_type(data, path, problems):
        return None, problems
    _check_crs(data, path, problems)
    properties = _check_properties(data, path, problems)
    feature = _check_geometry(data, path, properties, problems)
    if problems or feature is None:
        return None, problems
    return feature, problems


def _check_type(data: Mapping[str, Any], path: str, problems: list[Problem]) -> bool:
    """Report a type other than Feature; False when nothing else is worth checking."""
    kind = data.get("type")
    if kind == "Feature":
        return True
    if kind in _GEOMETRY_TYPES:
        hint = "; wrap the geometry in a Feature: {type: Feature, geometry, properties}"
    elif kind == "FeatureCollection":
        hint = "; send one Feature here, or use the FeatureCollection import"
    else:
        hint = ""
    problems.append(
        Problem(
            path=positions.key(path, "type"),
            code="not_a_feature",
            message=f"not a GeoJSON Feature: type is {positions.show(kind)}{hint}",
        )
    )
    # Everything else would only repeat that this is not a Feature.
    return kind not in _GEOMETRY_TYPES and kind != "FeatureCollection"


def _check_properties(
    data: Mapping[str, Any], path: str, problems: list[Problem]
) -> Mapping[str, Any] | None:
    """The Feature's properties, or None when null, missing or not an object (reported)."""
    properties = data.get("properties")
    if properties is not None and not isinstance(properties, Mapping):
        problems.append(
            Problem(
                path=positions.key(path, "properties"),
                code="wrong_type",
                message=f"properties must be an object or null, got {positions.kind(properties)}",
            )
        )
        return None
    return properties


def _check_geometry(
    data: Mapping[str, Any],
    path: str,
    properties: Mapping[str, Any] | None,
    problems: list[Problem],
) -> FenceFeature | None:
    """The fence the Feature's geometry describes, or None when it does not make one."""
    props_path = positions.key(path, "properties")
    props: dict[str, Any] = dict(properties) if properties is not None else {}
    geom_path = positions.key(path, "geometry")
    geometry = data.get("geometry")
    if geometry is None:
        why = "is null" if "geometry" in data else "is missing"
        problems.append(
            Problem(
                path=geom_path,
                code="missing_geometry",
                message=f"the Feature's geometry {why}; a geofence needs a Polygon, "
                "MultiPolygon or Point with properties.radius_m",
            )
        )
        return None
    if not isinstance(geometry, Mapping):
        problems.append(positions.not_object(geom_path, geometry, "a GeoJSON geometry object"))
        return None
    geom_type = geometry.get("type")
    coords_path = positions.key(geom_path, "coordinates")
    coords = geometry.get("coordinates")
    if geom_type == "Point":
        shape, radius = _check_circle(coords, coords_path, properties, props_path, problems)
        if shape is None or radius is None:
            return None
        return FenceFeature(kind="circle", geometry=shape, radius_m=radius, properties=props)
    if geom_type in _POLYGON_TYPES:
        if properties is not None and "radius_m" in properties:
            problems.append(
                Problem(
                    path=positions.key(props_path, "radius_m"),
                    code="radius_not_allowed",
                    message=f"radius_m only applies to a Point (circle) geofence, "
                    f"not to a {geom_type}; remove it",
                )
            )
        shape = polygons.check_polygonal(geom_type, coords, coords_path, problems)
        if shape is None:
            return None
        return FenceFeature(kind="polygon", geometry=shape, radius_m=None, properties=props)
    problems.append(
        Problem(
            path=positions.key(geom_path, "type"),
            code="unsupported_geometry",
            message=f"unsupported geometry type {positions.show(geom_type)}; a geofence is a "
            "Polygon, a MultiPolygon, or a Point with properties.radius_m",
        )
    )
    return None


def _check_crs(data: Mapping[str, Any], path: str, problems: list[Problem]) -> None:
    # RFC 7946 dropped "crs"; an old file naming another CRS has coordinates we'd misread.
    crs = data.get("crs")
    if crs is None:
        return
    name = None
    if isinstance(crs, Mapping) and isinstance(crs.get("properties"), Mapping):
        name = crs["properties"].get("name")
    if name not in _LONLAT_CRS_NAMES:
        problems.append(
            Problem(
                path=positions.key(path, "crs"),
                code="unsupported_crs",
                message=f"coordinates must be WGS 84 [lon, lat] (RFC 7946 has no 'crs'); "
                f"got crs {positions.show(name if name is not None else crs)}",
            )
        )


def _check_circle(
    coords: object,
    coords_path: str,
    properties: Mapping[str, Any] | None,
    props_path: str,
    problems: list[Problem],
) -> tuple[Any, float | None]:
    position = positions.check_position(coords, coords_path, problems)
    radius_path = positions.key(props_path, "radius_m")
    radius: float | None = None
    raw = properties.get("radius_m") if properties is not None else None
    limits = f"between {MIN_RADIUS_M:g} and {MAX_RADIUS_M:g} metres"
    if raw is None:
        problems.append(
            Problem(
                path=radius_path,
                code="radius_missing",
                message=f"a Point geofence needs properties.radius_m, the circle radius {limits}",
            )
        )
    elif not positions.is_number(raw):
        problems.append(
            Problem(
                path=radius_path,
                code="radius_not_number",
                message=f"radius_m must be a number of metres, got {positions.show(raw)}",
            )
        )
    elif not positions.is_finite(raw):
        problems.append(
            Problem(
                path=radius_path,
                code="radius_not_finite",
                message=f"radius_m must be a finite number of metres, got {positions.number(raw)}",
            )
        )
    elif not MIN_RADIUS_M <= raw <= MAX_RADIUS_M:
        problems.append(
            Problem(
                path=radius_path,
                code="radius_out_of_range",
                message=f"radius_m {raw:g} is out of range; it must be {limits}",
            )
        )
    else:
        radius = float(raw)
    shape = shapely.Point(position) if position is not None else None
    return shape, radius


def _polygon_coords(polygon: Any) -> list[list[list[float]]]:
    rings = [polygon.exterior, *polygon.interiors]
    return [[[float(x), float(y)] for x, y in ring.coords] for ring in rings]
