"""Benchmark of Web Push delivery: fan-out rate through the outbox workers next to a naive
pywebpush loop, and the time from a ping to its push arriving, under load.

Run: python tests/benchmarks/bench_push.py [--pushes 3000] [--naive 300] [--pings 600]

What it does:
1. starts the local push service of the tests (gateway/localpush.py: it checks
   each VAPID JWT and decrypts each aes128gcm body) in its own process;
2. naive baseline: `pywebpush.webpush()` in a loop (what most projects do), --naive
   messages, one after the other;
3. fan-out: writes --pushes deliveries with their outbox rows (one per shopper, each
   shopper subscribed at the push service), starts `gateway worker` processes (1, then
   2 with a fresh batch) and counts arrivals at the push service per second, from the
   first to the last (checking every row ends done);
4. ping to push: starts `gateway serve` (its worker inside) and sends --pings pings
   that each enter a geofence with an offer, at a steady rate from a separate load
   process; the latency of each is the push's arrival at the push service minus the
   ping's send time (both wall clock, one machine).
Figures are printed as a table. DATABASE_URL's server is used if set, else an embedded
PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks import figures  # noqa: E402
from tests.benchmarks.bench_pings import cpu_seconds, free_port, log, wait_http  # noqa: E402

PEER = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[3])
from gateway.demo.localpush import PushService

async def main():
    service = PushService()
    await service.start()
    subs = [service.subscribe() for _ in range(int(sys.argv[2]))]
    with open(sys.argv[1], "w") as f:
        json.dump({"base_url": service.base_url,
                   "subscriptions": [s.subscription_info() for s in subs]}, f)
    await asyncio.Event().wait()

import uvloop
uvloop.run(main())
"""


def stats(base: str, since: int = 0) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/stats?since={since}", timeout=30) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def naive_loop(subs: list[dict[str, Any]], n: int, pem: str) -> float:
    import py_vapid
    import pywebpush

    # The key object is made once: the loop gets that much help.
    key = py_vapid.Vapid02.from_pem(pem.encode())
    payload = json.dumps({"delivery_id": "x", "title": "t", "body": "b"})
    started = time.perf_counter()
    for i in range(n):
        pywebpush.webpush(
            subs[i % len(subs)],
            payload,
            vapid_private_key=key,
            vapid_claims={"sub": "mailto:bench@example.com"},
            ttl=600,
        )
    return n / (time.perf_counter() - started)


SETUP_SQL = """
WITH s AS (
    INSERT INTO shoppers (merchant_id, name, marketing_consent)
    SELECT $1, 'push ' || g, true FROM generate_series(1, cardinality($2::text[])) AS g
    RETURNING id
), numbered AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n FROM s
)
INSERT INTO push_subscriptions (merchant_id, shopper_id, endpoint, p256dh, auth)
SELECT $1, numbered.id, ($2::text[])[n], ($3::text[])[n], ($4::text[])[n] FROM numbered
RETURNING shopper_id
"""

DELIVERY_SQL = """
WITH d AS (
    INSERT INTO decisions (merchant_id, offer_id, shopper_id, store_id, geofence_id, trigger,
                           outcome, decided_at, attributable_until)
    SELECT $1, $2, sid, $3, 0, 'enter', 'sent', now(), now() + interval '1 hour'
    FROM unnest($4::bigint[]) AS sid
    RETURNING id, shopper_id
), c AS (
    INSERT INTO coupons (merchant_id, offer_id, shopper_id, decision_id, code, store_ids,
                         issued_at, expires_at)
    SELECT $1, $2, d.shopper_id, d.id, 'B' || d.id || $5, ARRAY[$3::bigint], now(),
           now() + interval '1 hour'
    FROM d RETURNING id, decision_id, shopper_id
), dl AS (
    INSERT INTO deliveries (id, merchant_id, shopper_id, offer_id, coupon_id, decision_id,
                            store_id, channels, created_at)
    SELECT gen_random_uuid(), $1, c.shopper_id, $2, c.id, c.decision_id, $3, '{webpush}', now()
    FROM c RETURNING id
)
INSERT INTO outbox (delivery_id, merchant_id, channel, available_at, expires_at)
SELECT dl.id, $1, 'webpush', now() + interval '3 seconds', now() + interval '1 hour' FROM dl
"""


async def setup(url: str, subs: list[dict[str, Any]]) -> dict[str, Any]:
    from gateway import db, migrate
    from gateway.accounts import tenancy
    from geo import geojson
    from geo import store as geo_store
    from tests.support.offers import create_offer

    conn = await db.connect(url)
    try:
        await migrate.migrate(conn)
        merchant = await tenancy.create_merchant(conn, "Push Coffee")
        await conn.execute(
            "UPDATE merchants SET quiet_start = 0, quiet_end = 0, daily_offer_cap = NULL"
        )
        store = await geo_store.insert_store(
            conn,
            merchant_id=merchant.id,
            name="HQ",
            lat=48.8566,
            lon=2.3522,
            timezone="Europe/Paris",
            opening_hours=None,
        )
        fence = await geo_store.insert_geofence(
            conn,
            merchant_id=merchant.id,
            store_id=store.id,
            feature=geojson.parse_feature(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [2.3522, 48.8566]},
                    "properties": {"name": "door", "radius_m": 50},
                }
            ),
        )
        offer = await create_offer(conn, merchant.id, [store.id], channels=["webpush"])
        rows = await conn.fetch(
            SETUP_SQL,
            merchant.id,
            [s["endpoint"] for s in subs],
            [s["keys"]["p256dh"] for s in subs],
            [s["keys"]["auth"] for s in subs],
        )
        shoppers = [r["shopper_id"] for r in rows]
        return {
            "merchant": merchant.id,
            "store": store.id,
            "fence": fence.id,
            "offer": offer,
            "shoppers": shoppers,
        }
    finally:
        await conn.close()


async def queue(url: str, world: dict[str, Any], shoppers: list[int]) -> None:
    from gateway import db

    conn = await db.connect(url)
    try:
        await conn.execute(
            DELIVERY_SQL,
            world["merchant"],
            world["offer"],
            world["store"],
            shoppers,
            uuid.uuid4().hex[:8],
        )
    finally:
        await conn.close()


async def wait_done(url: str, total: int, timeout: float = 600) -> float:
    """Seconds from the first push settled to the last (the workers' own start and the
    fallback poll that finds the rows are left out)."""
    from gateway import db

    conn = await db.connect(url)
    try:
        deadline = time.monotonic() + timeout
        first: float | None = None
        while True:
            left = await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")
            now = time.monotonic()
            if first is None and left < total:
                first = now
            if left == 0:
                break
            if now > deadline:
                raise RuntimeError(f"{left} pushes still pending")
            await asyncio.sleep(0.01)
        dead = await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'dead'")
        if dead:
            raise RuntimeError(f"{dead} pushes were dead-lettered")
        assert first is not None
        return time.monotonic() - first
    finally:
        await conn.close()


async def ping_load(base: str, tokens: list[str], rate: float) -> list[tuple[str, float]]:
    """Each shopper pings outside, then at the door: the second ping enters and sends."""
    import aiohttp

    sent: list[tuple[str, float]] = []
    begin = time.perf_counter() + 0.5
    m_per_deg = 111_320.0

    async def shopper(session: aiohttp.ClientSession, i: int, token: str) -> None:
        due = begin + i / rate
        headers = {"Authorization": f"Bearer {token}"}
        outside = {"lat": 48.8566 + 300 / m_per_deg, "lon": 2.3522, "accuracy_m": 10}
        inside = {"lat": 48.8566, "lon": 2.3522, "accuracy_m": 10}
        await asyncio.sleep(max(0.0, due - 20 / rate - time.perf_counter()))
        ts = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
        body = {**outside, "ts": ts.isoformat()}
        async with session.post(f"{base}/v1/pings", json=body, headers=headers) as r:
            await r.read()
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        wall = time.time()
        body = {**inside, "ts": dt.datetime.now(dt.UTC).isoformat()}
        async with session.post(f"{base}/v1/pings", json=body, headers=headers) as r:
            answer = await r.json()
        for offer in answer.get("offers", []):
            sent.append((offer["delivery_id"], wall))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        await asyncio.gather(*(shopper(session, i, t) for i, t in enumerate(tokens)))
    return sent


async def enrol_tokens(url: str, world: dict[str, Any]) -> list[str]:
    from gateway import db
    from gateway.accounts import auth

    conn = await db.connect(url)
    tokens = []
    try:
        for sid in world["shoppers"]:
            _, token = await auth.create_key(
                conn, merchant_id=world["merchant"], role=auth.Role.SHOPPER, shopper_id=sid
            )
            tokens.append(token)
        await conn.execute("UPDATE outbox SET status = 'done' WHERE status = 'pending'")
    finally:
        await conn.close()
    return tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=3000)
    parser.add_argument("--naive", type=int, default=300)
    parser.add_argument("--pings", type=int, default=600)
    parser.add_argument("--rate", type=float, default=50.0, help="pings with a push per second")
    parser.add_argument("--load", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.load:
        base, tokens_file, rate = args.load
        tokens = json.loads(Path(tokens_file).read_text())
        print(json.dumps(asyncio.run(ping_load(base, tokens, float(rate)))))
        return 0

    from gateway.delivery.webpush import _new_key
    from tests.benchmarks.scratch import ScratchDatabase

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    scratch = ScratchDatabase(work)
    url = scratch.url
    procs: list[subprocess.Popen[bytes]] = []
    n_subs = max(args.pushes, args.pings)
    try:
        peer_file = work / "peer.json"
        procs.append(
            subprocess.Popen([sys.executable, "-c", PEER, str(peer_file), str(n_subs), str(ROOT)])
        )
        while not peer_file.exists() or not peer_file.read_text():
            time.sleep(0.1)
        time.sleep(0.2)
        peer = json.loads(peer_file.read_text())
        base, subs = peer["base_url"], peer["subscriptions"]
        log(f"push service at {base} with {len(subs)} subscriptions")
        pem, _ = _new_key()

        log(f"naive loop: {args.naive} x pywebpush.webpush()")
        naive = naive_loop(subs, args.naive, pem)

        world = asyncio.run(setup(url, subs))
        env = dict(
            os.environ,
            DATABASE_URL=url,
            GATEWAY_DATA_DIR=str(work),
            GATEWAY_LOG_LEVEL="WARNING",
            GATEWAY_VAPID_PRIVATE_KEY=pem,
            GATEWAY_DB_POOL_MAX="20",
        )
        fanout: dict[int, float] = {}
        cpu: dict[int, tuple[float, float]] = {}
        for workers in (1, 2):
            shoppers = world["shoppers"][: args.pushes]
            asyncio.run(queue(url, world, shoppers))
            before = stats(base)["received"]
            log(f"fan-out: {len(shoppers)} pushes, {workers} gateway worker process(es)")
            started = [
                subprocess.Popen([sys.executable, "-m", "gateway", "worker"], env=env, cwd=ROOT)
                for _ in range(workers)
            ]
            # The rows fall due 3 s after they were queued: CPU is counted from then,
            # so the workers' start-up is left out.
            time.sleep(2.5)
            peer_cpu = cpu_seconds(procs[0].pid)
            worker_cpu = -sum(cpu_seconds(p.pid) for p in started)
            try:
                seconds = asyncio.run(wait_done(url, len(shoppers)))
                worker_cpu += sum(cpu_seconds(p.pid) for p in started)
                peer_cpu = cpu_seconds(procs[0].pid) - peer_cpu
                cpu[workers] = (worker_cpu, peer_cpu)
            finally:
                for p in started:
                    p.terminate()
                for p in started:
                    p.wait(timeout=30)
            walls = [item["wall"] for item in stats(base, before)["items"]]
            if len(walls) < len(shoppers):
                raise RuntimeError(f"only {len(walls)} of {len(shoppers)} pushes arrived")
            # Arrivals at the push service, first to last: what the workers delivered,
            # without their start-up or the poll that found the rows.
            fanout[workers] = (len(walls) - 1) / (max(walls) - min(walls))
            log(f"  settled in {seconds:.2f} s after the first settle")

        log("ping to push: gateway serve with its worker")
        tokens = asyncio.run(enrol_tokens(url, world))[: args.pings]
        tokens_file = work / "tokens.json"
        tokens_file.write_text(json.dumps(tokens))
        port = free_port()
        serve_env = dict(env, GATEWAY_PING_RATE="1000", GATEWAY_PING_BURST="1000")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
                env=serve_env,
                cwd=ROOT,
            )
        )
        gw = f"http://127.0.0.1:{port}"
        wait_http(f"{gw}/readyz", timeout=120)
        time.sleep(1.0)
        before = stats(base)["received"]
        out = subprocess.run(
            [sys.executable, __file__, "--load", gw, str(tokens_file), str(args.rate)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        sent = {d: t for d, t in json.loads(out.stdout)}
        deadline = time.time() + 30
        arrivals: dict[str, float] = {}
        while time.time() < deadline and len(arrivals) < len(sent):
            for item in stats(base, before)["items"]:
                payload = json.loads(item["payload"])
                arrivals.setdefault(payload["delivery_id"], item["wall"])
            time.sleep(0.2)
        latencies = sorted(1000 * (arrivals[d] - t) for d, t in sent.items() if d in arrivals)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        scratch.drop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("Web Push fan-out to the local push service (VAPID checked, payload decrypted)")
    print(f"  naive pywebpush.webpush() loop:         {naive:8.0f} pushes/s")
    for workers, rate in fanout.items():
        print(
            f"  gateway outbox, {workers} worker process(es):  {rate:8.0f} pushes/s "
            f"({rate / naive:.1f}x the naive loop); CPU per push: workers "
            f"{1e6 * cpu[workers][0] / args.pushes:.0f} us, "
            f"push service {1e6 * cpu[workers][1] / args.pushes:.0f} us"
        )
    print()
    print(f"Ping to push, {args.rate:g} pings with a send per second, {len(sent)} sends")
    if latencies:
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"  arrived {len(latencies)}/{len(sent)}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    else:
        print("  no push arrived")
    rows = [
        figures.row(
            f"Web Push fan-out, {workers} worker process(es)",
            rate,
            "pushes/s",
            baseline=naive,
            baseline_name="naive pywebpush.webpush() loop",
        )
        for workers, rate in fanout.items()
    ]
    if latencies:
        rows += [
            figures.row(f"ping to push p50 at {args.rate:g}/s", p50, "ms"),
            figures.row(f"ping to push p99 at {args.rate:g}/s", p99, "ms"),
        ]
    figures.write(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
