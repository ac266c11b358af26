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

from geo import distance, kernel, layout
from geo.models import Fence, MatchKernel

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_DEG = math.pi / 180.0
_M_PER_DEG = distance.M_PER_DEG
_TWO_R = 2.0 * distance.EARTH_RADIUS_M
# Up to this many candidates a plain Python loop beats the fixed cost of the array path.
_SCALAR_CANDIDATES = 4
# shapely.box's argument-checking wrapper costs more than making the box; the
# ufunc underneath is the same call without it.
_LIB_BOX: Any = getattr(shapely.lib, "box", None)


def _box(xmin: float, ymin: float, xmax: float, ymax: float) -> Any:
    if _LIB_BOX is None:  # pragma: no cover - a shapely without the ufunc
        return shapely.box(xmin, ymin, xmax, ymax)
    return _LIB_BOX(xmin, ymin, xmax, ymax, True)  # True: counter-clockwise, as box() makes


@dataclass(frozen=True, slots=True)
class _Group:
    """One merchant's slice of the arrays: its fences from `start`, circles first and
    polygons from `polygons` on, its tree, and its polygons' edge rows (None: too long)."""

    tree: shapely.STRtree
    start: int
    polygons: int
    edge_rows: npt.NDArray[np.int32] | None


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
        "_cx",
        "_cy",
        "_cz",
        "_fences",
        "_geoms",
        "_groups",
        "_ids",
        "_ids_list",
        "_is_circle",
        "_measure",
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
        "_tables",
    )

    def __init__(self, fences: Sequence[Fence], match_kernel: MatchKernel = "auto") -> None:
        """Prefer `FenceIndex.build`; this does the same."""
        n = len(fences)
        self._fences = tuple(fences)
        self._by_id = {f.id: f for f in fences}
        if len(self._by_id) != n:
            raise ValueError("fence ids must be unique")
        merchants, ids, circle, radius, geoms = layout.columns(fences)
        layout.check(ids, circle, radius, geoms)
        clon, clat, radius, west, south, east, north = layout.extents(geoms, circle, radius)
        self._box = np.column_stack([west, south, east, north])
        self._ref_lon = (west + east) * 0.5
        # One row per edge, so that one polygon's edges are one slice; the columns are
        # views of it for the batched path.
        self._seg, self._seg_start, self._seg_count = layout.segments(
            geoms, np.flatnonzero(~circle), n
        )
        self._seg_lon, self._seg_lat = self._seg[:, layout.LON], self._seg[:, layout.LAT]
        self._seg_dlon, self._seg_dlat_m = self._seg[:, layout.DLON], self._seg[:, layout.DLAT_M]
        self._cx, self._cy, self._cz = layout.sphere(clon, clat)

        # The tree only needs envelopes: a polygon is its own, a circle gets its box.
        envelopes = geoms.copy()
        circles = np.flatnonzero(circle)
        envelopes[circles] = shapely.box(
            west[circles], south[circles], east[circles], north[circles]
        )
        self._groups: dict[int, _Group] = {}
        if n:
            keys, starts = np.unique(merchants, return_index=True)
            ends = [*starts[1:].tolist(), n]
            for key, start, end in zip(keys.tolist(), starts.tolist(), ends, strict=True):
                polygons = start + int(np.count_nonzero(circle[start:end]))
                rows = layout.edge_rows(
                    self._seg_start[polygons:end], self._seg_count[polygons:end]
                )
                tree = shapely.STRtree(envelopes[start:end])
                self._groups[key] = _Group(tree, start, polygons, rows)

        self._ids, self._is_circle, self._geoms = ids, circle, geoms
        self._clon, self._clat, self._radius = clon, clat, radius
        # Plain lists: the few-candidate path reads a few items, where numpy scalars are slow.
        self._ids_list: list[int] = ids.tolist()
        self._circle_list: list[bool] = circle.tolist()
        self._clon_list: list[float] = clon.tolist()
        self._clat_list: list[float] = clat.tolist()
        self._radius_list: list[float] = radius.tolist()
        self._seg_start_list: list[int] = self._seg_start.tolist()
        self._seg_count_list: list[int] = self._seg_count.tolist()
        for array in (ids, circle, geoms, clon, clat, radius, self._box, self._ref_lon):
            array.flags.writeable = False
        for array in (self._seg, self._seg_start, self._seg_count, self._cx, self._cy, self._cz):
            array.flags.writeable = False
        # Compiled (or loaded) here, while the snapshot is built off the serving path.
        self._measure = kernel.compiled(match_kernel, wanted=n > 0)
        self._tables: kernel.Tables | None = None
        if self._measure is not None:
            self._tables = kernel.tables(
                ids,
                circle,
                (self._cx, self._cy, self._cz),
                radius,
                self._box,
                (self._seg, self._seg_start, self._seg_count),
            )

    @classmethod
    def build(cls, fences: Iterable[Fence], match_kernel: MatchKernel = "auto") -> FenceIndex:
        """Index these fences (any order); ValueError on duplicate ids or malformed fences.

        `match_kernel` picks how `match` measures a ping's candidates: "numba" (compiled),
        "numpy", or "auto" (numba when it can be imported). Both give the same answers.
        """
        return cls(fences if isinstance(fences, Sequence) else list(fences), match_kernel)

    @property
    def match_kernel(self) -> str:
        """ "numba" or "numpy": how `match` measures candidates in this snapshot."""
        return "numpy" if self._measure is None else "numba"

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
        reach = accuracy_m + margin_m
        found = self._lookup(lon, lat, reach, merchant_id)
        if found is None:
            return {}
        group, hits, shifted = found
        measure, t = self._measure, self._tables
        if measure is not None and t is not None:
            dist = np.empty(hits.size)
            args = (t.circle, t.fence, t.seg, t.seg_start, t.seg_count, t.ids, dist)
            n = measure(hits, lon, lat, reach, shifted, *args)
            return dict(zip(hits[:n].tolist(), dist[:n].tolist(), strict=True))
        if len(hits) > _SCALAR_CANDIDATES:
            dist = self._distances(group, hits, lon, lat, shifted)
            keep = dist <= reach
            return dict(zip(self._ids[hits[keep]].tolist(), dist[keep].tolist(), strict=True))
        out: dict[int, float] = {}
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
            self._polygons_near(polygons, lon, lat, reach, shifted, out)
        return out

    def _lookup(
        self, lon: float, lat: float, reach: float, merchant_id: int
    ) -> tuple[_Group, IntArray, bool] | None:
        """The merchant's group, the positions of the fences whose envelopes meet the box
        of `reach` metres around the point (None if there are none), and whether that box
        touches ±180°, where polygons must be measured on their copy nearest the point."""
        group = self._groups.get(merchant_id)
        if group is None:
            return None
        west, south, east, north = distance.bbox_around(lon, lat, reach)
        wrapped = west > east
        # A one-element array of boxes: shapely's scalar query path costs more than the search.
        boxes = np.empty(2 if wrapped else 1, dtype=object)
        if not wrapped:
            boxes[0] = _box(west, south, east, north)
            hits = group.tree.query(boxes)[1]
        else:
            boxes[0] = _box(west, south, 180.0, north)
            boxes[1] = _box(-180.0, south, east, north)
            hits = np.unique(group.tree.query(boxes)[1])
        if not len(hits):
            return None
        hits += group.start
        return group, hits, wrapped or west <= -180.0 or east >= 180.0

    def _distances(
        self, group: _Group, hits: IntArray, lon: float, lat: float, shifted: bool
    ) -> FloatArray:
        """Metres from one point to each of its candidates, in a few array operations
        whatever their number. Sorts `hits` in place; the result follows that order.

        Circles: the chord to their centres on the sphere gives the haversine distance.
        Polygons: GEOS tells which contain the point; the others are measured to their
        edges in the equirectangular frame centred on the point, as
        `distance.polygon_distance_m` does one polygon at a time.
        """
        hits.sort()
        split = int(hits.searchsorted(group.polygons))
        dist = np.empty(hits.size)
        if split:
            c = hits[:split]
            p_lat, p_lon = lat * _DEG, lon * _DEG
            half_cos = 0.5 * math.cos(p_lat)
            x = self._cx[c]
            x -= half_cos * math.cos(p_lon)
            x *= x
            y = self._cy[c]
            y -= half_cos * math.sin(p_lon)
            y *= y
            x += y
            y = self._cz[c]
            y -= 0.5 * math.sin(p_lat)
            y *= y
            x += y
            np.sqrt(x, out=x)
            np.minimum(x, 1.0, out=x)  # rounding, for antipodes
            d = np.arcsin(x, out=dist[:split])
            d *= _TWO_R
            d -= self._radius[c]
            np.maximum(d, 0.0, out=d)
        if split < hits.size:
            self._polygons_from(group, hits[split:], lon, lat, shifted, dist[split:])
        return dist

    def _polygons_from(
        self, group: _Group, p: IntArray, lon: float, lat: float, shifted: bool, out: FloatArray
    ) -> None:
        """Write to `out` the metres from one point to each polygon in `p` (0 inside)."""
        if group.edge_rows is None:
            n = p.size
            out[:] = self._polygon_distances(
                p, np.full(n, lon), np.full(n, lat), np.full(n, np.inf), wrapped=shifted
            )
            return
        # Every polygon's edges as one padded row: (polygons, edges, columns).
        e = self._seg[group.edge_rows[p - group.polygons]]
        origin: float | FloatArray = lon
        if shifted:
            origin = (lon - 360.0 * np.round((lon - self._ref_lon[p]) / 360.0))[:, None]
        x_scale = _M_PER_DEG * math.cos(lat * _DEG)
        x = e[..., layout.LON] - origin
        x *= x_scale
        y = e[..., layout.LAT_M] - lat * _M_PER_DEG
        dx = e[..., layout.DLON] * x_scale
        dy = e[..., layout.DLAT_M]
        # -t, where x + t dx, y + t dy is the edge's nearest point to the origin.
        t = x * dx
        t += y * dy
        length2 = dx * dx
        length2 += e[..., layout.DLAT_M2]
        t /= length2
        np.maximum(t, -1.0, out=t)
        np.minimum(t, 0.0, out=t)
        dx *= t
        x -= dx
        t *= dy
        y -= t
        np.minimum.reduce(np.hypot(x, y), axis=1, out=out)
        inside = shapely.intersects_xy(self._geoms[p], lon, lat)
        np.copyto(out, 0.0, where=inside)

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
        if self._measure is not None and self._tables is not None:
            west, _, east, _ = distance.bbox_around_array(lon_a, lat_a, reach)
            shifted = (west > east) | (west <= -180.0) | (east >= 180.0)
            p, ids, d = kernel.measure_pairs(
                self._tables, pair_ping, pair_fence, (lon_a, lat_a, reach), shifted
            )
            order = np.lexsort((ids, p))
            return BatchMatches(n_pings=n, ping=p[order], fence_id=ids[order], distance_m=d[order])
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
            rows = order[start:end]
            found = group.tree.query(boxes[rows])
            ping_parts.append(q_ping[rows[found[0]]])
            fence_parts.append(found[1] + group.start)
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
            d = _point_polygon_m(self._seg[start:end, :4].tolist(), origin, lat, x_scale)
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
