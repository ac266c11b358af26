"""Benchmark of the geofence index: build time and match cost per ping, against brute force.

Run: python tests/benchmarks/bench_geo.py --fences 100000 --pings 20000
Fences: ~80 % metre circles (30-300 m) and ~20 % small polygons (5-40 vertices); 80 % of
them spread over a 30 x 30 km city, the rest over five other cities. Pings: half anywhere in
the main city, half within 400 m of one of the asking merchant's fences. With --merchants 1
(the dense layout) every fence is the asking merchant's. One-ping matching is timed on the
numba kernel and on the numpy path (the fallback, also in its parts: candidate lookup,
distances, building the result) in alternated rounds, and the two are checked to agree.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from geo import distance, fences
from geo.index import FenceIndex
from geo.models import Fence
from tests.benchmarks import figures

MAIN_CITY = (2.3522, 48.8566)  # Paris
OTHER_CITIES = [(4.8357, 45.7640), (13.4050, 52.5200), (-3.7038, 40.4168), (9.19, 45.4642)]
OTHER_CITIES.append((-73.9857, 40.7484))
M_PER_DEG_LAT = distance.M_PER_DEG


def offset(lon: Any, lat: Any, east_m: Any, north_m: Any) -> tuple[Any, Any]:
    """Move by metres (numbers or arrays), on the sphere the index uses."""
    return (
        lon + east_m / (M_PER_DEG_LAT * math.cos(math.radians(lat))),
        lat + north_m / M_PER_DEG_LAT,
    )


def make_fences(n: int, merchants: int, seed: int) -> list[Fence]:
    rng = np.random.default_rng(seed)
    out: list[Fence] = []
    for i in range(n):
        if rng.random() < 0.8:
            city, half = MAIN_CITY, 15_000.0
        else:
            city, half = OTHER_CITIES[int(rng.integers(len(OTHER_CITIES)))], 5_000.0
        lon, lat = offset(*city, *rng.uniform(-half, half, 2))
        merchant = int(rng.integers(1, merchants + 1))
        if rng.random() < 0.8:
            out.append(
                Fence(
                    id=i + 1,
                    merchant_id=merchant,
                    store_id=i + 1,
                    kind="circle",
                    geometry=shapely.Point(lon, lat),
                    radius_m=float(rng.uniform(30.0, 300.0)),
                )
            )
            continue
        corners = int(rng.integers(5, 41))
        angles = np.sort(rng.uniform(0.0, 2 * math.pi, corners))
        radii = rng.uniform(20.0, 150.0, corners)
        xs, ys = offset(lon, lat, radii * np.cos(angles), radii * np.sin(angles))
        polygon = shapely.Polygon(np.column_stack([xs, ys]))
        if not polygon.is_valid:
            polygon = shapely.convex_hull(polygon)
        out.append(
            Fence(
                id=i + 1,
                merchant_id=merchant,
                store_id=i + 1,
                kind="polygon",
                geometry=polygon,
                radius_m=None,
            )
        )
    return out


def make_pings(
    fence_list: list[Fence], n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lons = np.empty(n)
    lats = np.empty(n)
    merchant = np.empty(n, dtype=np.int64)
    for k in range(n):
        fence = fence_list[int(rng.integers(len(fence_list)))]
        merchant[k] = fence.merchant_id
        if k % 2:
            centre = fence.geometry.centroid
            lons[k], lats[k] = offset(centre.x, centre.y, *rng.uniform(-400.0, 400.0, 2))
        else:
            lons[k], lats[k] = offset(*MAIN_CITY, *rng.uniform(-15_000.0, 15_000.0, 2))
    accuracy = rng.uniform(5.0, 65.0, n)
    # Ask for what the state machine needs: every fence within the exit distance.
    reach = np.array([fences.reach_m(a) for a in accuracy.tolist()])
    return lons, lats, reach, merchant


class BruteForce:
    """Per ping, numpy over every fence of the merchant: the baseline the index must beat."""

    def __init__(self, fence_list: list[Fence]) -> None:
        self.merchant = np.array([f.merchant_id for f in fence_list])
        self.ids = np.array([f.id for f in fence_list])
        circle = np.array([f.kind == "circle" for f in fence_list])
        self.circle = circle
        self.clon = np.array(
            [f.geometry.x if c else 0.0 for f, c in zip(fence_list, circle, strict=True)]
        )
        self.clat = np.array(
            [f.geometry.y if c else 0.0 for f, c in zip(fence_list, circle, strict=True)]
        )
        self.radius = np.array([f.radius_m or 0.0 for f in fence_list])
        self.geoms = np.array([f.geometry for f in fence_list], dtype=object)

    def match(self, lon: float, lat: float, reach: float, merchant: int) -> dict[int, float]:
        mine = self.merchant == merchant
        out: dict[int, float] = {}
        c = np.flatnonzero(mine & self.circle)
        d = distance.haversine_m_array(lon, lat, self.clon[c], self.clat[c]) - self.radius[c]
        hit = d <= reach
        out.update(zip(self.ids[c[hit]].tolist(), np.maximum(d[hit], 0.0).tolist(), strict=True))
        p = np.flatnonzero(mine & ~self.circle)
        # Metre distances on polygons only where the lon/lat bounds are close enough.
        west, south, east, north = distance.bbox_around(lon, lat, reach)
        b = shapely.bounds(self.geoms[p])
        near = (b[:, 0] <= east) & (b[:, 2] >= west) & (b[:, 1] <= north) & (b[:, 3] >= south)
        for k in p[near].tolist():
            dk = distance.polygon_distance_m(self.geoms[k], lon, lat)
            if dk <= reach:
                out[int(self.ids[k])] = dk
        return out


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best of `repeat` runs, in CPU seconds of this thread: other processes on a shared
    machine then slow it less than they slow the wall clock."""
    best = math.inf
    for _ in range(repeat):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best


LAST: dict[str, float] = {}
ROUNDS = 7


def one_ping(
    fast: FenceIndex, slow: FenceIndex, pings: list[list[Any]]
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """CPU µs a ping of `match` on the compiled kernel (`fast`) and on the numpy path
    (`slow`), and the numpy path's parts: best of ROUNDS rounds that alternate all five,
    so that load on the machine weighs on them alike; and every round's figures."""
    lon_l, lat_l, reach_l, merchant_l = pings
    n = len(lon_l)

    def whole(index: FenceIndex) -> Callable[[], None]:
        def go() -> None:
            for k in range(n):
                index.match(lon_l[k], lat_l[k], reach_l[k], merchant_l[k])

        return go

    def lookup() -> None:
        for k in range(n):
            slow._lookup(lon_l[k], lat_l[k], reach_l[k], merchant_l[k])

    def lookup_and_measure() -> None:
        for k in range(n):
            found = slow._lookup(lon_l[k], lat_l[k], reach_l[k], merchant_l[k])
            if found is not None:
                slow._distances(found[0], found[1], lon_l[k], lat_l[k], found[2])

    steps = {
        "kernel": whole(fast),
        "numpy": whole(slow),
        "lookup": lookup,
        "measure": lookup_and_measure,
    }
    rounds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(ROUNDS):
        for name, fn in steps.items():
            rounds[name].append(timed(fn, 1) * 1e6 / n)
    best = {name: min(values) for name, values in rounds.items()}
    return {
        "kernel_us": best["kernel"],
        "numpy_us": best["numpy"],
        "lookup_us": best["lookup"],
        "measure_us": best["measure"] - best["lookup"],
        "results_us": best["numpy"] - best["measure"],
    }, rounds


def run(n_fences: int, n_pings: int, merchants: int, seed: int) -> list[tuple[str, str]]:
    fence_list = make_fences(n_fences, merchants, seed)
    build_times = [timed(lambda: FenceIndex.build(fence_list), 1) for _ in range(3)]
    index = FenceIndex.build(fence_list, "numba")
    numpy_path = FenceIndex.build(fence_list, "numpy")
    lons, lats, reach, merchant = make_pings(fence_list, n_pings, seed + 1)
    pings = [a.tolist() for a in (lons, lats, reach, merchant)]
    lon_l, lat_l, reach_l, merchant_l = pings

    def batched(size: int) -> Callable[[], None]:
        def go() -> None:
            for start in range(0, n_pings, size):
                end = start + size
                index.match_many(
                    lons[start:end], lats[start:end], reach[start:end], merchant[start:end]
                )

        return go

    singles = [index.match(*(column[k] for column in pings)) for k in range(n_pings)]
    fallback = [numpy_path.match(*(column[k] for column in pings)) for k in range(n_pings)]
    same = all(
        a.keys() == b.keys() and all(abs(a[f] - b[f]) <= 1e-6 for f in a)
        for a, b in zip(singles, fallback, strict=True)
    )
    hits = sum(len(m) for m in singles) / n_pings
    best, rounds = one_ping(index, numpy_path, pings)
    t_batch_all = timed(batched(n_pings), 3)
    t_batch_256 = timed(batched(256), 3)
    brute = BruteForce(fence_list)
    n_brute = min(n_pings, 500)
    t_brute = timed(
        lambda: [
            brute.match(lon_l[k], lat_l[k], reach_l[k], merchant_l[k]) for k in range(n_brute)
        ],
        1,
    )
    agree = all(
        brute.match(lon_l[k], lat_l[k], reach_l[k], merchant_l[k]).keys() == singles[k].keys()
        for k in range(min(n_brute, 200))
    )
    per = 1e6 / n_pings
    LAST.update(
        best,
        build_ms=statistics.median(build_times) * 1e3,
        batched_us=t_batch_256 * per,
        brute_us=t_brute * 1e6 / n_brute,
        hits=hits,
    )
    every = {name: " ".join(f"{v:.1f}" for v in values) for name, values in rounds.items()}
    return [
        ("merchants", f"{merchants} ({n_fences // merchants} fences each)"),
        ("build index, median of 3", f"{statistics.median(build_times) * 1e3:.0f} ms"),
        ("fences matched per ping (mean)", f"{hits:.2f}"),
        ("match(), one ping per call, numba kernel", f"{best['kernel_us']:.2f} µs/ping"),
        ("match(), one ping per call, numpy path", f"{best['numpy_us']:.2f} µs/ping"),
        ("  of which candidate lookup (box, STRtree)", f"{best['lookup_us']:.2f} µs/ping"),
        ("  of which distances", f"{best['measure_us']:.2f} µs/ping"),
        ("  of which building the result", f"{best['results_us']:.2f} µs/ping"),
        ("numba and numpy paths give the same matches", "yes" if same else "NO"),
        (
            f"every round, µs/ping ({ROUNDS}, alternated)",
            "; ".join(f"{k} {v}" for k, v in every.items()),
        ),
        (f"match_many(), one batch of {n_pings}", f"{t_batch_all * per:.2f} µs/ping"),
        ("match_many(), batches of 256", f"{t_batch_256 * per:.2f} µs/ping"),
        (f"numpy brute force ({n_brute} pings)", f"{t_brute * 1e6 / n_brute:.1f} µs/ping"),
        ("index agrees with brute force", "yes" if agree else "NO"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fences", type=int, default=100_000)
    parser.add_argument("--pings", type=int, default=20_000)
    parser.add_argument(
        "--merchants",
        type=int,
        nargs="+",
        default=[100, 10, 1],
        help="run once per merchant count; 1 is the worst case (every fence is a candidate)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    rows_out = []
    print(f"python {sys.version.split()[0]}, shapely {shapely.__version__}, numpy {np.__version__}")
    print(f"{args.fences} fences, {args.pings} pings; reach = fences.reach_m(accuracy 5-65 m)")
    for merchants in args.merchants:
        rows = run(args.fences, args.pings, merchants, args.seed)
        width = max(len(name) for name, _ in rows)
        print()
        for name, value in rows:
            print(f"  {name:<{width}}  {value}")
        per_merchant = f"{args.fences // merchants:,} fences per merchant"
        brute = "numpy brute force"
        one_ping = "one-ping matching, dense layout" if merchants == 1 else "one-ping matching"
        against_brute = [
            (f"{one_ping}, numba kernel", "kernel_us"),
            (f"{one_ping}, numpy path, the fallback", "numpy_us"),
            ("matching per ping, batches of 256", "batched_us"),
        ]
        rows_out += [
            figures.row(
                f"{name} ({per_merchant})",
                LAST[key],
                "us",
                baseline=LAST["brute_us"],
                baseline_name=brute,
                higher_is_better=False,
            )
            for name, key in against_brute
        ]
        rows_out += [
            figures.row(f"  numpy path: {part}, one ping ({per_merchant})", LAST[key], "us")
            for part, key in (
                ("candidate lookup: reach box and STRtree query", "lookup_us"),
                ("distances to all candidates, array operations", "measure_us"),
                ("building the {fence id: metres} result", "results_us"),
            )
        ]
        rows_out.append(
            figures.row(f"index rebuild, {args.fences:,} geofences", LAST["build_ms"], "ms")
        )
    figures.write(args.json, rows_out)


if __name__ == "__main__":
    main()
