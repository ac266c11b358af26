"""Validating Polygon and MultiPolygon coordinates: rings, holes, self-intersections and
overlapping parts, each problem reported with its JSON path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely

from geo import positions
from geo.models import Problem
from geo.positions import Ring

MAX_VERTICES = 1000
"""Most positions one geofence may have, counted over all its rings (closing positions too).

Real store outlines need tens; the cap bounds validation cost (the self-intersection
search is quadratic in a ring's size) and keeps the in-memory index small.
"""

# A ring scribbled over itself crosses at thousands of places; name the first few.
_MAX_CROSSINGS_LISTED = 20
_GEOS_LOCATION = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)[^\]]*\]")


def check_polygonal(
    geom_type: str, coords: object, coords_path: str, problems: list[Problem]
) -> Any:
    if not positions.is_array(coords):
        what = "an array of rings" if geom_type == "Polygon" else "an array of polygons"
        problems.append(
            Problem(
                path=coords_path,
                code="wrong_type" if coords is not None else "missing_coordinates",
                message=f"{geom_type} coordinates must be {what}, got {positions.kind(coords)}",
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
            if not positions.is_array(poly):
                problems.append(
                    Problem(
                        path=poly_path,
                        code="wrong_type",
                        message="each polygon must be an array of rings, got "
                        f"{positions.kind(poly)}",
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
    if not positions.is_array(ring):
        problems.append(
            Problem(
                path=ring_path,
                code="wrong_type",
                message="a ring must be an array of [lon, lat] positions, got "
                f"{positions.kind(ring)}",
            )
        )
        return None
    before = len(problems)
    points = [
        positions.check_position(p, f"{ring_path}[{k}]", problems) for k, p in enumerate(ring)
    ]
    if len(ring) < 4:
        problems.append(
            Problem(
                path=ring_path,
                code="ring_too_short",
                message=f"ring has {len(ring)} positions; a closed ring needs at least 4 "
                "(3 corners plus the first position repeated at the end)",
            )
        )
    if len(points) >= 2:
        first, last = points[0], points[-1]
        if first is not None and last is not None and first != last:
            problems.append(
                Problem(
                    path=f"{ring_path}[{len(ring) - 1}]",
                    code="ring_not_closed",
                    message=f"ring is not closed: the last position {positions.pos(last)} "
                    f"differs from the first {positions.pos(first)}; repeat the first position "
                    "at the end",
                )
            )
    for k in range(1, len(points)):
        a, b = points[k - 1], points[k]
        if a is not None and b is not None and abs(b[0] - a[0]) > 180.0:
            problems.append(
                Problem(
                    path=f"{ring_path}[{k}]",
                    code="crosses_antimeridian",
                    message=f"the edge from {positions.pos(a)} to {positions.pos(b)} jumps "
                    f"{abs(b[0] - a[0]):g}° in longitude, i.e. it crosses the antimeridian; "
                    "split the geometry at "
                    "±180° into a MultiPolygon (RFC 7946 section 3.1.9)",
                )
            )
    if len(problems) > before:
        return None
    return [p for p in points if p is not None]


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
                    f"their boundaries cross at {positions.pos((where.x, where.y))}",
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
    # RFC 7946's right-hand rule: the exterior counterclockwise, holes clockwise. Stored
    # this way, so every export and every consumer sees one winding whatever was drawn.
    return shapely.orient_polygons(polygon)


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
                message=f"ring intersects itself at {positions.pos(spot)}: the edges between "
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
                f"{positions.pos((where.x, where.y))}); merge them into one polygon",
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


def _count_positions(coords: Sequence[Any]) -> int:
    """Positions in a nested coordinates array, however malformed, without recursion limits."""
    total = 0
    stack: list[Any] = [coords]
    while stack:
        item = stack.pop()
        if not positions.is_array(item):
            continue
        if not item or not positions.is_array(item[0]):
            # A list of scalars is one position (right or wrong); don't count its numbers.
            total += 1 if item else 0
            continue
        stack.extend(item)
    return total


def _describe_geos(reason: str) -> str:
    """GEOS reasons look like 'Self-intersection[2.5 2.5]'; say where in [lon, lat] form."""
    found = _GEOS_LOCATION.search(reason)
    if not found:
        return reason
    what = reason[: found.start()].strip()
    return f"{what} at [{float(found.group(1)):g}, {float(found.group(2)):g}]"
