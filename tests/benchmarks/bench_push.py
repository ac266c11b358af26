"""Benchmark of Web Push delivery: the parts of one push, the push service alone, fan-out
through the outbox workers next to a naive pywebpush loop, and ping to push under load.

Run: python tests/benchmarks/bench_push.py [--pushes 6000] [--naive 300] [--pings 3000]
     [--rate 500] [--rounds 3]

What it does:
1. starts the local push service of the tests (gateway/demo/localpush.py: it checks
   each VAPID JWT and decrypts each aes128gcm body) in its own process;
2. times the parts of one push in this process (push_parts.py): ECDH key generation,
   the shared secret, HKDF, AES-GCM, the whole encryption next to pywebpush's, the
   VAPID header cached next to signed, and an HTTP POST's client CPU next to aiohttp's;
3. the push service alone: a load process sends it --pushes pushes encrypted beforehand
   on 64 kept-alive connections (its rate and CPU per push: it must not be what limits
   the fan-out);
4. naive baseline: `pywebpush.webpush()` in a loop (what most projects do), --naive
   messages, one after the other;
5. fan-out: starts `gateway worker` processes (1, then 2, alternated for --rounds
   rounds), queues --pushes deliveries with their outbox rows (one per shopper, each
   subscribed at the push service) once they are up, and counts arrivals at the push
   service from the first to the last (every row must end done); the best round of each;
6. ping to push: starts `gateway serve` (its worker inside) and sends --pings pings
   that each enter a geofence with an offer, at --rate a second, open loop, from a
   separate load process; the latency of each is the push's acceptance at the push
   service minus the ping's answer (and minus its scheduled send), wall clock, one
   machine. The load process's own lag is printed: past 5 ms it is saturated.
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
import asyncio, json, os, sys
sys.path.insert(0, sys.argv[3])
from gateway.demo.localpush import PushService

async def main():
    service = PushService()
    await service.start()
    subs = [service.subscribe() for _ in range(int(sys.argv[2]))]
    # Written whole, then renamed: the bench reads it as soon as it exists.
    with open(sys.argv[1] + ".part", "w") as f:
        json.dump({"base_url": service.base_url,
                   "subscriptions": [s.subscription_info() for s in subs]}, f)
    os.rename(sys.argv[1] + ".part", sys.argv[1])
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
SELECT dl.id, $1, 'webpush', now(), now() + interval '1 hour' FROM dl
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
        # As a decision's transaction does: the workers wake on it, not on their poll.
        await conn.execute("SELECT pg_notify('outbox', $1::text)", str(world["merchant"]))
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


async def ping_load(
    base: str, tokens: list[str], rate: float
) -> list[tuple[str, float, float, float]]:
    """Each shopper pings outside, then at the door: the second ping enters and sends."""
    import aiohttp

    sent: list[tuple[str, float, float, float]] = []
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
        # Open loop: the schedule, not the previous answer, says when a ping goes.
        late = max(0.0, time.perf_counter() - due)
        wall = time.time() - late
        body = {**inside, "ts": dt.datetime.now(dt.UTC).isoformat()}
        async with session.post(f"{base}/v1/pings", json=body, headers=headers) as r:
            answer = await r.json()
        answered = time.time()
        for offer in answer.get("offers", []):
            sent.append((offer["delivery_id"], wall, answered, late))

    failed = 0

    async def guarded(session: aiohttp.ClientSession, i: int, token: str) -> None:
        nonlocal failed
        try:
            await shopper(session, i, token)
        except (aiohttp.ClientError, TimeoutError):
            failed += 1  # a ping the gateway did not take: no push to wait for

    # 256 kept-alive connections, as the fan-in of many phones through a proxy would be.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        await asyncio.gather(*(guarded(session, i, t) for i, t in enumerate(tokens)))
    if failed:
        sys.stderr.write(f"[bench] {failed} shoppers' pings failed to connect or answer\n")
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


async def blast(subs: list[dict[str, Any]], n: int, concurrency: int) -> None:
    """The push service alone: `n` pushes encrypted beforehand (not timed), then POSTed
    on `concurrency` kept-alive connections, as fast as the service answers."""
    import py_vapid

    from gateway.delivery import pushhttp, webpush

    vapid = py_vapid.Vapid02()
    vapid.generate_keys()
    sender = webpush.Sender(webpush.VapidKey(vapid=vapid, public_key="k"), subject="mailto:b@x.y")
    requests = []
    for i in range(n):
        sub = subs[i % len(subs)]
        target = webpush.Target(
            endpoint=sub["endpoint"], p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]
        )
        headers = {
            "TTL": "600",
            "Content-Encoding": "aes128gcm",
            "Authorization": sender.authorization(target.endpoint),
        }
        requests.append((target.endpoint, webpush.Sender.encrypt(target, PAYLOAD), headers))
    client = pushhttp.Client(per_origin=concurrency)
    pending = iter(requests)

    async def connection() -> None:
        for endpoint, body, headers in pending:
            answer = await client.post(endpoint, body, headers)
            if answer.status != 201:
                raise RuntimeError(f"the push service answered {answer.status}: {answer.body!r}")

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    await client.close()


PAYLOAD = json.dumps({"delivery_id": "x" * 36, "title": "20% off", "body": "b" * 80}).encode()


class Peer:
    """The local push service in its own process, with `n` subscriptions."""

    def __init__(self, work: Path, n: int) -> None:
        peer_file = work / "peer.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PEER, str(peer_file), str(n), str(ROOT)]
        )
        while not peer_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError("the push service exited")
            time.sleep(0.1)
        peer = json.loads(peer_file.read_text())
        self.base: str = peer["base_url"]
        self.subs: list[dict[str, Any]] = peer["subscriptions"]
        self.subs_file = work / "subs.json"
        self.subs_file.write_text(json.dumps(self.subs))

    def received(self) -> int:
        return int(stats(self.base)["received"])

    def walls(self, since: int) -> list[float]:
        return [item["wall"] for item in stats(self.base, since)["items"]]

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)


def peer_alone(peer: Peer, n: int) -> tuple[float, float]:
    """Pushes/s the push service takes from a load process, and its CPU per push."""
    before, cpu = peer.received(), peer.cpu()
    subprocess.run(
        [sys.executable, __file__, "--blast", str(peer.subs_file), str(n), "64"], check=True
    )
    cpu = peer.cpu() - cpu
    walls = peer.walls(before)
    if len(walls) < n:
        raise RuntimeError(f"only {len(walls)} of {n} pushes arrived")
    return (len(walls) - 1) / (max(walls) - min(walls)), cpu / n


def fanout(
    url: str, world: dict[str, Any], peer: Peer, env: dict[str, str], pushes: int, workers: int
) -> tuple[float, float, float]:
    """Pushes/s from `workers` gateway worker processes draining `pushes` outbox rows
    (arrivals at the push service, first to last), and CPU per push: workers, service."""
    shoppers = world["shoppers"][:pushes]
    before = peer.received()
    log(f"fan-out: {len(shoppers)} pushes, {workers} gateway worker process(es)")
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "gateway", "worker"],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    # The rows are queued once every worker is up: CPU is counted from then, so the
    # workers' start-up is left out.
    for p in started:
        assert p.stderr is not None
        while "delivering" not in p.stderr.readline():
            if p.poll() is not None:
                raise RuntimeError("gateway worker exited")
    time.sleep(0.5)
    peer_cpu = peer.cpu()
    worker_cpu = -sum(cpu_seconds(p.pid) for p in started)
    asyncio.run(queue(url, world, shoppers))
    try:
        seconds = asyncio.run(wait_done(url, len(shoppers)))
        worker_cpu += sum(cpu_seconds(p.pid) for p in started)
        peer_cpu = peer.cpu() - peer_cpu
    finally:
        for p in started:
            p.terminate()
        for p in started:
            p.wait(timeout=30)
    items = stats(peer.base, before)["items"]
    walls = [item["wall"] for item in items]
    distinct = len({json.loads(item["payload"])["delivery_id"] for item in items})
    if distinct != len(shoppers):
        raise RuntimeError(f"{distinct} distinct pushes arrived for {len(shoppers)} rows")
    if len(walls) > distinct:
        # At least once: a push that timed out, or whose lease ran out, is sent again.
        log(f"  {len(walls) - distinct} pushes arrived twice")
    rate = (len(walls) - 1) / (max(walls) - min(walls))
    log(f"  {rate:,.0f} pushes/s; settled in {seconds:.2f} s after the first settle")
    return rate, worker_cpu / pushes, peer_cpu / pushes


def ping_to_push(
    url: str, world: dict[str, Any], peer: Peer, env: dict[str, str], work: Path, args: Any
) -> tuple[list[float], list[float], int, float]:
    """Latencies (ms) from each ping's answer, and from its scheduled send, to its push's
    acceptance at the push service: pings from a load process at --rate a second, open
    loop, into `gateway serve` (its worker inside)."""
    tokens = asyncio.run(enrol_tokens(url, world))[: args.pings]
    tokens_file = work / "tokens.json"
    tokens_file.write_text(json.dumps(tokens))
    port = free_port()
    rate_limit = str(int(max(1000, 4 * args.rate)))
    serve_env = dict(env, GATEWAY_PING_RATE=rate_limit, GATEWAY_PING_BURST=rate_limit)
    gw_proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port)], env=serve_env, cwd=ROOT
    )
    try:
        gw = f"http://127.0.0.1:{port}"
        wait_http(f"{gw}/readyz", timeout=120)
        time.sleep(1.0)
        before = peer.received()
        out = subprocess.run(
            [sys.executable, __file__, "--load", gw, str(tokens_file), str(args.rate)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        sent = {d: (t, a) for d, t, a, _ in json.loads(out.stdout)}
        lags = sorted(1000 * late for *_, late in json.loads(out.stdout))
        deadline = time.time() + 30
        arrivals: dict[str, float] = {}
        while time.time() < deadline and len(arrivals) < len(sent):
            for item in stats(peer.base, before)["items"]:
                payload = json.loads(item["payload"])
                arrivals.setdefault(payload["delivery_id"], item["wall"])
            time.sleep(0.2)
    finally:
        gw_proc.terminate()
        gw_proc.wait(timeout=30)
    from_answer = sorted(1000 * (arrivals[d] - a) for d, (_, a) in sent.items() if d in arrivals)
    from_send = sorted(1000 * (arrivals[d] - t) for d, (t, _) in sent.items() if d in arrivals)
    return from_answer, from_send, len(sent), pct(lags, 0.99) if lags else 0.0


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def parts_rows(parts: dict[str, float]) -> list[dict[str, Any]]:
    def part(name: str, key: str, base: str | None = None, base_name: str | None = None) -> Any:
        return figures.row(
            f"push part: {name}",
            parts[key],
            "us",
            baseline=parts.get(base) if base else None,
            baseline_name=base_name,
            higher_is_better=False,
        )

    rows = [
        part("ECDH key generation, fresh per message", "ecdh_keygen"),
        part("ECDH shared secret", "ecdh_exchange"),
        part("subscription key parsing (point check)", "subscription_key"),
        part("HKDF (four HMAC-SHA-256)", "hkdf"),
        part("AES-128-GCM, one record", "aes_gcm"),
        part(
            "whole encryption (ece.py)",
            "encrypt",
            "encrypt_pywebpush",
            "pywebpush WebPusher.encode()",
        ),
        part("VAPID header, cached per origin", "vapid_cached", "vapid_signed", "signed each time"),
    ]
    if "http" in parts:
        rows.append(
            part(
                "HTTP POST, client CPU, pooled keep-alive",
                "http",
                "http_aiohttp",
                "aiohttp ClientSession, keep-alive",
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=3000)
    parser.add_argument("--naive", type=int, default=300)
    parser.add_argument("--pings", type=int, default=600)
    parser.add_argument("--rate", type=float, default=50.0, help="pings with a push per second")
    parser.add_argument("--rounds", type=int, default=3, help="alternated fan-out rounds")
    parser.add_argument("--alone", type=int, default=0, help="pushes to the service alone")
    parser.add_argument("--load", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--blast", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.load:
        base, tokens_file, rate = args.load
        tokens = json.loads(Path(tokens_file).read_text())
        print(json.dumps(asyncio.run(ping_load(base, tokens, float(rate)))))
        return 0
    if args.blast:
        import uvloop

        subs_file, n, concurrency = args.blast
        subs = json.loads(Path(subs_file).read_text())
        uvloop.run(blast(subs, int(n), int(concurrency)))
        return 0

    from gateway.delivery.webpush import _new_key
    from tests.benchmarks import push_parts
    from tests.benchmarks.scratch import ScratchDatabase

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    scratch = ScratchDatabase(work)
    url = scratch.url
    peer: Peer | None = None
    alone_n = args.alone or args.pushes
    try:
        peer = Peer(work, max(args.pushes, args.pings))
        log(f"push service at {peer.base} with {len(peer.subs)} subscriptions")
        pem, _ = _new_key()

        log("the parts of a push, in process")
        parts = {**push_parts.crypto_parts(), **push_parts.vapid_parts()}
        parts.update(push_parts.http_parts(peer.base, peer.subs[0]))
        log(f"the push service alone: {alone_n} pushes from a load process")
        alone = max(peer_alone(peer, alone_n) for _ in range(2))

        log(f"naive loop: {args.naive} x pywebpush.webpush()")
        naive = naive_loop(peer.subs, args.naive, pem)

        world = asyncio.run(setup(url, peer.subs))
        env = dict(
            os.environ,
            DATABASE_URL=url,
            GATEWAY_DATA_DIR=str(work),
            GATEWAY_LOG_LEVEL="WARNING",
            GATEWAY_VAPID_PRIVATE_KEY=pem,
            GATEWAY_DB_POOL_MAX="20",
        )
        fan: dict[int, tuple[float, float, float]] = {}
        for _ in range(args.rounds):
            for workers in (1, 2):
                got = fanout(url, world, peer, env, args.pushes, workers)
                if workers not in fan or got[0] > fan[workers][0]:
                    fan[workers] = got

        log(f"ping to push: gateway serve with its worker, {args.rate:g} pings a second")
        latency = ping_to_push(url, world, peer, env, work, args)
    finally:
        if peer is not None:
            peer.proc.terminate()
            peer.proc.wait(timeout=30)
        scratch.drop()
        shutil.rmtree(work, ignore_errors=True)

    rows = report(args, parts, alone, naive, fan, *latency)
    figures.write(args.json, rows)
    return 0


def report(
    args: Any,
    parts: dict[str, float],
    alone: tuple[float, float],
    naive: float,
    fan: dict[int, tuple[float, float, float]],
    from_answer: list[float],
    from_send: list[float],
    n_sent: int,
    lag: float,
) -> list[dict[str, Any]]:
    print()
    print("The parts of one push, in process (thread CPU, best of rounds)")
    for name, value in parts.items():
        print(f"  {name:22s} {value:8.1f} us")
    print()
    print("Web Push fan-out to the local push service (VAPID checked, payload decrypted)")
    print(
        f"  the push service alone:                 {alone[0]:8.0f} pushes/s, "
        f"{1e6 * alone[1]:.0f} us CPU per push"
    )
    print(f"  naive pywebpush.webpush() loop:         {naive:8.0f} pushes/s")
    for workers, (rate, w_cpu, p_cpu) in fan.items():
        print(
            f"  gateway outbox, {workers} worker process(es):  {rate:8.0f} pushes/s "
            f"({rate / naive:.1f}x the naive loop, best of {args.rounds}); CPU per push: "
            f"workers {1e6 * w_cpu:.0f} us, push service {1e6 * p_cpu:.0f} us"
        )
    print()
    print(f"Ping to push, {args.rate:g} pings with a send per second, {n_sent} sends")
    if from_answer:
        print(
            f"  arrived {len(from_answer)}/{n_sent}: from the answer p50 "
            f"{statistics.median(from_answer):.1f} ms, p99 {pct(from_answer, 0.99):.1f} ms; "
            f"from the send p50 {statistics.median(from_send):.1f} ms, "
            f"p99 {pct(from_send, 0.99):.1f} ms; the load process sent p99 {lag:.1f} ms late"
            + (" (saturated: these latencies are partly its own backlog)" if lag > 5 else "")
        )
    else:
        print("  no push arrived")
    rows = parts_rows(parts)
    rows.append(
        figures.row(
            "the local push service alone (its own process, VAPID checked, decrypted)",
            alone[0],
            "pushes/s",
            note=f"{1e6 * alone[1]:.0f} us CPU per push",
        )
    )
    rows += [
        figures.row(
            f"Web Push fan-out, {workers} worker process(es)",
            rate,
            "pushes/s",
            baseline=naive,
            baseline_name="naive pywebpush.webpush() loop",
            note=f"best of {args.rounds}; CPU per push {1e6 * w_cpu:.0f} us (workers), "
            f"{1e6 * p_cpu:.0f} us (push service)",
        )
        for workers, (rate, w_cpu, p_cpu) in fan.items()
    ]
    if 1 in fan and 2 in fan:
        rows.append(
            figures.row(
                "Web Push fan-out, 2 worker processes against 1",
                fan[2][0],
                "pushes/s",
                baseline=fan[1][0],
                baseline_name="1 worker process",
            )
        )
    if from_answer:
        rows.append(
            figures.row(
                f"ping load at {args.rate:g}/s: how late the load process sent, p99",
                lag,
                "ms",
                higher_is_better=False,
                note="over 5 ms: the client is saturated, and the latencies show its backlog",
            )
        )
        lost = (
            f"; {n_sent - len(from_answer)} of {n_sent} never arrived"
            if len(from_answer) < n_sent
            else ""
        )
        rows += [
            figures.row(
                f"ping to push p50 at {args.rate:g}/s, from the answer",
                statistics.median(from_answer),
                "ms",
                higher_is_better=False,
            ),
            figures.row(
                f"ping to push p99 at {args.rate:g}/s, from the answer",
                pct(from_answer, 0.99),
                "ms",
                higher_is_better=False,
                note=f"target 50 ms{lost}; load process sending p99 {lag:.1f} ms late",
            ),
            figures.row(
                f"ping to push p99 at {args.rate:g}/s, from the ping's scheduled send",
                pct(from_send, 0.99),
                "ms",
                higher_is_better=False,
            ),
        ]
    return rows


if __name__ == "__main__":
    sys.exit(main())
