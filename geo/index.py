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
BoolArray = npt.NDArray[np.bool_]

_DEG = math.pi / 180.0


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

    Fences are stored sorted by merchant so each merchant owns a contiguous slice and its own
    STRtree: a lookup only ever touches the asking merchant's fences.
    """

    __slots__ = (
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
        "_position",
        "_radius",
        "_radius_list",
        "_seg",
        "_seg_count",
        "_seg_start",
    )

    def __init__(self, fences: Sequence[Fence]) -> None:
        """Prefer `FenceIndex.build`; this does the same."""
        merchants = np.fromiter((f.merchant_id for f in fences), dtype=np.int64, count=len(fences))
        order = np.argsort(merchants, kind="stable")
        ordered = tuple(fences[i] for i in order.tolist())
        merchants = merchants[order]
        n = len(ordered)

        self._fences = ordered
        self._ids = np.fromiter((f.id for f in ordered), dtype=np.int64, count=n)
        self._position = dict(zip(self._ids.tolist(), range(n), strict=True))
        if len(self._position) != n:
            raise ValueError("fence ids must be unique")
        self._is_circle = np.fromiter((f.kind == "circle" for f in ordered), dtype=bool, count=n)

        for fence in ordered:
            _check_fence(fence)
        # Circles keep their centre and radius; polygons their geometry (NaN / None otherwise).
        self._clon = np.full(n, np.nan)
        self._clat = np.full(n, np.nan)
        self._radius = np.zeros(n)
        self._geoms = np.empty(n, dtype=object)
        for k, fence in enumerate(ordered):
            if fence.kind == "circle":
                self._clon[k] = fence.geometry.x
                self._clat[k] = fence.geometry.y
                self._radius[k] = float(fence.radius_m or 0.0)
            else:
                self._geoms[k] = fence.geometry

        polygons = np.flatnonzero(~self._is_circle)
        self._seg, self._seg_start, self._seg_count = _segments(self._geoms, polygons, n)

        west, south, east, north = distance.bbox_around_array(self._clon, self._clat, self._radius)
        # A circle straddling ±180° gets every longitude: rare, and still correct.
        wraps = west > east
        west = np.where(wraps, -180.0, west)
        east = np.where(wraps, 180.0, east)
        if polygons.size:
            bounds = shapely.bounds(self._geoms[polygons])
            west[polygons], south[polygons] = bounds[:, 0], bounds[:, 1]
            east[polygons], north[polygons] = bounds[:, 2], bounds[:, 3]
        envelopes = shapely.box(west, south, east, north)

        self._groups: dict[int, tuple[shapely.STRtree, int]] = {}
        if n:
            keys, starts = np.unique(merchants, return_index=True)
            ends = [*starts[1:].tolist(), n]
            for key, start, end in zip(keys.tolist(), starts.tolist(), ends, strict=True):
                self._groups[key] = (shapely.STRtree(envelopes[start:end]), start)

        # Plain lists: the single-ping path reads a few items, where numpy scalars are slow.
        self._ids_list: list[int] = self._ids.tolist()
        self._circle_list: list[bool] = self._is_circle.tolist()
        self._clon_list: list[float] = self._clon.tolist()
        self._clat_list: list[float] = self._clat.tolist()
        self._radius_list: list[float] = self._radius.tolist()
        for array in (self._ids, self._is_circle, self._clon, self._clat, self._radius):
            array.flags.writeable = False

    @classmethod
    def build(cls, fences: Iterable[Fence]) -> FenceIndex:
        """Index these fences (any order); raises ValueError on duplicate ids or bad fences."""
        return cls(list(fences))

    def __len__(self) -> int:
        return len(self._fences)

    def __repr__(self) -> str:
        return f"<FenceIndex fences={len(self._fences)} merchants={len(self._groups)}>"

    def get(self, fence_id: int) -> Fence | None:
        """The fence with this id, or None."""
        k = self._position.get(fence_id)
        return None if k is None else self._fences[k]

    def fences(self) -> tuple[Fence, ...]:
        """Every indexed fence, grouped by merchant."""
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
        if west <= east:
            hits = tree.query(shapely.box(west, south, east, north))
        else:
            hits = np.union1d(
                tree.query(shapely.box(west, south, 180.0, north)),
                tree.query(shapely.box(-180.0, south, east, north)),
            )
        out: dict[int, float] = {}
        if not len(hits):
            return out
        is_circle = self._circle_list
        for k in (hits + offset).tolist():
            if is_circle[k]:
                d = distance.haversine_m(lon, lat, self._clon_list[k], self._clat_list[k])
                d -= self._radius_list[k]
                if d <= reach:
                    out[self._ids_list[k]] = d if d > 0.0 else 0.0
            else:
                d = self._polygon_distance(k, lon, lat)
                if d <= reach:
                    out[self._ids_list[k]] = d
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
        lon_a, lat_a, acc_a, merchant_a = np.broadcast_arrays(
            np.asarray(lons, dtype=np.float64),
            np.asarray(lats, dtype=np.float64),
            np.asarray(accuracies_m, dtype=np.float64),
            np.asarray(merchant_ids, dtype=np.int64),
        )
        lon_a, lat_a = lon_a.ravel(), lat_a.ravel()
        merchant_a = merchant_a.ravel()
        reach = acc_a.ravel() + margin_m
        n = lon_a.size
        west, south, east, north = distance.bbox_around_array(lon_a, lat_a, reach)

        # Boxes across ±180° are queried as two halves, both pointing at the same ping.
        wraps = np.flatnonzero(west > east)
        q_ping = np.concatenate([np.arange(n), wraps])
        q_west = np.concatenate([west, np.full(wraps.size, -180.0)])
        q_east = np.concatenate([np.where(west > east, 180.0, east), east[wraps]])
        boxes = shapely.box(q_west, south[q_ping], q_east, north[q_ping])

        q_merchant = merchant_a[q_ping]
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
        if not ping_parts:
            empty = np.empty(0, dtype=np.int64)
            return BatchMatches(n_pings=n, ping=empty, fence_id=empty, distance_m=np.empty(0))
        pair_ping = np.concatenate(ping_parts)
        pair_fence = np.concatenate(fence_parts)
        if wraps.size:
            # A fence spanning all longitudes can be found through both halves.
            key_pairs = np.unique(pair_ping * len(self._fences) + pair_fence)
            pair_ping, pair_fence = np.divmod(key_pairs, len(self._fences))

        dist = np.empty(pair_ping.size)
        circle = self._is_circle[pair_fence]
        cp, cf = pair_ping[circle], pair_fence[circle]
        dist[circle] = np.maximum(
            distance.haversine_m_array(lon_a[cp], lat_a[cp], self._clon[cf], self._clat[cf])
            - self._radius[cf],
            0.0,
        )
        poly = np.flatnonzero(~circle)
        if poly.size:
            pp, pf = pair_ping[poly], pair_fence[poly]
            inside = shapely.intersects_xy(self._geoms[pf], lon_a[pp], lat_a[pp])
            d = np.zeros(poly.size)
            out = ~inside
            if out.any():
                d[out] = self._segment_distances(pf[out], lon_a[pp[out]], lat_a[pp[out]])
            dist[poly] = d

        keep = dist <= reach[pair_ping]
        pair_ping, pair_fence, dist = pair_ping[keep], pair_fence[keep], dist[keep]
        fence_ids = self._ids[pair_fence]
        order = np.lexsort((fence_ids, pair_ping))
        return BatchMatches(
            n_pings=n,
            ping=pair_ping[order].astype(np.int64),
            fence_id=fence_ids[order],
            distance_m=dist[order],
        )

    def _polygon_distance(self, k: int, lon: float, lat: float) -> float:
        if shapely.intersects_xy(self._geoms[k], lon, lat):
            return 0.0
        d = self._segment_distances(np.array([k], dtype=np.int64), np.array([lon]), np.array([lat]))
        return float(d[0])

    def _segment_distances(
        self, fences: IntArray, lons: FloatArray, lats: FloatArray
    ) -> FloatArray:
        """Metres from each point to the boundary of its polygon, in a frame centred on it.

        In an equirectangular frame centred on the point, straight lon/lat edges stay
        straight and metres are true near the point, so the nearest edge is measured right.
        """
        counts = self._seg_count[fences]
        firsts = np.cumsum(counts) - counts
        owner = np.repeat(np.arange(fences.size), counts)
        seg = np.arange(int(counts.sum())) - firsts[owner] + self._seg_start[fences][owner]
        lon0 = lons[owner]
        lat0 = lats[owner]
        x_scale = distance.M_PER_DEG * np.cos(lat0 * _DEG)
        s = self._seg[seg]
        x1 = distance.wrap_lon(s[:, 0] - lon0) * x_scale
        y1 = (s[:, 1] - lat0) * distance.M_PER_DEG
        dx = distance.wrap_lon(s[:, 2] - s[:, 0]) * x_scale
        dy = (s[:, 3] - s[:, 1]) * distance.M_PER_DEG
        length2 = dx * dx + dy * dy
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(length2 > 0.0, -(x1 * dx + y1 * dy) / length2, 0.0)
        t = np.clip(t, 0.0, 1.0)
        px = x1 + t * dx
        py = y1 + t * dy
        per_segment = np.sqrt(px * px + py * py)
        out: FloatArray = np.minimum.reduceat(per_segment, firsts)
        return out


def _check_fence(fence: Fence) -> None:
    kind = getattr(fence.geometry, "geom_type", None)
    if fence.kind == "circle":
        if kind != "Point" or fence.radius_m is None or not fence.radius_m > 0:
            raise ValueError(f"fence {fence.id}: a circle needs a Point and a positive radius_m")
    elif kind not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"fence {fence.id}: a polygon fence needs a (Multi)Polygon")


def _segments(
    geoms: npt.NDArray[Any], polygons: IntArray, n: int
) -> tuple[FloatArray, IntArray, IntArray]:
    """Every ring edge of every polygon as rows (lon1, lat1, lon2, lat2), grouped by fence.

    Returns the edges and, per fence position, where its edges start and how many there are.
    """
    starts = np.zeros(n, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    if not polygons.size:
        return np.empty((0, 4)), starts, counts
    parts, part_owner = shapely.get_parts(geoms[polygons], return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    # An edge joins consecutive coordinates of the same ring.
    same_ring = coord_ring[:-1] == coord_ring[1:]
    seg = np.concatenate([coords[:-1][same_ring], coords[1:][same_ring]], axis=1)
    seg_owner = polygons[part_owner[ring_part[coord_ring[:-1][same_ring]]]]
    # get_parts / get_rings / get_coordinates keep input order, so owners are ascending.
    per_fence = np.bincount(seg_owner, minlength=n)
    counts[:] = per_fence
    starts[:] = np.cumsum(per_fence) - per_fence
    return np.ascontiguousarray(seg), starts, counts
