"""Benchmark of the offers figures: decide() cost per candidate, redemption throughput and
latency under 32 concurrent POS clients, and the funnel report over 10 million events.

Run: python tests/benchmarks/bench_offers.py [--events 10000000] [--clients 32] [--duration 10]

What it does:
1. times `offers.decide()` in this process for 1, 10 and 100 candidate offers with a
   realistic mix of rules (schedules, weather, audience, caps, 20 past exposures);
2. makes a fresh database (DATABASE_URL's server, else an embedded PostgreSQL in a
   temporary directory) with one merchant, 20 stores, one offer and enough coupons;
3. starts `gateway serve` (one process) and a bare aiohttp app that parses the same
   body and answers 201; a separate load process runs --clients concurrent POS clients
   (asyncio + aiohttp, one keep-alive connection each), each redeeming a distinct coupon
   per request with its own Idempotency-Key, for --duration seconds against each: first
   closed loop (every client sends again as soon as it is answered: the most the
   machine can do), then open loop at half that rate (requests on a fixed schedule,
   latency counted from the scheduled time, so a stall is not hidden);
4. writes --events decisions over 90 days and 20 stores (the rollup triggers run as in
   production), compacts the rollups, then times GET /v1/reports/offers/{id}?by=day
   (median of 20) next to the naive query over the raw decision log.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks import figures  # noqa: E402
from tests.benchmarks.bench_pings import free_port, log, wait_http, wait_port  # noqa: E402

BARE_APP = """
import sys
import orjson
from aiohttp import web

async def handler(request):
    body = orjson.loads(await request.read())
    assert request.headers.get("Idempotency-Key")
    return web.Response(
        body=orjson.dumps({"id": "1", "code": body["code"], "store_id": body["store_id"]}),
        status=201,
        content_type="application/json",
    )

app = web.Application()
app.router.add_post("/v1/redemptions", handler)
import uvloop
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            loop=uvloop.new_event_loop())
"""


# -- decide() --------------------------------------------------------------------------------


def bench_decide() -> list[tuple[int, float]]:
    from offers import decide
    from offers.models import (
        Audience,
        Candidate,
        Cap,
        Context,
        CouponSpec,
        Exposure,
        Offer,
        Program,
        ShopperState,
        WeatherRule,
    )

    now = dt.datetime(2026, 1, 12, 8, 0, tzinfo=dt.UTC)
    rng = random.Random(1)

    def make(i: int) -> Offer:
        return Offer(
            id=i,
            merchant_id=1,
            name=f"o{i}",
            title="t",
            body="b",
            channels=("inbox",),
            trigger="enter",
            store_ids=frozenset({1}),
            schedule={"mon": ["07:00-11:00"], "tue": ["07:00-11:00"]} if i % 2 else None,
            weather=WeatherRule(max_temp_c=10) if i % 3 == 0 else None,
            audience=Audience(min_points=10, tags=frozenset({"coffee"})) if i % 4 == 0 else None,
            caps=(Cap(max=1, seconds=86400), Cap(max=3, seconds=30 * 86400)),
            priority=rng.randint(0, 5),
            holdout_pct=10.0,
            coupon=CouponSpec(discount="20%", valid_minutes=60),
        )

    shopper = ShopperState(
        shopper_id=42,
        marketing_consent=True,
        points=100,
        tags=frozenset({"coffee"}),
        history=tuple(
            Exposure(
                offer_id=rng.randint(1000, 2000), at=now - dt.timedelta(days=rng.random() * 30)
            )
            for _ in range(20)
        ),
    )
    context = Context(now=now, weather_condition="clouds", temp_c=4.0)
    program = Program()
    results = []
    for n in (1, 10, 100):
        candidates = [
            Candidate(offer=make(i), fence_id=i, store_id=1, store_timezone="Europe/Paris")
            for i in range(1, n + 1)
        ]
        loops = max(200, 20_000 // n)
        for _ in range(loops // 10):
            decide.decide(context, shopper, candidates, program)
        started = time.perf_counter_ns()
        for _ in range(loops):
            decide.decide(context, shopper, candidates, program)
        per_call = (time.perf_counter_ns() - started) / loops
        results.append((n, per_call / n / 1000))
    return results


# -- database --------------------------------------------------------------------------------

COUPON_SQL = """
WITH d AS (
    INSERT INTO decisions (merchant_id, offer_id, shopper_id, store_id, geofence_id, trigger,
                           outcome, decided_at, attributable_until)
    SELECT $1, $2, s.id, $4, 0, 'enter', 'sent', now(), now() + interval '1 day'
    FROM shoppers s WHERE s.merchant_id = $1 AND s.id <> $3
    RETURNING id, shopper_id
), numbered AS (
    SELECT id, shopper_id, row_number() OVER (ORDER BY id) AS n FROM d
)
INSERT INTO coupons (merchant_id, offer_id, shopper_id, decision_id, code, store_ids,
                     issued_at, expires_at)
SELECT $1, $2, shopper_id, numbered.id, ($5::text[])[numbered.n], $6, now(),
       now() + interval '1 day'
FROM numbered
"""

# One shopper per coupon, as at a real till.
SHOPPERS_SQL = """
INSERT INTO shoppers (merchant_id, name, marketing_consent)
SELECT $1, 'shopper ' || g, true FROM generate_series(1, $2) AS g
"""

EVENTS_SQL = """
INSERT INTO decisions (merchant_id, offer_id, shopper_id, store_id, geofence_id, trigger,
                       outcome, reason, decided_at, attributable_until, converted_at)
SELECT $1, $2, $3, ($4::bigint[])[1 + (g % 20)], 0, 'enter',
       CASE WHEN g % 10 < 3 THEN 'sent' ELSE 'suppressed' END,
       CASE WHEN g % 10 < 3 THEN NULL
            ELSE ($5::text[])[1 + (g / 10) % 9] END,
       $6::timestamptz - (g % 90) * interval '1 day',
       $6::timestamptz - (g % 90) * interval '1 day' + interval '1 hour',
       CASE WHEN g % 17 = 0 THEN $6::timestamptz - (g % 90) * interval '1 day' END
FROM generate_series($7::bigint, $8::bigint) AS g
"""

NAIVE_SQL = """
SELECT (decided_at AT TIME ZONE 'Europe/Paris')::date AS day, outcome, reason,
       count(*), count(converted_at)
FROM decisions WHERE offer_id = $1 GROUP BY 1, 2, 3
"""


async def setup(url: str, n_coupons: int) -> dict[str, object]:
    from gateway import db, migrate
    from gateway.accounts import auth, tenancy
    from geo import store as geo_store
    from offers import codes
    from tests.support.offers import create_offer

    conn = await db.connect(url)
    try:
        await migrate.migrate(conn)
        merchant = await tenancy.create_merchant(conn, "Bench Coffee")
        stores = []
        for i in range(20):
            s = await geo_store.insert_store(
                conn,
                merchant_id=merchant.id,
                name=f"store {i}",
                lat=48.85 + i * 0.01,
                lon=2.35,
                timezone="Europe/Paris",
                opening_hours=None,
            )
            stores.append(s.id)
        offer_id = await create_offer(conn, merchant.id, stores)
        shopper, _ = await tenancy.enrol_shopper(
            conn,
            merchant_id=merchant.id,
            name="s",
            email=None,
            marketing_consent=True,
            timezone=None,
        )
        _, pos = await tenancy.create_key(conn, merchant_id=merchant.id, role=auth.Role.POS)
        made = [codes.new_code() for _ in range(n_coupons)]
        await conn.execute(SHOPPERS_SQL, merchant.id, n_coupons)
        await conn.execute(COUPON_SQL, merchant.id, offer_id, shopper.id, stores[0], made, stores)
        return {
            "merchant": merchant.id,
            "offer": offer_id,
            "stores": stores,
            "shopper": shopper.id,
            "pos": pos,
            "codes": [codes.display(c) for c in made],
        }
    finally:
        await conn.close()


async def load_events(url: str, world: dict[str, object], n_events: int) -> float:
    """Write the decision events through the real insert trigger (which feeds the rollup
    deltas), in chunks on two connections at once, then fold the deltas in."""
    from gateway import db
    from gateway.jobs import stats
    from offers.models import REASONS

    reasons = [r for r in REASONS if r != "lower_priority"]
    chunk = 500_000
    now = dt.datetime.now(dt.UTC)
    chunks = iter(range(0, n_events, chunk))
    written = 0

    async def writer() -> None:
        nonlocal written
        conn = await db.connect(url)
        try:
            for start in chunks:
                end = min(n_events, start + chunk) - 1
                await conn.execute(
                    EVENTS_SQL,
                    world["merchant"],
                    world["offer"],
                    world["shopper"],
                    world["stores"],
                    reasons,
                    now,
                    start,
                    end,
                )
                written += end + 1 - start
                log(f"  {written:,} events written")
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(writer(), writer())
    conn = await db.connect(url)
    try:
        await stats.compact(conn)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def naive_report(url: str, offer_id: int) -> float:
    from gateway import db

    conn = await db.connect(url)
    try:
        started = time.perf_counter()
        await conn.fetch(NAIVE_SQL, offer_id)
        return time.perf_counter() - started
    finally:
        await conn.close()


# -- load ------------------------------------------------------------------------------------


async def pos_clients(
    base: str,
    token: str,
    codes: list[str],
    store: int,
    clients: int,
    duration: float,
    rate: float = 0.0,
) -> dict[str, Any]:
    """Closed loop (rate 0: each client sends as soon as its last answer came), or open
    loop at ``rate`` requests a second in all, latency counted from the scheduled time."""
    import aiohttp

    queue = iter(range(len(codes)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    begin = time.perf_counter()
    deadline = begin + duration
    headers = {"Authorization": f"Bearer {token}"}

    async def client(session: aiohttp.ClientSession, k: int) -> None:
        sent = 0
        while time.perf_counter() < deadline:
            i = next(queue, None)
            if i is None:
                return
            body = {"code": codes[i], "store_id": str(store), "amount": 4.5}
            started = time.perf_counter()
            if rate:
                # Client k's n-th request is due at begin + (n * clients + k) / rate.
                due = begin + (sent * clients + k) / rate
                sent += 1
                if due > started:
                    await asyncio.sleep(due - started)
                started = due
            async with session.post(
                f"{base}/v1/redemptions",
                json=body,
                headers={**headers, "Idempotency-Key": f"bench-{codes[i]}"},
            ) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session, k) for k in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "ok": statuses.get(201, 0),
        "errors": sum(n for s, n in statuses.items() if s != 201),
        "statuses": " ".join(f"{s}x{n}" for s, n in sorted(statuses.items())),
    }


async def db_only(
    url: str, world: dict[str, Any], codes: list[str], clients: int
) -> dict[str, Any]:
    """The same redemptions straight to PostgreSQL (the function the endpoint calls),
    with as many connections as clients: what the database alone can do here."""
    from gateway import db
    from gateway.http import idempotency
    from offers import codes as coupon_codes

    pool = await db.create_pool(url, min_size=clients, max_size=clients)
    todo = iter(codes)
    latencies: list[float] = []

    async def worker() -> None:
        async with pool.acquire() as conn:
            while (code := next(todo, None)) is not None:
                canonical = coupon_codes.normalize(code) or ""
                store_id = world["stores"][0]
                started = time.perf_counter()
                await conn.fetchrow(
                    "SELECT * FROM redeem_coupon($1, $2, $3, NULL, NULL, 1, $4, $5, now())",
                    world["merchant"],
                    canonical,
                    store_id,
                    f"db-{code}",
                    idempotency.request_hash(canonical, store_id, None, None),
                )
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    await pool.close()
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def load_process(
    base: str, spec: Path, clients: int, duration: float, rate: float = 0.0
) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            base,
            str(spec),
            str(clients),
            str(duration),
            str(rate),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def report_times(base: str, token: str, offer_id: int, runs: int = 20) -> list[float]:
    import urllib.request

    times = []
    for _ in range(runs):
        req = urllib.request.Request(
            f"{base}/v1/reports/offers/{offer_id}?by=day",
            headers={"Authorization": f"Bearer {token}"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--coupons", type=int, default=60_000)
    parser.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.load:
        base, spec_file, clients, secs, rate = args.load
        spec = json.loads(Path(spec_file).read_text())
        result = asyncio.run(
            pos_clients(
                base,
                spec["token"],
                spec["codes"],
                spec["store"],
                int(clients),
                float(secs),
                float(rate),
            )
        )
        print(json.dumps(result))
        return 0

    log("decide() per candidate")
    decide_rows = bench_decide()

    from tests.benchmarks.scratch import ScratchDatabase

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    scratch = ScratchDatabase(work)
    url = scratch.url
    procs: list[subprocess.Popen[bytes]] = []
    try:
        world = asyncio.run(setup(url, args.coupons))
        log(f"issued {args.coupons:,} coupons")
        codes = list(world["codes"])  # type: ignore[call-overload]
        gw_port, bare_port = free_port(), free_port()
        env = dict(
            os.environ,
            DATABASE_URL=url,
            GATEWAY_DATA_DIR=str(work),
            GATEWAY_REDEEM_RATE="1000000",
            GATEWAY_REDEEM_BURST="1000000",
            GATEWAY_LOG_LEVEL="WARNING",
            GATEWAY_DB_POOL_MAX="40",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--port", str(gw_port)],
                env=env,
                cwd=ROOT,
            )
        )
        bare_file = work / "bare.py"
        bare_file.write_text(BARE_APP)
        procs.append(subprocess.Popen([sys.executable, str(bare_file), str(bare_port)]))
        gw, bare = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{bare_port}"
        wait_http(f"{gw}/readyz", timeout=300)
        wait_port(bare_port)
        half = len(codes) // 3
        spec_file = work / "load.json"
        store = world["stores"][0]  # type: ignore[index]

        def spec(some: list[str]) -> Path:
            spec_file.write_text(json.dumps({"token": world["pos"], "codes": some, "store": store}))
            return spec_file

        log("warm-up")
        load_process(gw, spec(codes[half : half + 2000]), args.clients, 2)
        log(f"redemptions, {args.clients} clients: bare aiohttp")
        bare_r = load_process(bare, spec(codes[:half]), args.clients, args.duration)
        log(f"redemptions, {args.clients} clients: gateway")
        gw_r = load_process(gw, spec(codes[:half]), args.clients, args.duration)
        paced = 0.5 * gw_r["rps"]
        log(f"redemptions, {args.clients} clients, open loop at {paced:.0f}/s: gateway")
        gw_paced = load_process(
            gw, spec(codes[2 * half :]), args.clients, args.duration, rate=paced
        )

        log(f"redemptions, {args.clients} connections straight to PostgreSQL")
        direct = asyncio.run(db_only(url, world, codes[half + 2000 : 2 * half], args.clients))
        log(f"writing {args.events:,} decision events")
        load_s = asyncio.run(load_events(url, world, args.events))
        reviewer = asyncio.run(_reviewer(url, int(world["merchant"])))  # type: ignore[call-overload]
        report = report_times(gw, reviewer, int(world["offer"]))  # type: ignore[call-overload]
        naive = asyncio.run(naive_report(url, int(world["offer"])))  # type: ignore[call-overload]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        scratch.drop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("decide() cost per candidate offer")
    for n, us in decide_rows:
        print(f"  {n:>3} candidates: {us:6.2f} us per candidate ({us * n:7.1f} us per call)")
    print()
    print(f"POST /v1/redemptions, {args.clients} concurrent POS clients, {args.duration:g} s")
    print(f"  {'':18}{'gateway':>12}{'bare aiohttp':>14}")
    for key, label in (("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
        print(f"  {label:18}{gw_r[key]:12.2f}{bare_r[key]:14.2f}")
    print(f"  gateway answers (status x count): {gw_r['statuses']}")
    print(f"  throughput ratio gateway/bare: {gw_r['rps'] / bare_r['rps']:.2f}")
    print(
        f"  open loop at {paced:.0f} req/s (50 % of the gateway's max), latency from the "
        f"scheduled send: p50 {gw_paced['p50_ms']:.2f} ms, p99 {gw_paced['p99_ms']:.2f} ms "
        f"({gw_paced['statuses']})"
    )
    print(
        f"  PostgreSQL alone, redeem_coupon() on {args.clients} connections: "
        f"{direct['rps']:.0f}/s, p50 {direct['p50_ms']:.2f} ms, p99 {direct['p99_ms']:.2f} ms"
    )
    print()
    print(f"Funnel report over {args.events:,} decision events (written in {load_s:.0f} s)")
    median = 1000 * statistics.median(report)
    print(
        f"  GET /v1/reports/offers/{{id}}?by=day: median {median:.1f} ms, "
        f"max {1000 * max(report):.1f} ms over {len(report)} runs"
    )
    print(f"  baseline, naive GROUP BY over the raw log: {1000 * naive:.0f} ms")
    figures.write(
        args.json,
        [
            figures.row(
                f"redemption p99, {args.clients} POS clients, closed loop",
                gw_r["p99_ms"],
                "ms",
                baseline=direct["p99_ms"],
                baseline_name=f"PostgreSQL alone: redeem_coupon() on {args.clients} connections",
                higher_is_better=False,
            ),
            figures.row(
                f"redemption p99, open loop at {paced:.0f}/s (50 % of max)",
                gw_paced["p99_ms"],
                "ms",
            ),
            figures.row(
                "redemptions per second, closed loop",
                gw_r["rps"],
                "req/s",
                baseline=direct["rps"],
                baseline_name="PostgreSQL alone",
            ),
            figures.row(
                f"funnel report over {args.events:,} decision events (median)",
                median,
                "ms",
                baseline=1000 * naive,
                baseline_name="naive GROUP BY over the log",
                higher_is_better=False,
            ),
        ],
    )
    return 0


async def _reviewer(url: str, merchant_id: int) -> str:
    from gateway import db
    from gateway.accounts import auth, tenancy

    conn = await db.connect(url)
    try:
        _, token = await tenancy.create_key(conn, merchant_id=merchant_id, role=auth.Role.REVIEWER)
        return token
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
