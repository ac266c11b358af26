"""Parse and validate geofences submitted as GeoJSON (RFC 7946), and serialise fences back.

A fence is a Feature whose geometry is a Polygon or MultiPolygon in [lon, lat], or a Point
with `properties.radius_m` (a true metre circle). Validation reports every problem it finds,
each with the JSON path where it is, so a store manager can fix them all in one go.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import numpy as np
import shapely

from geo.errors import GeometryInvalid
from geo.models import Fence, FenceFeature, Problem

MAX_VERTICES = 1000
"""Most positions one geofence may have, counted over all its rings (closing positions too).

Real store outlines need tens; the cap bounds validation cost (the self-intersection
search is quadratic in a ring's size) and keeps the in-memory index small.
"""

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
# A ring scribbled over itself crosses at thousands of places; name the first few.
_MAX_CROSSINGS_LISTED = 20
_GEOS_LOCATION = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)[^\]]*\]")

Position = tuple[float, float]
Ring = list[Position]


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
        raise GeometryInvalid([_not_object("", data, "a GeoJSON FeatureCollection")])
    if data.get("type") != "FeatureCollection":
        problems.append(
            Problem(
                path="type",
                code="not_feature_collection",
                message=f"expected type 'FeatureCollection', got {_show(data.get('type'))}",
            )
        )
    features = data.get("features")
    if not isinstance(features, list):
        problems.append(
            Problem(
                path="features",
                code="wrong_type",
                message=f"'features' must be an array of Features, got {_kind(features)}",
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
    """A shapely Point, Polygon or MultiPolygon as a GeoJSON geometry object of plain lists."""
    kind = geometry.geom_type
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
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        return None, [_not_object(path, data, "a GeoJSON Feature")]
    kind = data.get("type")
    if kind != "Feature":
        if kind in _GEOMETRY_TYPES:
            hint = "; wrap the geometry in a Feature: {type: Feature, geometry, properties}"
        elif kind == "FeatureCollection":
            hint = "; send one Feature here, or use the FeatureCollection import"
        else:
            hint = ""
        problems.append(
            Problem(
                path=_key(path, "type"),
                code="not_a_feature",
                message=f"not a GeoJSON Feature: type is {_show(kind)}{hint}",
            )
        )
        if kind in _GEOMETRY_TYPES or kind == "FeatureCollection":
            # Everything else would only repeat that this is not a Feature.
            return None, problems
    _check_crs(data, path, problems)

    properties = data.get("properties")
    props_path = _key(path, "properties")
    if properties is not None and not isinstance(properties, Mapping):
        problems.append(
            Problem(
                path=props_path,
                code="wrong_type",
                message=f"properties must be an object or null, got {_kind(properties)}",
            )
        )
        properties = None
    props: dict[str, Any] = dict(properties) if properties is not None else {}

    geom_path = _key(path, "geometry")
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
        return None, problems
    if not isinstance(geometry, Mapping):
        problems.append(_not_object(geom_path, geometry, "a GeoJSON geometry object"))
        return None, problems

    geom_type = geometry.get("type")
    coords_path = _key(geom_path, "coordinates")
    coords = geometry.get("coordinates")
    if geom_type == "Point":
        shape, radius = _check_circle(coords, coords_path, properties, props_path, problems)
        feature = FenceFeature(kind="circle", geometry=shape, radius_m=radius, properties=props)
        ok = shape is not None and radius is not None
    elif geom_type in _POLYGON_TYPES:
        if properties is not None and "radius_m" in properties:
            problems.append(
                Problem(
                    path=_key(props_path, "radius_m"),
                    code="radius_not_allowed",
                    message=f"radius_m only applies to a Point (circle) geofence, "
                    f"not to a {geom_type}; remove it",
                )
            )
        shape = _check_polygonal(geom_type, coords, coords_path, problems)
        feature = FenceFeature(kind="polygon", geometry=shape, radius_m=None, properties=props)
        ok = shape is not None
    else:
        problems.append(
            Problem(
                path=_key(geom_path, "type"),
                code="unsupported_geometry",
                message=f"unsupported geometry type {_show(geom_type)}; a geofence is a "
                "Polygon, a MultiPolygon, or a Point with properties.radius_m",
            )
        )
        return None, problems
    if problems or not ok:
        return None, problems
    return feature, problems


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
                path=_key(path, "crs"),
                code="unsupported_crs",
                message=f"coordinates must be WGS 84 [lon, lat] (RFC 7946 has no 'crs'); "
                f"got crs {_show(name if name is not None else crs)}",
            )
        )


def _check_circle(
    coords: object,
    coords_path: str,
    properties: Mapping[str, Any] | None,
    props_path: str,
    problems: list[Problem],
) -> tuple[Any, float | None]:
    position = _check_position(coords, coords_path, problems)
    radius_path = _key(props_path, "radius_m")
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
    elif not _is_number(raw):
        problems.append(
            Problem(
                path=radius_path,
                code="radius_not_number",
                message=f"radius_m must be a number of metres, got {_show(raw)}",
            )
        )
    elif not _is_finite(raw):
        problems.append(
            Problem(
                path=radius_path,
                code="radius_not_finite",
                message=f"radius_m must be a finite number of metres, got {_number(raw)}",
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


# -- Polygons -------------------------------------------------------------------------------


def _check_polygonal(
    geom_type: str, coords: object, coords_path: str, problems: list[Problem]
) -> Any:
    if not _is_array(coords):
        what = "an array of rings" if geom_type == "Polygon" else "an array of polygons"
        problems.append(
            Problem(
                path=coords_path,
                code="wrong_type" if coords is not None else "missing_coordinates",
                message=f"{geom_type} coordinates must be {what}, got {_kind(coords)}",
            )
        )
        return None
    before = len(problems)
    total = _count_positions(coords)
    if total > MAX_VERTICES:
        problems.append(
            Problem(
                path=coords_path,
                code="too_many_vertices",
                message=f"the geometry has {total} positions; a geofence may have at most "
                f"{MAX_VERTICES}. Simplify the outline",
            )
        )
        if total > 10 * MAX_VERTICES:
            # Far beyond the limit: checking every position would only cost time.
            return None

    polygons: list[tuple[str, list[Ring]] | None] = []
    if geom_type == "Polygon":
        polygons.append(_check_rings(coords, coords_path, problems))
    else:
        if not coords:
            problems.append(
                Problem(
                    path=coords_path,
                    code="empty_geometry",
                    message="a MultiPolygon needs at least one polygon",
                )
            )
        for i, poly in enumerate(coords):
            poly_path = f"{coords_path}[{i}]"
            if not _is_array(poly):
                problems.append(
                    Problem(
                        path=poly_path,
                        code="wrong_type",
                        message=f"each polygon must be an array of rings, got {_kind(poly)}",
                    )
                )
                polygons.append(None)
                continue
            polygons.append(_check_rings(poly, poly_path, problems))
    if len(problems) > before:
        # Topology checks need well-formed input and cost O(n^2); skip them on broken input.
        return None

    shapes: list[tuple[str, Any]] = []
    for entry in polygons:
        assert entry is not None
        poly_path, rings = entry
        shape = _check_polygon_topology(rings, poly_path, problems)
        if shape is not None:
            shapes.append((poly_path, shape))
    if len(problems) > before:
        return None
    if geom_type == "Polygon":
        return shapes[0][1]
    multi = shapely.MultiPolygon([shape for _, shape in shapes])
    _check_parts_disjoint(multi, shapes, coords_path, problems)
    return None if len(problems) > before else multi


def _check_rings(
    rings: Sequence[Any], poly_path: str, problems: list[Problem]
) -> tuple[str, list[Ring]] | None:
    if not rings:
        problems.append(
            Problem(
                path=poly_path,
                code="empty_geometry",
                message="a polygon needs at least one ring (its outer boundary)",
            )
        )
        return None
    parsed: list[Ring] = []
    ok = True
    for j, ring in enumerate(rings):
        checked = _check_ring(ring, f"{poly_path}[{j}]", problems)
        if checked is None:
            ok = False
        else:
            parsed.append(checked)
    return (poly_path, parsed) if ok else None


def _check_ring(ring: object, ring_path: str, problems: list[Problem]) -> Ring | None:
    if not _is_array(ring):
        problems.append(
            Problem(
                path=ring_path,
                code="wrong_type",
                message=f"a ring must be an array of [lon, lat] positions, got {_kind(ring)}",
            )
        )
        return None
    before = len(problems)
    positions = [_check_position(p, f"{ring_path}[{k}]", problems) for k, p in enumerate(ring)]
    if len(ring) < 4:
        problems.append(
            Problem(
                path=ring_path,
                code="ring_too_short",
                message=f"ring has {len(ring)} positions; a closed ring needs at least 4 "
                "(3 corners plus the first position repeated at the end)",
            )
        )
    if len(positions) >= 2:
        first, last = positions[0], positions[-1]
        if first is not None and last is not None and first != last:
            problems.append(
                Problem(
                    path=f"{ring_path}[{len(ring) - 1}]",
                    code="ring_not_closed",
                    message=f"ring is not closed: the last position {_pos(last)} differs from "
                    f"the first {_pos(first)}; repeat the first position at the end",
                )
            )
    for k in range(1, len(positions)):
        a, b = positions[k - 1], positions[k]
        if a is not None and b is not None and abs(b[0] - a[0]) > 180.0:
            problems.append(
                Problem(
                    path=f"{ring_path}[{k}]",
                    code="crosses_antimeridian",
                    message=f"the edge from {_pos(a)} to {_pos(b)} jumps {abs(b[0] - a[0]):g}° "
                    "in longitude, i.e. it crosses the antimeridian; split the geometry at "
                    "±180° into a MultiPolygon (RFC 7946 section 3.1.9)",
                )
            )
    if len(problems) > before:
        return None
    return [p for p in positions if p is not None]


def _check_polygon_topology(rings: list[Ring], poly_path: str, problems: list[Problem]) -> Any:
    before = len(problems)
    ring_shapes: list[Any] = []
    for j, ring in enumerate(rings):
        ring_path = f"{poly_path}[{j}]"
        if len(set(ring)) < 3:
            problems.append(
                Problem(
                    path=ring_path,
                    code="ring_degenerate",
                    message=f"ring has only {len(set(ring))} distinct position(s); it encloses "
                    "no area",
                )
            )
            ring_shapes.append(None)
            continue
        line = shapely.LinearRing(ring)
        if _collinear(ring):
            problems.append(
                Problem(
                    path=ring_path,
                    code="ring_degenerate",
                    message="ring encloses no area: all its positions lie on one line",
                )
            )
        elif not shapely.is_simple(line):
            _report_self_intersections(ring, ring_path, problems)
        ring_shapes.append(line)
    if len(problems) > before:
        return None

    shell = shapely.Polygon(rings[0])
    for j in range(1, len(rings)):
        hole = ring_shapes[j]
        if shapely.covers(shell, hole):
            continue
        ring_path = f"{poly_path}[{j}]"
        if shapely.disjoint(shell, hole) or not shapely.intersects(shell.exterior, hole):
            problems.append(
                Problem(
                    path=ring_path,
                    code="hole_outside_shell",
                    message=f"hole (ring {j}) lies outside the outer ring {poly_path}[0]; "
                    "holes must be inside it",
                )
            )
        else:
            where = shapely.intersection(shell.exterior, hole).representative_point()
            problems.append(
                Problem(
                    path=ring_path,
                    code="hole_outside_shell",
                    message=f"hole (ring {j}) reaches outside the outer ring {poly_path}[0]; "
                    f"their boundaries cross at {_pos((where.x, where.y))}",
                )
            )
    if len(problems) > before:
        return None

    polygon = shapely.Polygon(rings[0], rings[1:])
    if not shapely.is_valid(polygon):
        # Left over are cases like holes that overlap, nest or cut the interior in two.
        reason = shapely.is_valid_reason(polygon)
        problems.append(
            Problem(
                path=poly_path,
                code="invalid_polygon",
                message=f"polygon is not valid: {_describe_geos(reason)}",
            )
        )
        return None
    return polygon


def _report_self_intersections(ring: Ring, ring_path: str, problems: list[Problem]) -> None:
    """Name the places where a non-simple ring touches or crosses itself, and its edges there."""
    # Repeated consecutive positions are harmless but would make neighbouring edges look
    # like they meet; drop them and keep each remaining vertex's original position index.
    keep_idx = [0] + [k for k in range(1, len(ring)) if ring[k] != ring[k - 1]]
    pts = np.asarray([ring[k] for k in keep_idx], dtype=np.float64)
    a, b = pts[:-1], pts[1:]
    n = len(a)
    i, j = np.triu_indices(n, k=1)
    # Consecutive edges share a vertex, and so do the last and the first.
    keep = (j - i > 1) & ~((i == 0) & (j == n - 1))
    i, j = i[keep], j[keep]
    p, r, q, s = a[i], b[i] - a[i], a[j], b[j] - a[j]
    d1 = np.sign(_cross(r, q - p))
    d2 = np.sign(_cross(r, q + s - p))
    d3 = np.sign(_cross(s, p - q))
    d4 = np.sign(_cross(s, p + r - q))
    hit = (d1 * d2 <= 0) & (d3 * d4 <= 0)
    collinear = (d1 == 0) & (d2 == 0)
    # Collinear edges only meet if their extents overlap.
    overlap = np.all(
        (np.minimum(p, p + r) <= np.maximum(q, q + s))
        & (np.minimum(q, q + s) <= np.maximum(p, p + r)),
        axis=1,
    )
    hit &= ~collinear | overlap
    i, j, p, r, q, s, collinear = i[hit], j[hit], p[hit], r[hit], q[hit], s[hit], collinear[hit]
    if not i.size:
        # E.g. an edge doubling back over the previous one; GEOS says where.
        reason = shapely.is_valid_reason(shapely.Polygon(ring))
        problems.append(
            Problem(
                path=ring_path,
                code="self_intersection",
                message=f"ring intersects itself: {_describe_geos(reason)}",
            )
        )
        return
    # Where the edges meet: the line intersection, or for collinear overlaps an endpoint of
    # one edge lying on the other.
    denom = _cross(r, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(denom != 0.0, _cross(q - p, s) / denom, 0.0)
    where = p + t[:, None] * r
    q_on_p = np.all((np.minimum(p, p + r) <= q) & (q <= np.maximum(p, p + r)), axis=1)
    where = np.where((collinear & q_on_p)[:, None], q, where)
    # Several edges meet where a ring touches itself at a vertex: one problem per place.
    spots, first, group = np.unique(
        np.round(where, 9), axis=0, return_index=True, return_inverse=True
    )
    order = np.argsort(first)
    group = group.ravel()
    for place in order[:_MAX_CROSSINGS_LISTED].tolist():
        edges = sorted(set(i[group == place].tolist()) | set(j[group == place].tolist()))
        names = ", ".join(f"{keep_idx[e]}-{keep_idx[e + 1]}" for e in edges)
        spot = (float(spots[place][0]), float(spots[place][1]))
        problems.append(
            Problem(
                path=f"{ring_path}[{keep_idx[edges[0]]}]",
                code="self_intersection",
                message=f"ring intersects itself at {_pos(spot)}: the edges between "
                f"positions {names} meet there",
            )
        )
    if len(spots) > _MAX_CROSSINGS_LISTED:
        problems.append(
            Problem(
                path=ring_path,
                code="self_intersection",
                message=f"ring intersects itself at {len(spots)} places in all; only the "
                f"first {_MAX_CROSSINGS_LISTED} are listed",
            )
        )


def _cross(u: Any, v: Any) -> Any:
    return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]


def _collinear(ring: Ring) -> bool:
    pts = np.asarray(ring, dtype=np.float64)
    rel = pts - pts[0]
    moved = np.flatnonzero(np.any(rel != 0.0, axis=1))
    if not moved.size:
        return True
    direction = rel[moved[0]]
    return bool(np.all(rel[:, 0] * direction[1] - rel[:, 1] * direction[0] == 0.0))


def _check_parts_disjoint(
    multi: Any, shapes: list[tuple[str, Any]], coords_path: str, problems: list[Problem]
) -> None:
    if shapely.is_valid(multi):
        return
    before = len(problems)
    tree = shapely.STRtree([shape for _, shape in shapes])
    left, right = tree.query([shape for _, shape in shapes], predicate="intersects")
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        if a >= b:
            continue
        relation = shapely.relate(shapes[a][1], shapes[b][1])
        # DE-9IM: interiors meeting means overlap; boundaries meeting along a line means a
        # shared edge. Both are invalid in a MultiPolygon (parts may touch at points only).
        if relation[0] != "F":
            what = "overlap"
        elif relation[4] == "1":
            what = "share an edge"
        else:
            continue
        where = shapely.intersection(shapes[a][1], shapes[b][1]).representative_point()
        problems.append(
            Problem(
                path=shapes[b][0],
                code="polygons_overlap",
                message=f"polygons {shapes[a][0]} and {shapes[b][0]} {what} (near "
                f"{_pos((where.x, where.y))}); merge them into one polygon",
            )
        )
    if len(problems) == before:
        problems.append(
            Problem(
                path=coords_path,
                code="invalid_polygon",
                message="MultiPolygon is not valid: "
                f"{_describe_geos(shapely.is_valid_reason(multi))}",
            )
        )


# -- Positions and helpers ------------------------------------------------------------------


def _check_position(value: object, path: str, problems: list[Problem]) -> Position | None:
    if not _is_array(value):
        problems.append(
            Problem(
                path=path,
                code="wrong_type",
                message=f"a position must be an array [lon, lat], got {_kind(value)}",
            )
        )
        return None
    if not 2 <= len(value) <= 3:
        problems.append(
            Problem(
                path=path,
                code="wrong_position_length",
                message=f"a position is [lon, lat] or [lon, lat, altitude]; got {len(value)} "
                "numbers",
            )
        )
        return None
    ok = True
    for k, item in enumerate(value):
        name = ("longitude", "latitude", "altitude")[k]
        if not _is_number(item):
            problems.append(
                Problem(
                    path=f"{path}[{k}]",
                    code="not_a_number",
                    message=f"{name} must be a number, got {_show(item)}",
                )
            )
            ok = False
        elif not _is_finite(item):
            problems.append(
                Problem(
                    path=f"{path}[{k}]",
                    code="not_finite",
                    message=f"{name} must be a finite number, got {_number(item)}",
                )
            )
            ok = False
    if not ok:
        return None
    # The altitude (third number) is allowed by RFC 7946 and deliberately ignored.
    lon, lat = float(value[0]), float(value[1])
    if abs(lat) > 90.0 and abs(lat) <= 180.0 and abs(lon) <= 90.0:
        problems.append(
            Problem(
                path=path,
                code="swapped_coordinates",
                message=f"latitude {lat:g} is outside [-90, 90]; {_pos((lon, lat))} looks like "
                "[lat, lon]; GeoJSON order is [lon, lat]",
            )
        )
        return None
    if abs(lon) > 180.0:
        problems.append(
            Problem(
                path=f"{path}[0]",
                code="longitude_out_of_range",
                message=f"longitude {lon:g} is outside [-180, 180]",
            )
        )
        ok = False
    if abs(lat) > 90.0:
        problems.append(
            Problem(
                path=f"{path}[1]",
                code="latitude_out_of_range",
                message=f"latitude {lat:g} is outside [-90, 90]",
            )
        )
        ok = False
    return (lon, lat) if ok else None


def _count_positions(coords: Sequence[Any]) -> int:
    """Positions in a nested coordinates array, however malformed, without recursion limits."""
    total = 0
    stack: list[Any] = [coords]
    while stack:
        item = stack.pop()
        if not _is_array(item):
            continue
        if not item or not _is_array(item[0]):
            # A list of scalars is one position (right or wrong); don't count its numbers.
            total += 1 if item else 0
            continue
        stack.extend(item)
    return total


def _is_array(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    # json gives lists; tuples come from Python callers such as shapely's mapping().
    return isinstance(value, list | tuple)


def _is_finite(value: float) -> bool:
    # A JSON integer can be too big for a float; it is not a usable coordinate either.
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _is_number(value: object) -> bool:
    # JSON true/false arrive as bool, which Python counts as int.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe_geos(reason: str) -> str:
    """GEOS reasons look like 'Self-intersection[2.5 2.5]'; say where in [lon, lat] form."""
    found = _GEOS_LOCATION.search(reason)
    if not found:
        return reason
    what = reason[: found.start()].strip()
    return f"{what} at [{float(found.group(1)):g}, {float(found.group(2)):g}]"


def _polygon_coords(polygon: Any) -> list[list[list[float]]]:
    rings = [polygon.exterior, *polygon.interiors]
    return [[[float(x), float(y)] for x, y in ring.coords] for ring in rings]


def _not_object(path: str, value: object, what: str) -> Problem:
    return Problem(
        path=path, code="wrong_type", message=f"expected {what} (an object), got {_kind(value)}"
    )


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Sequence):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else _kind(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"a {len(text)}-digit number"


def _pos(position: Position) -> str:
    # 7 decimals of a degree is ~1 cm: enough to find the spot, short enough to read.
    return f"[{round(position[0], 7)!r}, {round(position[1], 7)!r}]"
