"""Benchmark of APNs pass-update fan-out through the durable queue, and of devices fetching
their passes while it runs.

Run: python tests/benchmarks/bench_apns.py [--registrations 10000] [--rounds 3]

What it does:
1. starts the tests' HTTP/2 APNs stand-in (tests/support/apns_peer.py) in its own
   process: it checks every request's path, topic and provider JWT and, like APNs,
   sends a GOAWAY now and then (after 1,000 requests on a connection);
2. baseline: the client before issue 23 (httpx, one HTTP/2 connection, at most 100
   streams, a fresh header dict per push) pushing --baseline tokens straight to the
   stand-in;
3. makes --registrations shoppers, each with a loyalty pass and one registered device,
   and starts one `gateway worker` process (the pass pusher) and one `gateway serve`
   process (the PassKit web service, pushing nothing);
4. fetch warm-up: a separate load process fetches --fetch passes once each through
   `GET /wallet/v1/passes/{type}/{serial}`: every one is built, signed and cached;
5. rounds, alternated: queue one pass update per shopper in one transaction and count
   the arrivals at the stand-in from the first to the last (every row must end done,
   every device must get exactly one push per round); in every second round the load
   process fetches the warm passes throughout the fan-out, half with If-Modified-Since
   (304) and half without (200, the cached build). The best round of each kind counts.
DATABASE_URL's server is used if set, else an embedded PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks import figures  # noqa: E402
from tests.benchmarks.bench_pings import cpu_seconds, free_port, log, wait_http  # noqa: E402

KEY_ID, TEAM = "KEY1234567", "DEVTEAM000"

SETUP_SQL = """
WITH s AS (
    INSERT INTO shoppers (merchant_id, name, marketing_consent)
    SELECT $1, 'device ' || g, true FROM generate_series(1, $2::int) AS g
    RETURNING id
), p AS (
    INSERT INTO passes (merchant_id, shopper_id, kind, serial, auth_token, created_at)
    SELECT $1, s.id, 'loyalty', 'L' || s.id, md5(s.id::text) || md5('t' || s.id), now()
    FROM s RETURNING id, shopper_id, serial, auth_token
), r AS (
    INSERT INTO device_registrations (device_library_id, pass_id, push_token)
    SELECT 'dev' || p.id, p.id, 'b' || lpad(to_hex(p.shopper_id), 63, '0') FROM p
)
SELECT serial, auth_token FROM p ORDER BY shopper_id
"""


async def setup(url: str, n: int, apns_key_pem: str) -> dict[str, Any]:
    from gateway import db, migrate
    from gateway.accounts import tenancy
    from wallet.store import passes as pass_store

    conn = await db.connect(url)
    try:
        await migrate.migrate(conn)
        merchant = await tenancy.create_merchant(conn, "Bench Coffee")
        config = await pass_store.wallet_config(conn, merchant.id)
        await conn.execute(
            "UPDATE wallet_configs SET apns_key_pem = $1, apns_key_id = $2, updated_at = now()",
            apns_key_pem,
            KEY_ID,
        )
        rows = await conn.fetch(SETUP_SQL, merchant.id, n)
        return {
            "merchant": merchant.id,
            "pass_type_id": config.pass_type_id,
            "passes": [(r["serial"], r["auth_token"]) for r in rows],
        }
    finally:
        await conn.close()


async def queue_round(url: str, merchant_id: int) -> None:
    from gateway import db

    conn = await db.connect(url)
    try:
        await conn.execute(
            "INSERT INTO pass_updates (merchant_id, shopper_id, reason) "
            "SELECT $1, id, 'bench' FROM shoppers WHERE merchant_id = $1",
            merchant_id,
        )
    finally:
        await conn.close()


async def wait_done(url: str, timeout: float = 600) -> None:
    from gateway import db

    conn = await db.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while await conn.fetchval("SELECT count(*) FROM pass_updates WHERE done_at IS NULL"):
            if time.monotonic() > deadline:
                raise RuntimeError("pass updates still pending")
            await asyncio.sleep(0.05)
        errors = await conn.fetchval(
            "SELECT count(*) FROM pass_updates WHERE last_error IS NOT NULL"
        )
        if errors:
            raise RuntimeError(f"{errors} pass updates ended with an error")
    finally:
        await conn.close()


def read_stats(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def wait_pushes(path: Path, total: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = read_stats(path)
        if stats["pushes"] >= total or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


async def baseline(base: str, ca: str, pem: bytes, n: int, topic: str) -> float:
    """The client before issue 23: httpx on one HTTP/2 connection, 100 streams at most."""
    import httpx

    from wallet import apns

    auth = apns.TokenAuth(pem, KEY_ID, TEAM)
    limit = asyncio.Semaphore(100)
    async with httpx.AsyncClient(base_url=base, http2=True, http1=False, verify=ca) as http:

        async def push(token: str) -> int:
            headers = {"apns-topic": topic, "apns-priority": "5"}
            headers["content-type"] = "application/json"
            headers["authorization"] = auth.header()
            for _ in range(3):
                try:
                    async with limit:
                        resp = await http.post(f"/3/device/{token}", content=b"{}", headers=headers)
                    return resp.status_code
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            return 0

        await push("f" * 64)
        started = time.perf_counter()
        statuses = await asyncio.gather(*(push(f"{i:064x}") for i in range(n)))
        elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"baseline answers: {sorted(set(statuses))}")
    return n / elapsed


async def fetch_load(
    base: str, pass_type: str, passes: list[list[str]], seconds: float, concurrency: int, pid: int
) -> dict[str, Any]:
    """Fetch each pass once (built and signed), then fetch for `seconds`, half of the
    requests with If-Modified-Since (304) and half without (200, from the cache)."""
    import aiohttp

    modified: dict[str, str] = {}
    counts = {"200": 0, "304": 0, "other": 0}

    async def get(session: aiohttp.ClientSession, serial: str, token: str, ims: bool) -> None:
        headers = {"Authorization": f"ApplePass {token}"}
        if ims and serial in modified:
            headers["If-Modified-Since"] = modified[serial]
        async with session.get(
            f"{base}/wallet/v1/passes/{pass_type}/{serial}", headers=headers
        ) as r:
            await r.read()
            if r.status == 200:
                modified[serial] = r.headers["Last-Modified"]
            key = str(r.status) if r.status in (200, 304) else "other"
            counts[key] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = list(passes)
        started = time.perf_counter()

        async def first() -> None:
            while queue:
                serial, token = queue.pop()
                await get(session, serial, token, False)

        await asyncio.gather(*(first() for _ in range(concurrency)))
        cold = len(passes) / (time.perf_counter() - started)
        print("warm", flush=True)
        sys.stdin.readline()  # go
        for k in counts:
            counts[k] = 0
        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        end = started + seconds

        async def loop(i: int) -> None:
            n = i
            while time.perf_counter() < end:
                serial, token = passes[n % len(passes)]
                await get(session, serial, token, n % 2 == 0)
                n += concurrency

        await asyncio.gather(*(loop(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu
    served = counts["200"] + counts["304"]
    return {
        "cold": cold,
        "rate": served / elapsed,
        "counts": counts,
        # The gateway serve process's CPU while the devices fetched, per pass answered.
        "cpu_us": 1e6 * cpu / max(1, served),
    }


def new_round(peer: subprocess.Popen[Any], stats_file: Path) -> dict[str, Any]:
    """Have the stand-in count a new round's arrivals from zero."""
    was = read_stats(stats_file)["round"]
    peer.send_signal(signal.SIGUSR1)
    while (stats := read_stats(stats_file))["round"] == was:
        time.sleep(0.01)
    return stats


def start_load(
    gw: str, pass_type: str, passes: Path, seconds: float, pid: int
) -> subprocess.Popen[str]:
    """The devices, in their own process: once they have each pass, they wait for "go"."""
    load = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--fetch-load",
            gw,
            pass_type,
            str(passes),
            str(seconds),
            str(pid),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert load.stdout is not None
    if load.stdout.readline().strip() != "warm":
        raise RuntimeError("the fetch load process failed")
    return load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrations", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4, help="alternated: alone, with fetches")
    parser.add_argument("--baseline", type=int, default=1000)
    parser.add_argument("--fetch", type=int, default=2000, help="passes the devices fetch")
    parser.add_argument("--fetch-seconds", type=float, default=3.0)
    parser.add_argument("--fetch-load", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.fetch_load:
        base, pass_type, passes_file, seconds, pid = args.fetch_load
        passes = json.loads(Path(passes_file).read_text())
        result = asyncio.run(fetch_load(base, pass_type, passes, float(seconds), 64, int(pid)))
        print(json.dumps(result), flush=True)
        return 0

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.benchmarks.scratch import ScratchDatabase

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    scratch = ScratchDatabase(work)
    url = scratch.url
    procs: list[subprocess.Popen[Any]] = []
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (work / "apns.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    rounds: dict[str, list[float]] = {"alone": [], "fetching": []}
    fetches: list[dict[str, Any]] = []
    cpus: dict[str, list[float]] = {"alone": [], "fetching": []}
    try:
        world = asyncio.run(setup(url, args.registrations, pem.decode()))
        ready, stats_file = work / "apns.json", work / "apns-stats.json"
        peer_cmd = [sys.executable, "-m", "tests.support.apns_peer", "--dir", str(work)]
        peer_cmd += ["--topic", world["pass_type_id"], "--key-id", KEY_ID, "--team-id", TEAM]
        peer_cmd += ["--public-key", str(work / "apns.pub"), "--port", str(free_port())]
        peer_cmd += ["--ready", str(ready), "--stats", str(stats_file)]
        procs.append(subprocess.Popen(peer_cmd, cwd=ROOT))
        while not (ready.exists() and stats_file.exists()):
            time.sleep(0.05)
        peer = json.loads(ready.read_text())
        log(f"APNs stand-in at {peer['base_url']}, in its own process")

        log(f"baseline: {args.baseline} pushes with the httpx client, one connection")
        base_rate = asyncio.run(
            baseline(peer["base_url"], peer["cert"], pem, args.baseline, world["pass_type_id"])
        )

        env = dict(
            os.environ,
            DATABASE_URL=url,
            GATEWAY_DATA_DIR=str(work),
            GATEWAY_LOG_LEVEL="WARNING",
            GATEWAY_APNS_URL=peer["base_url"],
            GATEWAY_APNS_CA_FILE=peer["cert"],
            GATEWAY_DB_POOL_MAX="20",
        )
        procs.append(
            subprocess.Popen([sys.executable, "-m", "gateway", "worker"], env=env, cwd=ROOT)
        )
        port = free_port()
        serve_env = dict(env, GATEWAY_PASS_PUSHER="0")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
                env=serve_env,
                cwd=ROOT,
            )
        )
        gw = f"http://127.0.0.1:{port}"
        wait_http(f"{gw}/readyz", timeout=120)
        passes_file = work / "passes.json"
        passes_file.write_text(json.dumps(world["passes"][: args.fetch]))
        log(f"fetch warm-up: {args.fetch} passes fetched once, each built and signed")
        load = start_load(gw, world["pass_type_id"], passes_file, args.fetch_seconds, procs[2].pid)
        for i in range(args.rounds):
            kind = "fetching" if i % 2 else "alone"
            log(f"round {i + 1}: {args.registrations:,} pass updates queued ({kind})")
            before = new_round(procs[0], stats_file)
            cpu = [cpu_seconds(p.pid) for p in procs]
            asyncio.run(queue_round(url, world["merchant"]))
            if kind == "fetching":
                while read_stats(stats_file)["round_pushes"] == 0:
                    time.sleep(0.01)
                assert load.stdin is not None
                load.stdin.write("go\n")
                load.stdin.flush()
            asyncio.run(wait_done(url))
            after = wait_pushes(stats_file, before["pushes"] + args.registrations)
            got = after["pushes"] - before["pushes"]
            if got != args.registrations or after["round_devices"] != args.registrations:
                raise RuntimeError(
                    f"{got} pushes to {after['round_devices']} devices "
                    f"for {args.registrations} updates"
                )
            # Arrivals at the stand-in, first to last: what the worker delivered, without
            # its poll finding the rows.
            rate = (args.registrations - 1) / (after["round_last"] - after["round_first"])
            rounds[kind].append(rate)
            spent = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu, strict=True)]
            used = [1e6 * c / args.registrations for c in spent]
            cpus[kind].append(used[1])
            log(
                f"  {rate:,.0f} pushes/s; CPU per push: worker {used[1]:.0f} us, "
                f"stand-in {used[0]:.0f} us, gateway serve {used[2]:.0f} us"
            )
            if kind == "fetching":
                out, _ = load.communicate(timeout=120)
                fetches.append(json.loads(out.strip().splitlines()[-1]))
                log(f"  fetches while it ran: {fetches[-1]}")
                if i + 2 < args.rounds:
                    load = start_load(
                        gw, world["pass_type_id"], passes_file, args.fetch_seconds, procs[2].pid
                    )
        load.kill()
        final = read_stats(stats_file)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        scratch.drop()
        shutil.rmtree(work, ignore_errors=True)
    return report(args, rounds, fetches, base_rate, final, cpus)


def report(
    args: argparse.Namespace,
    rounds: dict[str, list[float]],
    fetches: list[dict[str, Any]],
    base_rate: float,
    final: dict[str, Any],
    cpus: dict[str, list[float]],
) -> int:
    n = args.registrations
    alone = max(rounds["alone"], default=None)
    fetching = max(rounds["fetching"], default=None)
    fetch = max(fetches, key=lambda f: f["rate"], default=None)
    print()
    print(f"APNs pass-update fan-out through the pass_updates queue, {n:,} registrations,")
    print("one gateway worker process, the HTTP/2 stand-in in its own process")
    print(f"  httpx client, one connection (before issue 23): {base_rate:8.0f} pushes/s")
    for kind, rates in rounds.items():
        shown = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"  gateway worker, {kind:<8} best {max(rates, default=0):8.0f} pushes/s ({shown})")
    worker_cpu = min(cpus["alone"] + cpus["fetching"], default=None)
    print(
        f"  the stand-in: {final['pushes']:,} pushes taken, {final['connections']} connections, "
        f"{final['goaways']} GOAWAYs, {final['dropped']} streams cut by them and sent again"
    )
    if fetch is not None:
        print(
            f"  pass fetches during a fan-out: {fetch['rate']:8.0f} passes/s "
            f"({fetch['counts']['200']} x 200 from the cache, {fetch['counts']['304']} x 304); "
            f"first fetches, each built and signed: {fetches[0]['cold']:.0f} passes/s"
        )
    rows = [
        figures.row(
            f"APNs fan-out via the queue, {n:,} devices, 1 worker (best of {len(rounds['alone'])})",
            alone,
            "pushes/s",
            baseline=base_rate,
            baseline_name="httpx, one HTTP/2 connection (the client before)",
        ),
        figures.row(
            "APNs fan-out via the queue while devices fetch passes "
            f"(best of {len(rounds['fetching'])})",
            fetching,
            "pushes/s",
            baseline=base_rate,
            baseline_name="httpx, one HTTP/2 connection (the client before)",
        ),
    ]
    rows.append(
        figures.row(
            "worker CPU per APNs push via the queue (claim, push, settle; best round)",
            worker_cpu,
            "us",
            higher_is_better=False,
        )
    )
    if fetch is not None:
        print(f"  gateway serve CPU per pass fetched (best round): {fetch['cpu_us']:.0f} us")
        rows += [
            figures.row(
                "gateway serve CPU per pass fetch during a fan-out (best round)",
                min(f["cpu_us"] for f in fetches),
                "us",
                higher_is_better=False,
            ),
            figures.row(
                "pass fetch during an APNs fan-out (200 from the cache, 304)",
                fetch["rate"],
                "passes/s",
                baseline=fetches[0]["cold"],  # later loads find the passes cached
                baseline_name="first fetch of each pass: built, signed, cached",
            ),
        ]
    figures.write(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
