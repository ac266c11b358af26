"""The in-memory geofence index: an immutable snapshot that finds a merchant's fences near a ping.

Each merchant's fences get an STRtree over their lon/lat envelopes; candidates from the tree
are then measured exactly in metres (haversine for circles, a local metric frame for polygons).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from geo import distance
from geo.models import Fence

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_DEG = math.pi / 180.0
_M_PER_DEG = distance.M_PER_DEG
# Below this many candidates a plain Python loop beats numpy's per-call overhead.
_SCALAR_CANDIDATES = 16
# shapely.box's argument-checking wrapper costs more than making the box; the
# ufunc underneath is the same call without it.
_LIB_BOX: Any = getattr(shapely.lib, "box", None)


def _box(xmin: float, ymin: float, xmax: float, ymax: float) -> Any:
    if _LIB_BOX is None:  # pragma: no cover - a shapely without the ufunc
        return shapely.box(xmin, ymin, xmax, ymax)
    return _LIB_BOX(xmin, ymin, xmax, ymax, True)  # True: counter-clockwise, as box() makes


# shapely.get_type_id codes.
_POINT, _POLYGON, _MULTIPOLYGON = 0, 3, 6


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchMatches:
    """Matches of a batch of pings as parallel arrays, sorted by ping then fence id.

    Row k says that ping `ping[k]` (its position in the batch) is `distance_m[k]` metres from
    fence `fence_id[k]`.
    """

    n_pings: int
    ping: IntArray
    fence_id: IntArray
    distance_m: FloatArray

    def to_dicts(self) -> list[dict[int, float]]:
        """One `{fence_id: distance_m}` per ping, as `FenceIndex.match` returns it."""
        out: list[dict[int, float]] = [{} for _ in range(self.n_pings)]
        for p, f, d in zip(
            self.ping.tolist(), self.fence_id.tolist(), self.distance_m.tolist(), strict=True
        ):
            out[p][f] = d
        return out


class FenceIndex:
    """Immutable snapshot of geofences; build a new one when fences change and swap it in.

    Fences are laid out sorted by merchant so each merchant owns a contiguous slice of the
    arrays and its own STRtree: a lookup only ever touches the asking merchant's fences.
    """

    __slots__ = (
        "_box",
        "_by_id",
        "_circle_list",
        "_clat",
        "_clat_list",
        "_clon",
        "_clon_list",
        "_fences",
        "_geoms",
        "_groups",
        "_ids",
        "_ids_list",
        "_is_circle",
        "_radius",
        "_radius_list",
        "_ref_lon",
        "_seg",
        "_seg_count",
        "_seg_count_list",
        "_seg_dlat_m",
        "_seg_dlon",
        "_seg_lat",
        "_seg_lon",
        "_seg_start",
        "_seg_start_list",
    )

    def __init__(self, fences: Sequence[Fence]) -> None:
        """Prefer `FenceIndex.build`; this does the same."""
        n = len(fences)
        self._fences = tuple(fences)
        self._by_id = {f.id: f for f in fences}
        if len(self._by_id) != n:
            raise ValueError("fence ids must be unique")
        merchants, ids, circle, radius, geoms = _columns(fences)
        _check(ids, circle, radius, geoms)
        clon, clat, radius, west, south, east, north = _extents(geoms, circle, radius)
        self._box = np.column_stack([west, south, east, north])
        self._ref_lon = (west + east) * 0.5
        seg_lon, seg_lat, seg_dlon, seg_dlat_m, self._seg_start, self._seg_count = _segments(
            geoms, np.flatnonzero(~circle), n
        )
        # One row per edge, so that one polygon's edges are one slice; the columns are
        # views of it for the batched path.
        self._seg = np.column_stack([seg_lon, seg_lat, seg_dlon, seg_dlat_m])
        self._seg_lon, self._seg_lat = self._seg[:, 0], self._seg[:, 1]
        self._seg_dlon, self._seg_dlat_m = self._seg[:, 2], self._seg[:, 3]

        # The tree only needs envelopes: a polygon is its own, a circle gets its box.
        envelopes = geoms.copy()
        circles = np.flatnonzero(circle)
        envelopes[circles] = shapely.box(
            west[circles], south[circles], east[circles], north[circles]
        )
        self._groups: dict[int, tuple[shapely.STRtree, int]] = {}
        if n:
            keys, starts = np.unique(merchants, return_index=True)
            ends = [*starts[1:].tolist(), n]
            for key, start, end in zip(keys.tolist(), starts.tolist(), ends, strict=True):
                self._groups[key] = (shapely.STRtree(envelopes[start:end]), start)

        self._ids, self._is_circle, self._geoms = ids, circle, geoms
        self._clon, self._clat, self._radius = clon, clat, radius
        # Plain lists: the single-ping path reads a few items, where numpy scalars are slow.
        self._ids_list: list[int] = ids.tolist()
        self._circle_list: list[bool] = circle.tolist()
        self._clon_list: list[float] = clon.tolist()
        self._clat_list: list[float] = clat.tolist()
        self._radius_list: list[float] = radius.tolist()
        self._seg_start_list: list[int] = self._seg_start.tolist()
        self._seg_count_list: list[int] = self._seg_count.tolist()
        for array in (ids, circle, geoms, clon, clat, radius, self._box, self._ref_lon):
            array.flags.writeable = False
        for array in (self._seg, self._seg_lon, self._seg_lat, self._seg_dlon, self._seg_dlat_m):
            array.flags.writeable = False
        for array in (self._seg_start, self._seg_count):
            array.flags.writeable = False

    @classmethod
    def build(cls, fences: Iterable[Fence]) -> FenceIndex:
        """Index these fences (any order); ValueError on duplicate ids or malformed fences."""
        return cls(fences if isinstance(fences, Sequence) else list(fences))

    def __len__(self) -> int:
        return len(self._fences)

    def __repr__(self) -> str:
        return f"<FenceIndex fences={len(self._fences)} merchants={len(self._groups)}>"

    def get(self, fence_id: int) -> Fence | None:
        """The fence with this id, or None."""
        return self._by_id.get(fence_id)

    def fences(self) -> tuple[Fence, ...]:
        """Every indexed fence, in the order given to `build`."""
        return self._fences

    def match(
        self,
        lon: float,
        lat: float,
        accuracy_m: float,
        merchant_id: int,
        margin_m: float = 0.0,
    ) -> dict[int, float]:
        """Fences of `merchant_id` within `accuracy_m + margin_m` metres of the point.

        Returns fence id -> distance in metres from the point to the fence (0 inside).
        """
        group = self._groups.get(merchant_id)
        if group is None:
            return {}
        tree, offset = group
        reach = accuracy_m + margin_m
        west, south, east, north = distance.bbox_around(lon, lat, reach)
        wrapped = west > east
        # A one-element array of boxes: shapely's scalar query path costs more than the search.
        boxes = np.empty(2 if wrapped else 1, dtype=object)
        if not wrapped:
            boxes[0] = _box(west, south, east, north)
            hits = tree.query(boxes)[1]
        else:
            boxes[0] = _box(west, south, 180.0, north)
            boxes[1] = _box(-180.0, south, east, north)
            hits = np.unique(tree.query(boxes)[1])
        if not len(hits):
            return {}
        hits += offset
        out: dict[int, float] = {}
        if len(hits) > _SCALAR_CANDIDATES:
            circle = self._is_circle[hits]
            cf = hits[circle]
            d = distance.haversine_m_array(lon, lat, self._clon[cf], self._clat[cf])
            d -= self._radius[cf]
            keep = d <= reach
            np.maximum(d, 0.0, out=d)
            out.update(zip(self._ids[cf[keep]].tolist(), d[keep].tolist(), strict=True))
            polygons: list[int] = hits[~circle].tolist()
        else:
            polygons = []
            for k in hits.tolist():
                if self._circle_list[k]:
                    d_k = distance.haversine_m(lon, lat, self._clon_list[k], self._clat_list[k])
                    d_k -= self._radius_list[k]
                    if d_k <= reach:
                        out[self._ids_list[k]] = d_k if d_k > 0.0 else 0.0
                else:
                    polygons.append(k)
        if polygons:
            self._polygons_near(polygons, lon, lat, reach, wrapped, out)
        return out

    def match_many(
        self,
        lons: npt.ArrayLike,
        lats: npt.ArrayLike,
        accuracies_m: npt.ArrayLike,
        merchant_ids: npt.ArrayLike,
        margin_m: float = 0.0,
    ) -> BatchMatches:
        """`match` for a batch of pings at once; scalars broadcast against the arrays."""
        lon_a, lat_a, acc_a, merchant_a = (
            a.ravel()
            for a in np.broadcast_arrays(
                np.asarray(lons, dtype=np.float64),
                np.asarray(lats, dtype=np.float64),
                np.asarray(accuracies_m, dtype=np.float64),
                np.asarray(merchant_ids, dtype=np.int64),
            )
        )
        reach = acc_a + margin_m
        n = lon_a.size
        pair_ping, pair_fence, wrapped = self._candidates(lon_a, lat_a, reach, merchant_a)
        pair_reach = reach[pair_ping]
        pair_lon, pair_lat = lon_a[pair_ping], lat_a[pair_ping]
        dist = np.empty(pair_ping.size)
        circle = self._is_circle[pair_fence]
        cf = pair_fence[circle]
        dist[circle] = np.maximum(
            distance.haversine_m_array(
                pair_lon[circle], pair_lat[circle], self._clon[cf], self._clat[cf]
            )
            - self._radius[cf],
            0.0,
        )
        rows = np.flatnonzero(~circle)
        if rows.size:
            dist[rows] = self._polygon_distances(
                pair_fence[rows],
                pair_lon[rows],
                pair_lat[rows],
                pair_reach[rows],
                wrapped=wrapped,
            )
        keep = dist <= pair_reach
        pair_ping, pair_fence, dist = pair_ping[keep], pair_fence[keep], dist[keep]
        fence_ids = self._ids[pair_fence]
        order = np.lexsort((fence_ids, pair_ping))
        return BatchMatches(
            n_pings=n,
            ping=pair_ping[order].astype(np.int64),
            fence_id=fence_ids[order],
            distance_m=dist[order],
        )

    def _candidates(
        self, lon: FloatArray, lat: FloatArray, reach: FloatArray, merchant: IntArray
    ) -> tuple[IntArray, IntArray, bool]:
        """(ping, fence) pairs whose envelopes meet the pings' reach boxes, and whether a box
        crossed ±180°."""
        n = lon.size
        west, south, east, north = distance.bbox_around_array(lon, lat, reach)
        # Boxes across ±180° are queried as two halves, both pointing at the same ping.
        wraps = np.flatnonzero(west > east)
        q_ping = np.concatenate([np.arange(n), wraps])
        q_west = np.concatenate([west, np.full(wraps.size, -180.0)])
        q_east = np.concatenate([np.where(west > east, 180.0, east), east[wraps]])
        boxes = shapely.box(q_west, south[q_ping], q_east, north[q_ping])

        q_merchant = merchant[q_ping]
        order = np.argsort(q_merchant, kind="stable")
        keys, starts = np.unique(q_merchant[order], return_index=True)
        ends = [*starts[1:].tolist(), q_ping.size]
        ping_parts: list[IntArray] = []
        fence_parts: list[IntArray] = []
        for key, start, end in zip(keys.tolist(), starts.tolist(), ends, strict=True):
            group = self._groups.get(key)
            if group is None:
                continue
            tree, offset = group
            rows = order[start:end]
            found = tree.query(boxes[rows])
            ping_parts.append(q_ping[rows[found[0]]])
            fence_parts.append(found[1] + offset)
        pair_ping = np.concatenate(ping_parts) if ping_parts else np.empty(0, dtype=np.int64)
        pair_fence = np.concatenate(fence_parts) if fence_parts else np.empty(0, dtype=np.int64)
        if wraps.size and pair_ping.size:
            # A fence spanning all longitudes can be found through both halves.
            key_pairs = np.unique(pair_ping * len(self._fences) + pair_fence)
            pair_ping, pair_fence = np.divmod(key_pairs, len(self._fences))
        return pair_ping, pair_fence, bool(wraps.size)

    def _polygon_distances(
        self,
        fences: IntArray,
        lon: FloatArray,
        lat: FloatArray,
        reach: FloatArray,
        *,
        wrapped: bool,
    ) -> FloatArray:
        """Metres from each point to its polygon fence: 0 inside, inf when surely beyond reach."""
        dist = np.full(fences.size, np.inf)
        x_scale = _M_PER_DEG * np.cos(lat * _DEG)
        origin = lon
        if wrapped:
            # Near ±180° measure against the copy of the polygon nearest to the point; when no
            # query box wrapped, polygon and point already share one copy.
            origin = lon - 360.0 * np.round((lon - self._ref_lon[fences]) / 360.0)
        # The metre gap to the polygon's bounds is a lower bound of the distance: fences the
        # tree found only through the corners of the query box stop here.
        box = self._box[fences]
        gap_x = np.maximum(np.maximum(box[:, 0] - origin, origin - box[:, 2]), 0.0) * x_scale
        gap_y = np.maximum(np.maximum(box[:, 1] - lat, lat - box[:, 3]), 0.0) * _M_PER_DEG
        rows = np.flatnonzero(gap_x * gap_x + gap_y * gap_y <= reach * reach)
        inside = shapely.intersects_xy(self._geoms[fences[rows]], lon[rows], lat[rows])
        dist[rows[inside]] = 0.0
        rows = rows[~inside]
        if rows.size:
            dist[rows] = self._edge_distances(fences[rows], origin[rows], lat[rows], x_scale[rows])
        return dist

    def _polygons_near(
        self,
        fences: list[int],
        lon: float,
        lat: float,
        reach: float,
        wrapped: bool,
        out: dict[int, float],
    ) -> None:
        """Add to `out` each polygon fence within `reach` metres of one point, with its
        distance: `_polygon_distances` without numpy's per-call cost.

        One pass over each polygon's edges, in the point-centred frame of
        `_edge_distances`, gives both the crossing parity (inside or not: the frame is
        affine in lon/lat, so containment is the same) and the nearest edge.
        """
        x_scale = _M_PER_DEG * math.cos(lat * _DEG)
        reach2 = reach * reach
        boxes: list[list[float]] = self._box[fences].tolist()
        for k, (west, south, east, north) in zip(fences, boxes, strict=True):
            origin = lon
            if wrapped:
                origin = lon - distance.lon_shift((west + east) * 0.5, lon)
            # The metre gap to the polygon's bounds is a lower bound of the distance.
            gap_x = max(west - origin, origin - east, 0.0) * x_scale
            gap_y = max(south - lat, lat - north, 0.0) * _M_PER_DEG
            if gap_x * gap_x + gap_y * gap_y > reach2:
                continue
            start = self._seg_start_list[k]
            end = start + self._seg_count_list[k]
            d = _point_polygon_m(self._seg[start:end].tolist(), origin, lat, x_scale)
            if d <= reach:
                out[self._ids_list[k]] = d

    def _edge_distances(
        self,
        fences: IntArray,
        origin: float | FloatArray,
        lat: float | FloatArray,
        x_scale: float | FloatArray,
    ) -> FloatArray:
        """Metres from each point to the nearest edge of its polygon, in a frame centred on it.

        In an equirectangular frame centred on the point, straight lon/lat edges stay
        straight and metres are true near the point, so the nearest edge is measured right.
        `origin`, `lat` and `x_scale` are per fence, or one value for all.
        """
        counts = self._seg_count[fences]
        firsts = np.cumsum(counts) - counts
        seg = np.arange(int(counts.sum())) + np.repeat(self._seg_start[fences] - firsts, counts)
        if isinstance(origin, np.ndarray):
            origin = np.repeat(origin, counts)
        if isinstance(lat, np.ndarray):
            lat = np.repeat(lat, counts)
        if isinstance(x_scale, np.ndarray):
            x_scale = np.repeat(x_scale, counts)
        x1 = (self._seg_lon[seg] - origin) * x_scale
        y1 = (self._seg_lat[seg] - lat) * _M_PER_DEG
        dx = self._seg_dlon[seg] * x_scale
        dy = self._seg_dlat_m[seg]
        # Nearest point of each edge to the origin: clamp the projection onto the edge.
        t = -(x1 * dx + y1 * dy) / np.maximum(dx * dx + dy * dy, 1e-18)
        np.clip(t, 0.0, 1.0, out=t)
        x1 += t * dx
        y1 += t * dy
        nearest: FloatArray = np.sqrt(np.minimum.reduceat(x1 * x1 + y1 * y1, firsts))
        return nearest


def _point_polygon_m(edges: list[list[float]], origin: float, lat: float, x_scale: float) -> float:
    """Metres from a point to a polygon given by its edges (every ring): 0 inside.

    Each edge is its start lon and lat, its lon span in degrees and its lat span in metres.

    Inside is the even-odd crossing rule on a ray from the point towards +x, which for
    a valid polygon or multipolygon (holes inside shells, parts apart) is containment.
    """
    inside = False
    best = math.inf
    for x1, y1, dx, dy in edges:
        x1 = (x1 - origin) * x_scale
        y1 = (y1 - lat) * _M_PER_DEG
        dx *= x_scale
        y2 = y1 + dy
        if (y1 > 0.0) != (y2 > 0.0) and x1 - y1 * dx / dy > 0.0:
            inside = not inside
        # Nearest point of the edge to the origin: the projection, clamped to the edge.
        length2 = dx * dx + dy * dy
        t = -(x1 * dx + y1 * dy) / length2 if length2 > 1e-18 else 0.0
        if t < 0.0:
            t = 0.0
        elif t > 1.0:
            t = 1.0
        px = x1 + t * dx
        py = y1 + t * dy
        d2 = px * px + py * py
        if d2 < best:
            best = d2
    return 0.0 if inside else math.sqrt(best)


def _columns(
    fences: Sequence[Fence],
) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_], FloatArray, npt.NDArray[np.object_]]:
    """Merchant, id, is-circle, radius (NaN for polygons) and geometry, sorted by merchant."""
    n = len(fences)
    merchants = np.fromiter((f.merchant_id for f in fences), dtype=np.int64, count=n)
    order = np.argsort(merchants, kind="stable")
    ids = np.fromiter((f.id for f in fences), dtype=np.int64, count=n)[order]
    circle = np.fromiter((f.kind == "circle" for f in fences), dtype=bool, count=n)[order]
    radius = np.fromiter(
        (math.nan if f.radius_m is None else f.radius_m for f in fences),
        dtype=np.float64,
        count=n,
    )[order]
    geoms = np.empty(n, dtype=object)
    geoms[:] = [f.geometry for f in fences]
    return merchants[order], ids, circle, radius, geoms[order]


def _extents(
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


def _check(ids: IntArray, circle: Any, radius: FloatArray, geoms: Any) -> None:
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


def _segments(
    geoms: Any, polygons: IntArray, n: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, IntArray, IntArray]:
    """Every ring edge of every polygon, grouped by fence position.

    Returns each edge's start lon and lat, its lon span in degrees and lat span in metres,
    and per fence where its edges start and how many there are.
    """
    starts = np.zeros(n, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    if not polygons.size:
        empty = np.empty(0)
        return empty, empty, empty, empty, starts, counts
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
    return (
        np.ascontiguousarray(a[:, 0]),
        np.ascontiguousarray(a[:, 1]),
        b[:, 0] - a[:, 0],
        (b[:, 1] - a[:, 1]) * _M_PER_DEG,
        starts,
        counts,
    )
