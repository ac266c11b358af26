"""The parts of the single-ping floor, each timed on its own in this process: what a ping
pays before its pipeline starts, next to the way it was done before where there was one.

Run: python tests/benchmarks/floor_parts.py [--json FILE]

Each figure is the best of several repeats of many calls, in microseconds per request.
They are CPU costs in a warm, quiet loop, so they add up to less than the floor's share
of a loaded server (cache misses, the kernel, aiohttp's own parsing and writing are not
in them); `bench_pings.py` measures the floor as a whole under wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import io
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks import figures  # noqa: E402

BODY = orjson.dumps(
    {"lat": 48.8566, "lon": 2.3522, "accuracy_m": 15, "ts": "2026-12-03T10:00:00.123Z"}
)
ANSWER = {"status": "accepted", "reason": None, "transitions": [], "offers": []}


def best_us(fn: Callable[[], object], calls: int = 20_000, repeats: int = 7) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / calls


@contextlib.contextmanager
def _logging_to_nowhere() -> Any:
    """The gateway's own logging set-up (text lines at INFO), writing to a sink."""
    from gateway import logs

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("INFO", "text")
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())
    try:
        yield handler
    finally:
        logs.ACCESS.flush()
        logs.ACCESS.handler = None
        root.handlers[:], level = saved
        root.setLevel(level)


async def _measure() -> list[tuple[str, float, str | None, float | None]]:
    """(part, µs, what it was before, µs before) for each part."""
    from gateway import logs
    from gateway.accounts import auth
    from gateway.http import api, middleware, ratelimit
    from gateway.http.handlers import pings as handlers

    def request_id() -> None:
        token = logs.request_id.set(middleware._request_id(""))
        logs.request_id.reset(token)

    minted = auth.mint(auth.Role.SHOPPER)
    verifier = auth.TokenVerifier()
    public_id = minted.public_id
    principal = auth.Principal(key_id=1, merchant_id=1, role=auth.Role.SHOPPER, shopper_id=1)
    verifier._cache[public_id] = auth._Entry(
        expires=time.monotonic() + 3600, secret_hash=minted.secret_hash, principal=principal
    )
    await verifier.verify(None, minted.token)  # type: ignore[arg-type]

    def full_check() -> None:
        parsed = auth.split(minted.token)
        assert parsed is not None
        entry = verifier._cache[parsed[0]]
        hmac.compare_digest(auth.hash_secret(parsed[1]), entry.secret_hash or b"")

    buckets = ratelimit.TokenBuckets(rate=1e9, burst=10**9)
    access_logger = logging.getLogger("aiohttp.access")
    extra = {"ms": 0.52, "rid": "0a1b2c3d00000001", "remote": "127.0.0.1"}
    parts: list[tuple[str, float, str | None, float | None]] = []
    parts.append(("request id and log context", best_us(request_id), None, None))
    parts.append(
        (
            "token check, a token seen before",
            best_us(lambda: verifier.cached(minted.token)),
            "split, SHA-256 and compare (key cached)",
            best_us(full_check),
        )
    )
    parts.append(("rate limit", best_us(lambda: buckets.take(42)), None, None))
    parts.append(
        (
            "body decode and validation (msgspec)",
            best_us(lambda: handlers.decode_ping(BODY)),
            "pydantic PingIn, then Ping",
            best_us(lambda: handlers._ping(api.parse(BODY, handlers.PingIn))),
        )
    )
    parts.append(
        ("answer encoding (orjson into a Response)", best_us(lambda: api.json(ANSWER)), None, None)
    )
    with _logging_to_nowhere():
        ours = best_us(
            lambda: logs.ACCESS.add(
                "aiohttp.access", "POST", "/v1/pings", 200, 0.52, "0a1b2c3d00000001", "127.0.0.1"
            )
        )
        before = best_us(
            lambda: access_logger.info("%s %s %s", "POST", "/v1/pings", 200, extra=extra),
            calls=5_000,
        )
    parts.append(("access log line (INFO, text)", ours, "the logging module's record", before))
    return parts


def measure() -> list[dict[str, Any]]:
    parts = asyncio.run(_measure())
    rows = [
        figures.row(
            f"floor part: {name}",
            value,
            "us",
            baseline=base,
            baseline_name=base_name,
            higher_is_better=False,
        )
        for name, value, base_name, base in parts
    ]
    rows.append(
        figures.row(
            "floor parts, total",
            sum(p[1] for p in parts),
            "us",
            baseline=sum(p[3] if p[3] is not None else p[1] for p in parts),
            baseline_name="the same parts done the earlier way",
            higher_is_better=False,
        )
    )
    return rows


def show(rows: list[dict[str, Any]]) -> None:
    print(f"{'floor part (us per request, in process)':<62}{'now':>8}{'before':>9}")
    for r in rows:
        before = "" if r["baseline"] is None else f"{r['baseline']:.2f}"
        name = r["figure"].removeprefix("floor part: ")
        print(f"{name:<62}{r['value']:>8.2f}{before:>9}  {r['baseline_name'] or ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    rows = measure()
    show(rows)
    figures.write(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
