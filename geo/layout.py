"""The fence index's arrays, built once per snapshot: fences as columns sorted by merchant
(each merchant's circles before its polygons), circle centres on the sphere, and every
polygon edge, both as one slice per fence and as padded rows of edges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from geo import distance
from geo.models import Fence

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

M_PER_DEG = distance.M_PER_DEG
# Longest edge row of the one-ping path: a merchant with a polygon of more edges than this
# is measured by the slower general path instead of padding every row to that length.
MAX_ROW_EDGES = 64
# Edge columns: start lon and lat (degrees), lon span (degrees), lat span (metres), start
# lat in metres, and lat span squared plus a hair so that no edge has zero length.
LON, LAT, DLON, DLAT_M, LAT_M, DLAT_M2 = range(6)

# shapely.get_type_id codes.
_POINT, _POLYGON, _MULTIPOLYGON = 0, 3, 6


def columns(
    fences: Sequence[Fence],
) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_], FloatArray, npt.NDArray[np.object_]]:
    """Merchant, id, is-circle, radius (NaN for polygons) and geometry, sorted by merchant
    and, within a merchant, circles first."""
    n = len(fences)
    merchants = np.fromiter((f.merchant_id for f in fences), dtype=np.int64, count=n)
    circle = np.fromiter((f.kind == "circle" for f in fences), dtype=bool, count=n)
    order = np.lexsort((~circle, merchants))
    ids = np.fromiter((f.id for f in fences), dtype=np.int64, count=n)[order]
    radius = np.fromiter(
        (math.nan if f.radius_m is None else f.radius_m for f in fences),
        dtype=np.float64,
        count=n,
    )[order]
    geoms = np.empty(n, dtype=object)
    geoms[:] = [f.geometry for f in fences]
    return merchants[order], ids, circle[order], radius, geoms[order]


def extents(
    geoms: npt.NDArray[np.object_], circle: npt.NDArray[np.bool_], radius: FloatArray
) -> tuple[FloatArray, ...]:
    """Circle centres and radii (NaN and 0 for polygons), and every fence's lon/lat box:
    (clon, clat, radius, west, south, east, north)."""
    centres = geoms.copy()
    centres[~circle] = None
    clon = np.where(circle, shapely.get_x(centres), np.nan)
    clat = np.where(circle, shapely.get_y(centres), np.nan)
    radius = np.where(circle, radius, 0.0)
    west, south, east, north = distance.bbox_around_array(clon, clat, radius)
    # A circle straddling ±180° gets every longitude: rare, and still correct.
    wraps = west > east
    west[wraps], east[wraps] = -180.0, 180.0
    polygons = np.flatnonzero(~circle)
    if polygons.size:
        # Prepared now, so that lookups never modify the shared snapshot.
        shapely.prepare(geoms[polygons])
        bounds = shapely.bounds(geoms[polygons])
        west[polygons], south[polygons] = bounds[:, 0], bounds[:, 1]
        east[polygons], north[polygons] = bounds[:, 2], bounds[:, 3]
    return clon, clat, radius, west, south, east, north


def check(ids: IntArray, circle: Any, radius: FloatArray, geoms: Any) -> None:
    """Refuse fences the index cannot measure; the API validates, but the index must not lie."""
    try:
        kinds = shapely.get_type_id(geoms)
        empty = shapely.is_empty(geoms)
    except TypeError as exc:
        raise ValueError("every fence geometry must be a shapely geometry") from exc
    bad_circle = circle & ((kinds != _POINT) | ~(radius > 0) | ~np.isfinite(radius))
    bad_polygon = ~circle & (kinds != _POLYGON) & (kinds != _MULTIPOLYGON)
    bad = np.flatnonzero(bad_circle | bad_polygon | empty)
    if bad.size:
        raise ValueError(
            f"fence {ids[bad[0]]}: a circle needs a Point and a positive radius_m, "
            "a polygon a non-empty Polygon or MultiPolygon"
        )


def segments(geoms: Any, polygons: IntArray, n: int) -> tuple[FloatArray, IntArray, IntArray]:
    """Every ring edge of every polygon, grouped by fence position.

    Returns one row per edge (the columns LON ... DLAT_M2 above), and per fence where its
    edges start and how many there are.
    """
    starts = np.zeros(n, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    if not polygons.size:
        return np.empty((0, 6)), starts, counts
    parts, part_owner = shapely.get_parts(geoms[polygons], return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    a, b = coords[:-1], coords[1:]
    # An edge joins consecutive coordinates of one ring; repeated points add nothing.
    edge = (coord_ring[:-1] == coord_ring[1:]) & np.any(a != b, axis=1)
    a, b = a[edge], b[edge]
    owner = polygons[part_owner[ring_part[coord_ring[:-1][edge]]]]
    # get_parts, get_rings and get_coordinates keep input order, so owners ascend.
    counts[:] = np.bincount(owner, minlength=n)
    starts[:] = np.cumsum(counts) - counts
    if np.any(counts[polygons] == 0):
        raise ValueError("a polygon fence has no edges")
    dlat_m = (b[:, 1] - a[:, 1]) * M_PER_DEG
    table = np.column_stack(
        [a[:, 0], a[:, 1], b[:, 0] - a[:, 0], dlat_m, a[:, 1] * M_PER_DEG, dlat_m * dlat_m + 1e-18]
    )
    return table, starts, counts


def sphere(clon: FloatArray, clat: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Circle centres as x, y, z on a sphere of diameter 1 (0 for polygons).

    The chord c between two such points gives the great-circle distance 2R asin(c), the
    haversine formula's value, in a few array operations and without its cancellation.
    """
    lon = np.radians(np.nan_to_num(clon))
    lat = np.radians(np.nan_to_num(clat))
    half_cos = 0.5 * np.cos(lat)
    return half_cos * np.cos(lon), half_cos * np.sin(lon), 0.5 * np.sin(lat)


def edge_rows(starts: IntArray, counts: IntArray) -> npt.NDArray[np.int32] | None:
    """Each polygon's edge numbers as one row of equal length, padded with its last edge
    (which changes no minimum); None when a polygon has more than MAX_ROW_EDGES edges."""
    width = int(counts.max(initial=1))
    if width > MAX_ROW_EDGES or starts.size == 0:
        return None
    rows = starts[:, None] + np.minimum(np.arange(width), counts[:, None] - 1)
    dtype = np.int32 if rows.max(initial=0) < np.iinfo(np.int32).max else np.int64
    out: npt.NDArray[np.int32] = rows.astype(dtype)
    out.flags.writeable = False
    return out
