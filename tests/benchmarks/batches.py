"""The batched-upload phase of bench_pings.py: POST /v1/pings/batch next to the bare handler.

Mobile SDKs buffer fixes and upload them in batches; the figure that matters is pings per
second. It is compared with two baselines measured in the same run, in alternated rounds
(the bare rate swings between runs, and the best round of each is kept):

- the bare handler's single-ping request rate (the issue's target: the batch endpoint
  carries at least 4x that many pings a second);
- the bare handler on the same batch bodies (it parses them and answers a result per
  ping), the most any batch pipeline could reach.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.benchmarks import figures

SIZE = 50


def build(
    shoppers: list[tuple[str, int]],
    *,
    size: int = SIZE,
    per_shopper: int = 2,
    seed: int = 1,
    walk: Callable[[int, int, random.Random], tuple[float, float]],
) -> list[tuple[str, bytes]]:
    """`per_shopper` batches of `size` pings for each shopper, one fix a second, walking.

    `walk(shopper, k, rng)` gives the shopper's k-th position (lon, lat).
    """
    rng = random.Random(seed)
    t0 = time.time() - 600 - per_shopper * size
    out = []
    for b in range(per_shopper):
        for token, i in shoppers:
            pings = []
            for j in range(size):
                k = b * size + j
                lon, lat = walk(i, k, rng)
                ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + k))
                pings.append(
                    {"lat": lat, "lon": lon, "accuracy_m": 15, "ts": f"{ts}.{i % 1000:03d}Z"}
                )
            out.append((token, orjson.dumps({"pings": pings})))
    return out


def write_requests(path: Path, requests: list[tuple[str, bytes]]) -> None:
    path.write_text("\n".join(f"{t}|{b.decode()}" for t, b in requests) + "\n")


Measure = Callable[[], tuple[float, float | None]]


def rounds(
    *, rounds: int, single: Measure, batched: Measure, bare_batched: Measure
) -> dict[str, list[tuple[float, float | None]]]:
    """Alternate the three measurements `rounds` times; each gives (requests per second,
    CPU seconds per request of the server measured, if known)."""
    seen: dict[str, list[tuple[float, float | None]]] = {"bare": [], "batch": [], "bare_batch": []}
    for _ in range(rounds):
        seen["bare"].append(single())
        seen["batch"].append(batched())
        seen["bare_batch"].append(bare_batched())
    return seen


def report(
    seen: dict[str, list[tuple[float, float | None]]], *, size: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Print every round and the best of each; the figure rows for the JSON."""

    def us(cpu: float | None, per: int = 1) -> str:
        return "?" if cpu is None else f"{1e6 * cpu / per:.1f} us"

    for k, (b, g, bb) in enumerate(
        zip(seen["bare"], seen["batch"], seen["bare_batch"], strict=True), 1
    ):
        log(
            f"round {k}: bare {b[0]:.0f} req/s ({us(b[1])} CPU a request); batch {g[0]:.0f} "
            f"req/s = {g[0] * size:.0f} pings/s, {g[0] * size / b[0]:.2f}x bare ({us(g[1], size)} "
            f"CPU a ping); bare on the batch bodies {bb[0] * size:.0f} pings/s"
        )
    bare = max(r for r, _ in seen["bare"])
    batch = max(r for r, _ in seen["batch"]) * size
    bare_batch = max(r for r, _ in seen["bare_batch"]) * size
    cpu = [c for _, c in seen["batch"] if c is not None]
    bare_cpu = [c for _, c in seen["bare"] if c is not None]
    print(
        f"{f'batched pings/s, {size} a request (best)':<44}{batch:>12.0f}{bare:>14.0f}"
        f"{batch / bare:>8.2f}"
    )
    print(f"{'  bare handler on the same bodies (pings/s)':<44}{bare_batch:>12.0f}")
    rows = [
        figures.row(
            f"batched pings/s, {size} a request (wrk -c64, best of {len(seen['batch'])} "
            "alternated rounds)",
            batch,
            "pings/s",
            baseline=bare,
            baseline_name="bare aiohttp handler, single pings (req/s)",
        ),
        figures.row(
            f"batched pings/s next to the bare handler on the same {size}-ping bodies",
            batch,
            "pings/s",
            baseline=bare_batch,
            baseline_name="bare aiohttp handler parsing the same bodies",
        ),
    ]
    if cpu and bare_cpu:
        # CPU a ping against CPU a bare request: the ratio the cores allow, whatever else
        # runs on them (the throughput ratio moves with the machine's other load).
        per_ping, per_request = 1e6 * min(cpu) / size, 1e6 * min(bare_cpu)
        print(
            f"{'  server CPU per batched ping (us)':<44}{per_ping:>12.1f}{per_request:>14.1f}"
            f"{per_request / per_ping:>8.2f}"
        )
        rows.append(
            figures.row(
                "server CPU per batched ping",
                per_ping,
                "us",
                baseline=per_request,
                baseline_name="bare aiohttp handler, per single-ping request",
                higher_is_better=False,
            )
        )
    print(
        f"targets: batched pings/s >= 4x the bare handler's request rate: "
        f"{'met' if batch >= 4 * bare else 'NOT met'}"
    )
    return rows
