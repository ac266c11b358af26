"""Benchmark of POST /v1/pings under load, next to a bare aiohttp handler measured in the same run.

Run: python tests/benchmarks/bench_pings.py [--fences 100000] [--shoppers 2000] [--duration 10]

What it does:
1. makes a fresh database (DATABASE_URL's server, else an embedded PostgreSQL in a
   temporary directory), migrates it, loads one merchant with --fences geofences
   (80 % metre circles of 30-300 m, 20 % small polygons) over a 200 x 200 km region
   and --shoppers enrolled shoppers;
2. times the parts of the single-ping floor one by one in this process (floor_parts.py);
3. starts `gateway serve` (one process), its floor (the same gateway with POST /v1/pings
   answering right after the token check, rate limit and body), the floor again with
   the access log on (INFO, to a file), `gateway serve --workers 2`, and a bare aiohttp
   app whose handler parses the same JSON body and answers a small JSON object;
4. measures the maximum throughput of each with wrk (closed loop, 64 connections,
   one thread; `apt-get install wrk`): over pings of every shopper, each a few metres
   from the last (with many shoppers, most are new to the process: cold), and over the
   first --warm-shoppers shoppers again and again (warm: tokens and visit state cached);
5. measures p50/p99 latency at 70 % of the gateway's maximum with wrk paced, and with an
   open-loop generator (requests are sent on a fixed schedule and latency is counted
   from the scheduled time, so a stall is not hidden by the client waiting), every
   shopper and warm;
6. runs alternated rounds of POST /v1/pings/batch against the bare handler on the same
   bodies (--batch-rounds; see batches.py).

The load runs in separate processes from the servers. Figures are printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks import batches, figures  # noqa: E402

CENTRE = (2.3522, 48.8566)
M_PER_DEG = 111_320.0

BARE_APP = """
import sys
import orjson
from aiohttp import web

async def handler(request):
    body = orjson.loads(await request.read())
    assert request.headers.get("Authorization", "").startswith("Bearer ")
    return web.Response(
        body=orjson.dumps({"status": "accepted", "transitions": [], "offers": [],
                           "lat": body["lat"]}),
        content_type="application/json",
    )

async def batch(request):
    body = orjson.loads(await request.read())
    assert request.headers.get("Authorization", "").startswith("Bearer ")
    results = [{"status": "accepted", "reason": None, "transitions": []} for _ in body["pings"]]
    return web.Response(
        body=orjson.dumps({"results": results, "transitions": [], "offers": []}),
        content_type="application/json",
    )

app = web.Application()
app.router.add_post("/v1/pings", handler)
app.router.add_post("/v1/pings/batch", batch)
# The same event loop the gateway runs on, so the comparison is like for like.
import uvloop
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            loop=uvloop.new_event_loop())
"""

# The gateway itself with POST /v1/pings cut short: the middleware, the token check, the
# rate limit and the validated body, then a fixed answer. What it costs over the bare
# handler is what every ping pays before the ping pipeline (spoofing checks, matching,
# visits, ping log) starts; its throughput is the most any pipeline could reach.
FLOOR_APP = """
import dataclasses
import sys

from gateway import cli
from gateway.http import api
from gateway.http.handlers import pings as handlers
from gateway.settings import SETTINGS

async def floor(request):
    principal = api.principal(request)
    handlers._rate_limit(request, principal.shopper_id)
    raw = await api.read_body(request, limit=request.app[SETTINGS].max_body_bytes)
    handlers.decode_ping(raw)
    return api.json({"status": "accepted", "reason": None, "transitions": [], "offers": []})

assert handlers.ENDPOINTS[0].path == "/v1/pings"
handlers.ENDPOINTS[0] = dataclasses.replace(handlers.ENDPOINTS[0], handler=floor)
sys.exit(cli.main(["serve", "--port", sys.argv[1]]))
"""

WRK_SCRIPT = """
local requests = {}
local i = 0
for line in io.lines("%s") do
  local sep = string.find(line, "|", 1, true)
  local token = string.sub(line, 1, sep - 1)
  local body = string.sub(line, sep + 1)
  requests[#requests + 1] = wrk.format("POST", "%s",
    {["Host"] = "127.0.0.1", ["Authorization"] = "Bearer " .. token,
     ["Content-Type"] = "application/json"}, body)
end
request = function()
  i = i + 1
  if i > #requests then i = 1 end
  return requests[i]
end
%s
"""

# Paces each connection so that all of them together send about `rate` requests
# a second: a fixed offered load, well below saturation.
PACING = """
delay = function()
  return %f
end
"""


def offset(lon: float, lat: float, east: float, north: float) -> tuple[float, float]:
    return lon + east / (M_PER_DEG * math.cos(math.radians(lat))), lat + north / M_PER_DEG


def log(msg: str) -> None:
    sys.stderr.write(f"[bench] {msg}\n")
    sys.stderr.flush()


# -- setup ---------------------------------------------------------------------------------


async def setup(url: str, n_fences: int, n_shoppers: int, seed: int) -> list[tuple[str, int]]:
    """Load the database; returns (token, shopper index) per shopper."""
    from gateway import db, migrate
    from gateway.accounts import tenancy
    from geo import store as geo_store
    from geo.models import FenceFeature

    rng = np.random.default_rng(seed)
    conn = await db.connect(url)
    try:
        await migrate.migrate(conn)
        merchant = await tenancy.create_merchant(conn, "Bench Coffee")
        store = await geo_store.insert_store(
            conn,
            merchant_id=merchant.id,
            name="HQ",
            lat=CENTRE[1],
            lon=CENTRE[0],
            timezone="Europe/Paris",
            opening_hours=None,
        )
        started = time.perf_counter()
        items: list[tuple[int, FenceFeature]] = []
        for i in range(n_fences):
            lon, lat = offset(*CENTRE, *rng.uniform(-100_000, 100_000, 2))
            if rng.random() < 0.8:
                geom, kind, radius = shapely.Point(lon, lat), "circle", float(rng.uniform(30, 300))
            else:
                k = int(rng.integers(5, 40))
                r = float(rng.uniform(30, 200))
                angles = np.sort(rng.uniform(0, 2 * math.pi, k))
                ring = [offset(lon, lat, r * math.cos(a), r * math.sin(a)) for a in angles]
                geom, kind, radius = shapely.Polygon(ring), "polygon", None
            feature = FenceFeature(
                kind=kind, geometry=geom, radius_m=radius, properties={"name": f"f{i}"}
            )
            items.append((store.id, feature))
        for start in range(0, len(items), 20_000):
            await geo_store.insert_geofences(
                conn, merchant_id=merchant.id, items=items[start : start + 20_000]
            )
        log(f"loaded {n_fences} geofences in {time.perf_counter() - started:.1f}s")
        shoppers = await enrol_many(conn, merchant.id, n_shoppers)
        log(f"enrolled {n_shoppers} shoppers")
        return shoppers
    finally:
        await conn.close()


async def enrol_many(conn: Any, merchant_id: int, n: int) -> list[tuple[str, int]]:
    """n shoppers with their own tokens, written in bulk (as enrol_shopper would, n times)."""
    from gateway.accounts import auth

    ids = await conn.fetch(
        "INSERT INTO shoppers (merchant_id, name, marketing_consent) "
        "SELECT $1, 's' || g, true FROM generate_series(1, $2) g RETURNING id",
        merchant_id,
        n,
    )
    minted = [auth.mint(auth.Role.SHOPPER) for _ in ids]
    await conn.copy_records_to_table(
        "api_keys",
        records=[
            (m.public_id, m.secret_hash, merchant_id, "shopper", False, r["id"])
            for m, r in zip(minted, ids, strict=True)
        ],
        columns=["public_id", "secret_hash", "merchant_id", "role", "store_scoped", "shopper_id"],
    )
    return [(m.token, i) for i, m in enumerate(minted)]


async def setup_api(
    base: str, manager: str, app: str, n_fences: int, n_shoppers: int, seed: int
) -> list[tuple[str, int]]:
    """--url: load a running gateway through its API (the merchant of the two tokens
    gets a store, its geofences replaced by --fences new ones, and --shoppers shoppers)."""
    import aiohttp

    rng = np.random.default_rng(seed)
    async with aiohttp.ClientSession(base_url=base) as http:

        async def call(method: str, path: str, token: str, body: Any, ctype: str) -> Any:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": ctype}
            async with http.request(method, path, data=orjson.dumps(body), headers=headers) as r:
                answer = await r.json()
                if r.status >= 300:
                    raise RuntimeError(f"{method} {path}: {r.status} {answer}")
                return answer

        # A 4 x 4 grid of stores 50 km apart, so every fence is within 36 km of its store
        # (the gateway refuses a fence beyond GATEWAY_MAX_FENCE_DISTANCE_M, 50 km).
        grid = (-75_000, -25_000, 25_000, 75_000)
        stores = {}
        for gx in grid:
            for gy in grid:
                slon, slat = (float(v) for v in offset(*CENTRE, gx, gy))
                body = {"name": f"Bench {gx // 1000},{gy // 1000}", "lat": slat, "lon": slon}
                body["timezone"] = "Europe/Paris"
                made = await call("POST", "/v1/stores", manager, body, "application/json")
                stores[gx, gy] = made["id"]
        features = []
        for i in range(n_fences):
            dx, dy = rng.uniform(-100_000, 100_000, 2)
            lon, lat = (float(v) for v in offset(*CENTRE, dx, dy))
            near = (min(grid, key=lambda g: abs(g - dx)), min(grid, key=lambda g: abs(g - dy)))
            props: dict[str, Any] = {"store_id": stores[near], "name": f"f{i}"}
            if rng.random() < 0.8:
                geometry: dict[str, Any] = {"type": "Point", "coordinates": [lon, lat]}
                props["radius_m"] = float(rng.uniform(30, 300))
            else:
                k, r = int(rng.integers(5, 40)), float(rng.uniform(30, 200))
                angles = np.sort(rng.uniform(0, 2 * math.pi, k))
                ring = [
                    [float(v) for v in offset(lon, lat, r * math.cos(a), r * math.sin(a))]
                    for a in angles
                ]
                geometry = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
            features.append({"type": "Feature", "geometry": geometry, "properties": props})
        started = time.perf_counter()
        await call(
            "PUT",
            "/v1/geofences",
            manager,
            {"type": "FeatureCollection", "features": features},
            "application/geo+json",
        )
        log(f"imported {n_fences} geofences in {time.perf_counter() - started:.1f}s")
        shoppers: list[tuple[str, int]] = []
        todo = iter(range(n_shoppers))

        async def enrol() -> None:
            for i in todo:
                made = await call(
                    "POST", "/v1/shoppers", app, {"marketing_consent": True}, "application/json"
                )
                shoppers.append((made["token"], i))

        await asyncio.gather(*(enrol() for _ in range(32)))
        log(f"enrolled {n_shoppers} shoppers through the API")
        return sorted(shoppers, key=lambda s: s[1])


def walker(n_shoppers: int, seed: int) -> Callable[[int, int, random.Random], tuple[float, float]]:
    """Where shopper i is at its k-th ping: a few metres on from its home each time."""
    rng = random.Random(seed)
    homes = [
        offset(*CENTRE, rng.uniform(-100_000, 100_000), rng.uniform(-100_000, 100_000))
        for _ in range(n_shoppers)
    ]

    def walk(i: int, k: int, noise: random.Random) -> tuple[float, float]:
        return offset(*homes[i], 3 * k + noise.gauss(0, 10), noise.gauss(0, 10))

    return walk


def build_requests(
    shoppers: list[tuple[str, int]], per_shopper: int, seed: int
) -> list[tuple[str, bytes]]:
    """Interleaved pings: each shopper walks a few metres between its pings."""
    rng = random.Random(seed)
    walk = walker(len(shoppers), seed)
    t0 = time.time() - 600
    out = []
    for k in range(per_shopper):
        for token, i in shoppers:
            plon, plat = walk(i, k, rng)
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + k))
            body = {"lat": plat, "lon": plon, "accuracy_m": 15, "ts": f"{ts}.{i % 1000:03d}Z"}
            out.append((token, orjson.dumps(body)))
    return out


# -- servers -------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


# -- load ----------------------------------------------------------------------------------


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    base: str,
    request_file: Path,
    duration: int,
    rate: float | None = None,
    path: str = "/v1/pings",
) -> dict[str, float]:
    """wrk closed loop at full speed, or paced to about ``rate`` requests a second."""
    connections = 64 if rate is None else 32
    pacing = "" if rate is None else PACING % (1000.0 * connections / rate)
    script = request_file.with_suffix(".lua")
    script.write_text(WRK_SCRIPT % (request_file, path, pacing))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"\s50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"\s99%\s+([\d.]+\w+)", out)
    return {
        "rps": rps,
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "p50_ms": _ms(p50.group(1)) if p50 else math.nan,
        "p99_ms": _ms(p99.group(1)) if p99 else math.nan,
    }


async def open_loop(
    base: str, requests: list[tuple[str, bytes]], rate: float, duration: float
) -> dict[str, float]:
    """Send request k at start + k / rate, whatever the answers before it are doing, and
    count its latency from that scheduled time.

    Pre-encoded HTTP/1.1 requests on keep-alive connections, answers read in protocol
    callbacks: the client stays cheap enough to keep its schedule at several thousand
    requests a second on this machine (an aiohttp client session saturated near
    2,700/s). A request due while every connection is busy waits for the first one
    free, and that wait is in its latency; `send_lag_p99_ms` says how late the client
    itself sent.
    """
    loop = asyncio.get_running_loop()
    host, _, port = base.removeprefix("http://").partition(":")
    total = int(rate * duration)
    wire = [
        (
            f"POST /v1/pings HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for token, body in requests
    ]
    latencies: list[float] = []
    lags: list[float] = []
    statuses: dict[int, int] = {}
    free: list[_Answers] = []
    waiting: collections.deque[tuple[int, float]] = collections.deque()
    done = loop.create_future()

    def send(conn: _Answers, k: int, due: float) -> None:
        lags.append(time.perf_counter() - due)
        conn.due = due
        conn.transport.write(wire[k % len(wire)])  # type: ignore[attr-defined]

    def answered(conn: _Answers, status: int) -> None:
        latencies.append(time.perf_counter() - conn.due)
        statuses[status] = statuses.get(status, 0) + 1
        if waiting:
            send(conn, *waiting.popleft())
        else:
            free.append(conn)
        if len(latencies) == total and not done.done():
            done.set_result(None)

    for _ in range(max(16, min(256, int(rate / 40)))):
        _, conn = await loop.create_connection(lambda: _Answers(answered), host, int(port))
        free.append(conn)
    start = time.perf_counter() + 0.2
    k = 0
    while k < total:
        now = time.perf_counter()
        while k < total and start + k / rate <= now:
            due = start + k / rate
            if free:
                send(free.pop(), k, due)
            else:
                waiting.append((k, due))
            k += 1
        await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
    await asyncio.wait_for(done, timeout=60)
    elapsed = time.perf_counter() - start
    latencies.sort()
    lags.sort()
    return {
        "rate": rate,
        "sent": float(total),
        "ok": float(statuses.get(200, 0)),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
        "send_lag_p99_ms": 1000 * lags[int(len(lags) * 0.99)],
        "achieved": total / elapsed,
    }


class _Answers(asyncio.Protocol):
    """One keep-alive connection of the open-loop client: tells `answered` each answer."""

    def __init__(self, answered: Callable[[_Answers, int], None]) -> None:
        self.answered = answered
        self.buffer = bytearray()
        self.need = -1
        self.status = 0
        self.due = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.need < 0:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buffer[:end])
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                self.need = end + 4 + int(length.group(1))  # type: ignore[union-attr]
                self.status = int(head[9:12])
            if len(self.buffer) < self.need:
                return
            del self.buffer[: self.need]
            self.need = -1
            self.answered(self, self.status)


def load_process(base: str, request_file: Path, rate: float, duration: float) -> dict[str, float]:
    """Run the open-loop generator in its own process so it does not share the server's."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--open-loop",
            base,
            str(request_file),
            str(rate),
            str(duration),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out))


def read_requests(path: Path) -> list[tuple[str, bytes]]:
    out = []
    for line in path.read_text().splitlines():
        token, _, body = line.partition("|")
        out.append((token, body.encode()))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def max_throughput(
    base: str, request_file: Path, duration: int, pid: int | None
) -> tuple[dict[str, float], float | None]:
    """wrk at full speed, and the CPU seconds process ``pid`` used meanwhile (if given)."""
    before = None if pid is None else cpu_seconds(pid)
    result = run_wrk(base, request_file, duration)
    return result, None if pid is None or before is None else cpu_seconds(pid) - before


def postgres_cpu_seconds() -> float:
    """CPU time used so far by this machine's PostgreSQL processes (the whole server)."""
    import psutil

    total = 0.0
    for p in psutil.process_iter(["name"]):
        if (p.info["name"] or "").startswith("postgres"):
            try:
                times = p.cpu_times()
            except psutil.Error:
                continue  # a backend that just ended
            total += times.user + times.system
    return total


async def workload_mix(url: str) -> dict[str, int]:
    """What the gateway did over the whole run: pings logged, transitions, state writes."""
    from gateway import db

    conn = await db.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM pings) AS pings,"
            " (SELECT count(*) FROM geofence_events) AS transitions,"
            " (SELECT coalesce(sum(version), 0) FROM shopper_geo) AS state_writes"
        )
        assert row is not None
        return {k: int(row[k]) for k in ("pings", "transitions", "state_writes")}
    finally:
        await conn.close()


BATCH = "/v1/pings/batch"


# -- main ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fences", type=int, default=100_000)
    parser.add_argument("--shoppers", type=int, default=2000)
    parser.add_argument(
        "--warm-shoppers",
        type=int,
        default=2000,
        help="the warm phases cycle through this many shoppers, all seen before (2000)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per load phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--batch-rounds",
        type=int,
        default=3,
        help="alternated rounds of POST /v1/pings/batch and the bare handler (0: none)",
    )
    parser.add_argument("--batch-size", type=int, default=batches.SIZE, help="pings a batch")
    parser.add_argument(
        "--url",
        help="measure a running gateway instead of starting one (needs --manager-token and "
        "--app-token of a merchant set aside for benchmarking: its geofences are replaced)",
    )
    parser.add_argument("--manager-token", help="with --url: a manager key of that merchant")
    parser.add_argument("--app-token", help="with --url: an app key of that merchant")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the gateway with py-spy during its max-throughput phase and write the "
        "collapsed stacks to FILE (pip install py-spy; flamegraph.pl or speedscope read it)",
    )
    parser.add_argument(
        "--open-loop", nargs=4, metavar=("URL", "FILE", "RATE", "SECONDS"), help=argparse.SUPPRESS
    )
    return parser


def cpu_tree_seconds(pid: int) -> float:
    """CPU time of a process and its children (the workers of `serve --workers N`)."""
    import psutil

    proc = psutil.Process(pid)
    total = cpu_seconds(pid)
    for child in proc.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class Servers:
    """The processes a run measures, started together so they load their index at once."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: list[str], *, env: dict[str, str] | None = None, log: Path | None = None
    ) -> tuple[str, int]:
        port = free_port()
        stderr = None if log is None else log.open("wb")
        self.procs.append(
            subprocess.Popen(
                [sys.executable, *args, str(port)]
                if args[0].endswith(".py")
                else [sys.executable, *args, "--port", str(port)],
                env=env or self.env,
                cwd=ROOT,
                stderr=stderr,
            )
        )
        return f"http://127.0.0.1:{port}", self.procs[-1].pid

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=30)


def measure_cpu(
    base: str, request_file: Path, duration: int, pid: int | None, *, tree: bool = False
) -> tuple[dict[str, float], float | None]:
    """wrk at full speed, and the CPU seconds of ``pid`` (and its children) meanwhile."""
    if not tree:
        return max_throughput(base, request_file, duration, pid)
    assert pid is not None
    before = cpu_tree_seconds(pid)
    result = run_wrk(base, request_file, duration)
    return result, cpu_tree_seconds(pid) - before


def main() -> int:
    args = _parser().parse_args()
    if args.open_loop:
        base, path, rate, secs = args.open_loop
        import uvloop  # the gateway's loop: the client keeps up with more

        requests = read_requests(Path(path))
        # Nothing the client holds needs collecting: no collector pauses in its schedule.
        gc.collect()
        gc.freeze()
        result = uvloop.run(open_loop(base, requests, float(rate), float(secs)))
        print(json.dumps(result))
        return 0
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the throughput phase: apt-get install wrk")
    remote = args.url.rstrip("/") if args.url else None
    if remote and not (args.manager_token and args.app_token):
        sys.exit("--url needs --manager-token and --app-token")
    results = run(args, remote)
    report(args, remote, results)
    return 0


def run(args: argparse.Namespace, remote: str | None) -> dict[str, Any]:
    """Every phase of the run; returns the measurements by name."""
    from tests.benchmarks.scratch import ScratchDatabase

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    scratch = None if remote else ScratchDatabase(work)
    url = scratch.url if scratch is not None else ""
    env = dict(
        os.environ,
        DATABASE_URL=url,
        GATEWAY_DATA_DIR=str(work),
        GATEWAY_PING_RATE="100000",
        GATEWAY_PING_BURST="100000",
        GATEWAY_MAX_SPEED_MPS="1000000",
        GATEWAY_LOG_LEVEL="WARNING",
        GATEWAY_DB_POOL_MAX="20",
    )
    servers = Servers(work, env)
    out: dict[str, Any] = {}
    try:
        if remote:
            shoppers = asyncio.run(
                setup_api(
                    remote,
                    args.manager_token,
                    args.app_token,
                    args.fences,
                    args.shoppers,
                    args.seed,
                )
            )
        else:
            shoppers = asyncio.run(setup(url, args.fences, args.shoppers, args.seed))
            # In this process, before the servers start: the parts of the floor, one by one.
            from tests.benchmarks import floor_parts

            out["parts"] = floor_parts.measure()
            floor_parts.show(out["parts"])
        per_shopper = max(2, min(20, 200_000 // max(args.shoppers, 1)))
        request_file = work / "requests.txt"
        batches.write_requests(request_file, build_requests(shoppers, per_shopper, args.seed))
        warm = shoppers[: args.warm_shoppers]
        warm_file = work / "warm.txt"
        batches.write_requests(warm_file, build_requests(warm, 20, args.seed + 1))
        out["warm_shoppers"] = len(warm)
        batch_file = work / "batches.txt"
        batches.write_requests(
            batch_file,
            batches.build(
                shoppers,
                size=args.batch_size,
                seed=args.seed,
                walk=walker(len(shoppers), args.seed),
            ),
        )
        bare_file = work / "bare.py"
        bare_file.write_text(BARE_APP)
        bare, bare_pid = servers.start([str(bare_file)])
        urls = {"bare": (bare, bare_pid)}
        if not remote:
            floor_file = work / "floor.py"
            floor_file.write_text(FLOOR_APP)
            urls["gw"] = servers.start(["-m", "gateway", "serve"])
            urls["floor"] = servers.start([str(floor_file)])
            # The floor again at the default level: the access log on, to a file.
            urls["floor_log"] = servers.start(
                [str(floor_file)],
                env={**env, "GATEWAY_LOG_LEVEL": "INFO"},
                log=work / "floor-access.log",
            )
            urls["gw2"] = servers.start(["-m", "gateway", "serve", "--workers", "2"])
        else:
            urls["gw"] = (remote, 0)
        started = time.perf_counter()
        for name, (base, _) in urls.items():
            if name == "bare":
                wait_port(int(base.rsplit(":", 1)[1]))
            else:
                wait_http(f"{base}/readyz", timeout=300)
        took = time.perf_counter() - started
        log(f"servers ready (index of {args.fences} built) after {took:.1f}s")
        phases(args, remote, urls, request_file, warm_file, out)
        if args.batch_rounds:
            out["batch_seen"] = batch_phase(args, urls, request_file, batch_file)
        if not remote:
            out["mix"] = asyncio.run(workload_mix(url))
    finally:
        servers.stop()
        if scratch is not None:
            scratch.drop()
        shutil.rmtree(work, ignore_errors=True)
    return out


def phases(
    args: argparse.Namespace,
    remote: str | None,
    urls: dict[str, tuple[str, int]],
    request_file: Path,
    warm_file: Path,
    out: dict[str, Any],
) -> None:
    d = args.duration
    gw, gw_pid = urls["gw"]
    pid = None if remote else gw_pid
    log("warm-up")
    run_wrk(gw, request_file, 3)
    log("max throughput: bare aiohttp")
    out["bare"] = max_throughput(urls["bare"][0], request_file, d, urls["bare"][1])
    for name, what in (("floor", "the gateway's floor"), ("floor_log", "the floor, access log on")):
        if name in urls:
            log(f"max throughput: {what} (auth, rate limit, body; no pipeline)")
            run_wrk(urls[name][0], request_file, 2)
            out[name] = max_throughput(urls[name][0], request_file, d, urls[name][1])
            if out[name][0]["non_2xx"]:
                # Errors are cheaper than answers: the figure would flatter the floor.
                raise RuntimeError(f"the floor answered {out[name][0]['non_2xx']:.0f} non-2xx")
    log("max throughput: gateway, every shopper (cold with many)")
    pg_before = 0.0 if remote else postgres_cpu_seconds()
    spy = profile(args.profile, pid, d)
    out["gw"] = max_throughput(gw, request_file, d, pid)
    if spy is not None:
        spy.wait(timeout=60)
    # Backends that ended during the phase take their time with them: a lower bound.
    out["pg_cpu"] = 0.0 if remote else max(postgres_cpu_seconds() - pg_before, 0.0)
    log(f"max throughput: gateway, warm ({out['warm_shoppers']} shoppers seen before)")
    run_wrk(gw, warm_file, 3)
    out["gw_warm"] = max_throughput(gw, warm_file, d, pid)
    if "gw2" in urls:
        log("max throughput: gateway serve --workers 2, warm")
        run_wrk(urls["gw2"][0], warm_file, 3)
        out["gw2_warm"] = measure_cpu(urls["gw2"][0], warm_file, d, urls["gw2"][1], tree=True)
    rate = 0.7 * out["gw"][0]["rps"]
    out["rate"] = rate
    log(f"latency at {rate:.0f} req/s (70 % of the gateway's max), wrk paced: gateway")
    out["gw_lat"] = run_wrk(gw, request_file, d, rate=rate)
    log(f"latency at {rate:.0f} req/s, wrk paced: bare aiohttp")
    out["bare_lat"] = run_wrk(urls["bare"][0], request_file, d, rate=rate)
    log(f"latency at {rate:.0f} req/s, open loop: gateway, every shopper")
    out["gw_open"] = load_process(gw, request_file, rate, d)
    warm_rate = 0.7 * out["gw_warm"][0]["rps"]
    log(f"latency at {warm_rate:.0f} req/s (70 % of the warm max), open loop: gateway, warm")
    out["gw_open_warm"] = load_process(gw, warm_file, warm_rate, d)


def batch_phase(
    args: argparse.Namespace, urls: dict[str, tuple[str, int]], request_file: Path, batch_file: Path
) -> dict[str, list[tuple[float, float | None]]]:
    """Alternated rounds of POST /v1/pings/batch and the bare handler (see batches.py)."""
    (gw, gw_pid), (bare, bare_pid) = urls["gw"], urls["bare"]
    log(f"batched pings, {args.batch_size} a request: {args.batch_rounds} rounds")
    run_wrk(gw, batch_file, 2, path=BATCH)

    def measure(
        base: str, file: Path, pid: int | None, path: str = "/v1/pings"
    ) -> tuple[float, float | None]:
        before = None if pid is None else cpu_seconds(pid)
        run = run_wrk(base, file, args.duration, path=path)
        if run["non_2xx"]:
            # Errors are cheaper than answers: the figure would flatter the server.
            raise RuntimeError(f"{base}{path} answered {run['non_2xx']:.0f} non-2xx")
        cpu = None if before is None else cpu_seconds(pid) - before  # type: ignore[arg-type]
        return run["rps"], None if cpu is None else cpu / (run["rps"] * args.duration)

    remote_pid = gw_pid or None
    return batches.rounds(
        rounds=args.batch_rounds,
        single=lambda: measure(bare, request_file, bare_pid),
        batched=lambda: measure(gw, batch_file, remote_pid, BATCH),
        bare_batched=lambda: measure(bare, batch_file, bare_pid, BATCH),
    )


def profile(path: str | None, pid: int | None, duration: int) -> subprocess.Popen[bytes] | None:
    if not path or pid is None:
        return None
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "-p",
            str(pid),
            "-d",
            str(duration),
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            path,
        ],
        stdout=subprocess.DEVNULL,
    )


def report(args: argparse.Namespace, remote: str | None, out: dict[str, Any]) -> None:
    d = args.duration
    bare_max, bare_cpu = out["bare"]
    gw_max, gw_cpu = out["gw"]
    warm_max, warm_cpu = out["gw_warm"]

    def us(cpu: float | None, result: dict[str, float]) -> float | None:
        return None if cpu is None else 1e6 * cpu / (result["rps"] * d)

    bare_us = us(bare_cpu, bare_max)
    rows = list(out.get("parts", []))
    print()
    print(
        f"POST /v1/pings with {args.fences} geofences, {args.shoppers} shoppers, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'figure':<52}{'value':>10}{'bare aiohttp':>14}{'ratio':>8}")

    def line(name: str, value: float | None, base: float | None, fmt: str = ".0f") -> None:
        shown = "-" if value is None else format(value, fmt)
        based = "" if base is None else format(base, fmt)
        ratio = f"{value / base:>8.2f}" if value and base else ""
        print(f"{name:<52}{shown:>10}{based:>14}{ratio}")

    scale = f"{args.fences:,} geofences, {args.shoppers:,} shoppers"
    if remote:
        scale += f", {remote}"
    line(f"max req/s, every shopper ({args.shoppers})", gw_max["rps"], bare_max["rps"])
    line("  server CPU per request (us)", us(gw_cpu, gw_max), bare_us, ".1f")
    line(f"max req/s, warm ({out['warm_shoppers']} shoppers)", warm_max["rps"], bare_max["rps"])
    line("  server CPU per request (us)", us(warm_cpu, warm_max), bare_us, ".1f")
    rows += [
        figures.row(
            f"ping throughput, {scale} (wrk -c64)",
            gw_max["rps"],
            "req/s",
            baseline=bare_max["rps"],
            baseline_name="bare aiohttp handler",
        ),
        figures.row(
            f"ping throughput, warm: {out['warm_shoppers']:,} shoppers seen before (wrk -c64)",
            warm_max["rps"],
            "req/s",
            baseline=bare_max["rps"],
            baseline_name="bare aiohttp handler",
        ),
    ]
    pg_us = us(out["pg_cpu"], gw_max) or 0.0
    if pg_us > 0:
        # The ping log and the visit writes, on the same cores: it is what a slow plan costs.
        line("  PostgreSQL CPU per request, every shopper (us)", pg_us, None, ".1f")
    rows += floor_rows(out, bare_max, bare_us, us, line)
    if "gw2_warm" in out:
        two, two_cpu = out["gw2_warm"]
        line("max req/s, warm, serve --workers 2", two["rps"], warm_max["rps"])
        line(
            "  CPU per request, both workers (us)", us(two_cpu, two), us(warm_cpu, warm_max), ".1f"
        )
        rows.append(
            figures.row(
                "ping throughput, warm, gateway serve --workers 2 (wrk -c64)",
                two["rps"],
                "req/s",
                baseline=warm_max["rps"],
                baseline_name="gateway serve --workers 1",
            )
        )
    rows += latency_rows(out, line)
    if not remote:
        rows.append(figures.row("PostgreSQL CPU per ping (the whole local server)", pg_us, "us"))
    for name, cpu, result in (("", gw_cpu, gw_max), (", warm", warm_cpu, warm_max)):
        rows.append(
            figures.row(
                f"server CPU per ping{name}",
                us(cpu, result),
                "us",
                baseline=bare_us,
                baseline_name="bare aiohttp handler",
                higher_is_better=False,
            )
        )
    line("non-2xx answers during max throughput", gw_max["non_2xx"], bare_max["non_2xx"])
    mix = out.get("mix") or {}
    if mix:
        print(
            f"workload over the whole run: {mix['pings']} pings logged, {mix['transitions']} "
            f"enter/dwell/exit transitions, {mix['state_writes']} visit-state writes"
        )
    if remote:
        print(f"gateway at {remote}; the bare handler runs on this machine")
    ratio, warm_ratio = gw_max["rps"] / bare_max["rps"], warm_max["rps"] / bare_max["rps"]
    print()
    print(
        f"targets: warm >= 0.4 of bare: {'met' if warm_ratio >= 0.4 else 'NOT met'} "
        f"({warm_ratio:.2f}); every shopper >= 0.3: {'met' if ratio >= 0.3 else 'NOT met'} "
        f"({ratio:.2f}); p99 < 20 ms at 70 % (open loop): "
        + ", ".join(
            f"{k} {'met' if out[key]['p99_ms'] < 20 else 'NOT met'}"
            for k, key in (("every shopper", "gw_open"), ("warm", "gw_open_warm"))
        )
    )
    if out.get("batch_seen"):
        rows += batches.report(out["batch_seen"], size=args.batch_size, log=log)
    figures.write(args.json, rows, workload=mix)


def floor_rows(
    out: dict[str, Any], bare_max: dict[str, float], bare_us: float | None, us: Any, line: Any
) -> list[dict[str, Any]]:
    """The floor, and the floor with the access log on, each next to the bare handler."""
    rows: list[dict[str, Any]] = []
    off_us = None
    for key, name, figure, cpu_figure in (
        (
            "floor",
            "floor: gateway without the ping pipeline",
            "ping floor: auth, rate limit and body only (wrk -c64)",
            "server CPU per ping floor",
        ),
        (
            "floor_log",
            "floor with the access log on (INFO)",
            "ping floor with the access log on (INFO, to a file; wrk -c64)",
            "server CPU per ping floor, access log on",
        ),
    ):
        if key not in out:
            continue
        result, cpu = out[key]
        cpu_us = us(cpu, result)
        line(name, result["rps"], bare_max["rps"])
        line("  its CPU per request (us)", cpu_us, bare_us, ".1f")
        rows.append(
            figures.row(
                figure,
                result["rps"],
                "req/s",
                baseline=bare_max["rps"],
                baseline_name="bare aiohttp handler",
            )
        )
        # The logged floor's CPU is shown against the unlogged one: the log's own cost.
        rows.append(
            figures.row(
                cpu_figure,
                cpu_us,
                "us",
                baseline=bare_us if off_us is None else off_us,
                baseline_name="bare aiohttp handler" if off_us is None else "the floor, log off",
                higher_is_better=False,
            )
        )
        off_us = cpu_us
    return rows


def latency_rows(out: dict[str, Any], line: Any) -> list[dict[str, Any]]:
    rate, gw_lat, bare_lat = out["rate"], out["gw_lat"], out["bare_lat"]
    line("offered load, wrk paced (req/s achieved)", gw_lat["rps"], bare_lat["rps"])
    line("  p50 latency (ms)", gw_lat["p50_ms"], bare_lat["p50_ms"], ".2f")
    line("  p99 latency (ms)", gw_lat["p99_ms"], bare_lat["p99_ms"], ".2f")
    rows = [
        figures.row(
            f"ping p{q} at {rate:.0f} req/s (70 % of max), wrk paced",
            gw_lat[f"p{q}_ms"],
            "ms",
            baseline=bare_lat[f"p{q}_ms"],
            baseline_name="bare aiohttp handler",
            higher_is_better=False,
        )
        for q in (50, 99)
    ]
    for name, key in (("every shopper", "gw_open"), ("warm", "gw_open_warm")):
        o = out[key]
        # A client that could not keep its own schedule measures itself, not the server.
        saturated = o["achieved"] < 0.9 * o["rate"] or o["send_lag_p99_ms"] > 5
        print(
            f"open loop, {name}, at {o['rate']:.0f} req/s: p50 / p99 / max "
            f"{o['p50_ms']:.2f} / {o['p99_ms']:.2f} / {o['max_ms']:.1f} ms (the client sent "
            f"p99 {o['send_lag_p99_ms']:.1f} ms late), "
            f"{o['ok']:.0f} of {o['sent']:.0f} answered 200"
            + (" (client saturated: its figures are its own lag)" if saturated else "")
        )
        rows.append(
            figures.row(
                f"ping p99, open loop at {o['rate']:.0f} req/s (70 % of max), {name}",
                o["p99_ms"],
                "ms",
                note="client saturated" if saturated else None,
            )
        )
    print(
        "wrk paces each connection (closed loop), so a stall delays requests rather than "
        "showing in them; the open-loop client sends on a fixed schedule and counts from it."
    )
    return rows


if __name__ == "__main__":
    sys.exit(main())
