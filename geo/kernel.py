"""One-ping distances compiled by numba: one loop over a ping's candidates in machine code,
where the numpy path pays a fixed cost for each of its forty-odd array calls.

numba is a dependency, but the index never needs it: `FenceIndex` keeps its numpy path and
takes it when numba cannot be imported or the choice is "numpy". numba is imported, and the
loop compiled (or loaded from numba's cache), when the first index with fences is built, so
neither importing `geo` nor the first ping pays for it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from geo import distance, layout
from geo.models import MATCH_KERNELS

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_DEG = math.pi / 180.0
_M_PER_DEG = distance.M_PER_DEG
_TWO_R = 2.0 * distance.EARTH_RADIUS_M
# Columns of the fence table: circle centre on the sphere of diameter 1, radius (0 for
# polygons), and the lon/lat box.
_X, _Y, _Z, _RADIUS, _WEST, _SOUTH, _EAST, _NORTH = range(8)
_LON, _LAT, _DLON, _DLAT_M, _LAT_M, _DLAT_M2 = (
    layout.LON,
    layout.LAT,
    layout.DLON,
    layout.DLAT_M,
    layout.LAT_M,
    layout.DLAT_M2,
)


@dataclass(frozen=True, slots=True)
class Tables:
    """An index snapshot's arrays as the compiled loop reads them (read-only)."""

    circle: npt.NDArray[np.bool_]
    fence: FloatArray
    seg: FloatArray
    seg_start: IntArray
    seg_count: IntArray
    ids: IntArray


def tables(
    ids: IntArray,
    circle: npt.NDArray[np.bool_],
    sphere: tuple[FloatArray, FloatArray, FloatArray],
    radius: FloatArray,
    box: FloatArray,
    segments: tuple[FloatArray, IntArray, IntArray],
) -> Tables:
    """Gather a snapshot's columns (see `layout`) into the tables of the compiled loop."""
    fence = np.column_stack([*sphere, radius, box])
    seg, seg_start, seg_count = segments
    out = Tables(
        circle=np.ascontiguousarray(circle),
        fence=np.ascontiguousarray(fence, dtype=np.float64),
        seg=np.ascontiguousarray(seg, dtype=np.float64),
        seg_start=np.ascontiguousarray(seg_start, dtype=np.int64),
        seg_count=np.ascontiguousarray(seg_count, dtype=np.int64),
        ids=np.ascontiguousarray(ids, dtype=np.int64),
    )
    for array in (out.circle, out.fence, out.seg, out.seg_start, out.seg_count, out.ids):
        array.flags.writeable = False
    return out


def _measure(
    hits: IntArray,
    lon: float,
    lat: float,
    reach: float,
    shifted: bool,
    circle: npt.NDArray[np.bool_],
    fence: FloatArray,
    seg: FloatArray,
    seg_start: IntArray,
    seg_count: IntArray,
    ids: IntArray,
    out: FloatArray,
) -> int:
    """Measure one point against the fences at positions `hits` and keep those in reach.

    The first n entries (n returned) of `hits` become the kept fences' ids and those of
    `out` their distances in metres (0 inside). Circles: the chord to their centre on the
    sphere. Polygons: the even-odd crossing rule and the nearest edge, in the frame centred
    on the point, as `index._point_polygon_m`; those whose box is beyond reach are skipped.
    """
    p_lat = lat * _DEG
    half_cos = 0.5 * math.cos(p_lat)
    ux = half_cos * math.cos(lon * _DEG)
    uy = half_cos * math.sin(lon * _DEG)
    uz = 0.5 * math.sin(p_lat)
    x_scale = _M_PER_DEG * math.cos(p_lat)
    lat_m = lat * _M_PER_DEG
    reach2 = reach * reach
    kept = 0
    for k in range(hits.size):
        h = hits[k]
        if circle[h]:
            a = fence[h, _X] - ux
            b = fence[h, _Y] - uy
            c = fence[h, _Z] - uz
            chord = min(math.sqrt(a * a + b * b + c * c), 1.0)  # rounding, for antipodes
            d = max(math.asin(chord) * _TWO_R - fence[h, _RADIUS], 0.0)
        else:
            west, east = fence[h, _WEST], fence[h, _EAST]
            origin = lon
            if shifted:
                # Near ±180°: the copy of the polygon nearest to the point.
                origin = lon - 360.0 * np.rint((lon - (west + east) * 0.5) / 360.0)
            # The metre gap to the polygon's box is a lower bound of its distance.
            gap_x = max(west - origin, origin - east, 0.0) * x_scale
            gap_y = max(fence[h, _SOUTH] - lat, lat - fence[h, _NORTH], 0.0) * _M_PER_DEG
            if gap_x * gap_x + gap_y * gap_y > reach2:
                continue
            inside = False
            best = math.inf
            for e in range(seg_start[h], seg_start[h] + seg_count[h]):
                x = (seg[e, _LON] - origin) * x_scale
                y = seg[e, _LAT_M] - lat_m
                dx = seg[e, _DLON] * x_scale
                dy = seg[e, _DLAT_M]
                if (y > 0.0) != (y + dy > 0.0) and x - y * dx / dy > 0.0:
                    inside = not inside
                # The edge's nearest point to the origin: the projection, clamped to the edge.
                t = min(max(-(x * dx + y * dy) / (dx * dx + seg[e, _DLAT_M2]), 0.0), 1.0)
                x += t * dx
                y += t * dy
                best = min(best, x * x + y * y)
            d = 0.0 if inside else math.sqrt(best)
        if d <= reach:
            hits[kept] = ids[h]
            out[kept] = d
            kept += 1
    return kept


def _measure_runs(
    starts: IntArray,
    ping: IntArray,
    hits: IntArray,
    pings: FloatArray,
    shifted: npt.NDArray[np.bool_],
    circle: npt.NDArray[np.bool_],
    fence: FloatArray,
    seg: FloatArray,
    seg_start: IntArray,
    seg_count: IntArray,
    ids: IntArray,
    out: FloatArray,
    kept: npt.NDArray[np.bool_],
) -> None:
    """`_measure` over a batch: `hits[starts[r]:starts[r + 1]]` are the candidates of ping
    `ping[starts[r]]`, whose (lon, lat, reach) is that row of `pings`. Marks in `kept` the
    entries `_measure` kept, after writing their ids and distances in place."""
    for r in range(starts.size):
        a = starts[r]
        b = starts[r + 1] if r + 1 < starts.size else hits.size
        i = ping[a]
        args = (circle, fence, seg, seg_start, seg_count, ids)
        k = _kernel(hits[a:b], pings[i, 0], pings[i, 1], pings[i, 2], shifted[i], *args, out[a:b])
        kept[a : a + k] = True


Measure = Callable[
    [IntArray, float, float, float, bool, Any, FloatArray, FloatArray, Any, Any, Any, FloatArray],
    int,
]
_compiled: Measure | None = None
# The compiled `_measure`, as `_measure_runs` calls it, and the compiled `_measure_runs`.
_kernel: Any = None
_runs: Any = None
_failed = False
_lock = threading.Lock()


def compiled(choice: str, *, wanted: bool = True) -> Measure | None:
    """The compiled loop for this choice, or None for the numpy path (or when not `wanted`:
    an empty index measures nothing, and need not import numba).

    "auto" takes numba when it can be imported, "numba" insists on it (ImportError
    otherwise), "numpy" never takes it. The first call imports numba and compiles the loop
    or loads it from numba's cache; later calls return it at once.
    """
    global _compiled, _failed
    if choice not in MATCH_KERNELS:
        raise ValueError(f"match kernel must be one of {'/'.join(MATCH_KERNELS)}, not {choice!r}")
    if not wanted or choice == "numpy" or (choice == "auto" and _failed):
        return None
    with _lock:
        if _compiled is None:
            try:
                _compiled = _compile()
            except ImportError:
                if choice == "numba":
                    raise
                _failed = True
                log.warning("numba unavailable: one-ping matching takes the numpy path")
                return None
    return _compiled


def _compile() -> Measure:
    started = time.perf_counter()
    # Imported only when an index first needs it: numba takes 0.2 s to import.
    import numba

    # cache=True keeps the machine code beside this module (or in numba's user cache),
    # so that only the first process after an install pays for the compilation.
    try:
        measure = cast(Measure, numba.njit(cache=True, nogil=True)(_measure))
    except RuntimeError:  # nowhere writable to cache (a read-only image, no home)
        log.warning("numba has nowhere to cache the match kernel: it compiles in each process")
        measure = cast(Measure, numba.njit(nogil=True)(_measure))
    # Compile now, for the argument types the index passes (read-only tables).
    empty = tables(
        np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=bool),
        (np.zeros(1), np.zeros(1), np.zeros(1)),
        np.zeros(1),
        np.zeros((1, 4)),
        (np.zeros((0, 6)), np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)),
    )
    no_hits = np.zeros(0, dtype=np.int64)
    measure(no_hits, 0.0, 0.0, 0.0, False, *_args(empty), np.zeros(0))  # type: ignore[call-arg]
    _compile_runs(measure, empty)
    log.info(
        "one-ping kernel ready",
        extra={"numba": numba.__version__, "seconds": round(time.perf_counter() - started, 3)},
    )
    return measure


def _compile_runs(measure: Measure, empty: Tables) -> None:
    """Compile `_measure_runs`, which calls the compiled `measure` through `_kernel`."""
    global _kernel, _runs
    import numba

    _kernel = measure
    runs: Any
    try:
        runs = numba.njit(cache=True, nogil=True)(_measure_runs)
    except RuntimeError:
        runs = numba.njit(nogil=True)(_measure_runs)
    none = np.zeros(0, dtype=np.int64)
    runs(
        none,
        none,
        none,
        np.zeros((0, 3)),
        np.zeros(0, dtype=bool),
        *_args(empty),
        np.zeros(0),
        np.zeros(0, dtype=bool),
    )
    _runs = runs


def _args(t: Tables) -> tuple[Any, ...]:
    return (t.circle, t.fence, t.seg, t.seg_start, t.seg_count, t.ids)


def measure_pairs(
    t: Tables,
    pair_ping: IntArray,
    pair_fence: IntArray,
    pings: tuple[FloatArray, FloatArray, FloatArray],
    shifted: npt.NDArray[np.bool_],
) -> tuple[IntArray, IntArray, FloatArray]:
    """The compiled loop over a batch's (ping, fence position) candidate pairs: for each
    ping, exactly what `FenceIndex.match` measures for that ping alone, in one compiled
    call for the whole batch. Only once `compiled` has returned the compiled loop.

    `pings` is (lon, lat, reach) per ping and `shifted` whether the ping's box touches
    ±180°. Returns the kept pairs as (ping, fence id, metres), grouped by ping.
    """
    order = np.argsort(pair_ping, kind="stable")
    ping = pair_ping[order]
    hits = np.ascontiguousarray(pair_fence[order], dtype=np.int64)
    dist = np.empty(hits.size)
    kept = np.zeros(hits.size, dtype=bool)
    starts = np.flatnonzero(np.diff(ping, prepend=-1))  # where each ping's pairs start
    table = np.column_stack(pings)
    _runs(starts, ping, hits, table, shifted, *_args(t), dist, kept)
    return ping[kept], hits[kept], dist[kept]
