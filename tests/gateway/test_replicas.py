"""Three `gateway serve` replicas on one database behind nginx: caps, budgets and
single-use redemption hold with requests spread across them, a geofence edit reaches
every replica's index within a second, and kill -9 of a replica under load loses no
committed decision and leaves no outbox row stuck. Those taking ``route`` run twice:
direct, and through a real PgBouncer in transaction mode (deploy/SCALING.md)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gateway.accounts import tenancy
from gateway.demo.localpush import PushService
from tests.support import pgbouncer, proc
from tests.support.replicas import cluster
from tests.support.tenants import Tenant

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs Debian's nginx")

LAT, LON = 48.80, 2.25  # away from the tenant fixture's own places
M_PER_DEG = 111_320.0


def _at(dx: float, dy: float = 0.0) -> tuple[float, float]:
    return LAT + dy / M_PER_DEG, LON + dx / (M_PER_DEG * math.cos(math.radians(LAT)))


def _environ(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return proc.env(
        database_url,
        tmp_path,
        GATEWAY_PING_RATE="1000",
        GATEWAY_PING_BURST="1000",
        GATEWAY_REDEEM_RATE="1000",
        GATEWAY_REDEEM_BURST="1000",
        GATEWAY_LOG_LEVEL="WARNING",
        GATEWAY_WEBPUSH_ALLOW_HTTP="1",
        GATEWAY_PASS_PUSHER="0",
        # The walks below move 400 m between pings milliseconds apart: not a spoofing test.
        GATEWAY_MAX_SPEED_MPS="1000000",
        **extra,
    )


@pytest.fixture(params=["direct", "pgbouncer"])
async def route(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    async with pgbouncer.routed(request.param, database_url, tmp_path / "pgbouncer") as env:
        yield env


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base
        self.answered: list[tuple[str, dt.datetime]] = []  # (token, ts) of pings answered 200
        self.resent: set[tuple[str, dt.datetime]] = set()  # ... and of those sent again

    async def call(
        self, method: str, path: str, token: str, body: Any = None, **headers: str
    ) -> tuple[int, Any]:
        hdrs = {"Authorization": f"Bearer {token}", **headers}
        async with self.http.request(method, self.base + path, json=body, headers=hdrs) as r:
            return r.status, await r.json() if r.content_type.endswith("json") else None

    async def ping(self, token: str, dx: float, *, retry: bool = True) -> dict[str, Any]:
        lat, lon = _at(dx)
        ts = dt.datetime.now(dt.UTC)
        body = {"lat": lat, "lon": lon, "accuracy_m": 10, "ts": ts.isoformat()}
        for _ in range(50):
            try:
                status, answer = await self.call("POST", "/v1/pings", token, body)
            except aiohttp.ClientError:
                status, answer = 0, None
            if status == 200:
                self.answered.append((token, ts))
                return dict(answer)
            if not retry:
                raise AssertionError(f"ping answered {status}: {answer}")
            self.resent.add((token, ts))
            await asyncio.sleep(0.1)  # the same ping again: a lost answer is retried
        raise AssertionError("ping never answered 200")


async def _place(
    c: Client, tenant: Tenant, *, indexed: Any = None, **offer: Any
) -> tuple[str, str]:
    """A 60 m circle of store 1 at (LAT, LON) and an offer on it; quiet hours off.

    ``indexed``, awaited with the fence id before the offer is made, can wait for every
    replica to have the fence (probe shoppers entering it then get no offer)."""
    manager = tenant.tokens["manager"]
    status, fence = await c.call(
        "POST",
        "/v1/geofences",
        manager,
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [LON, LAT]},
            "properties": {"store_id": str(tenant.store_ids[1]), "name": "door", "radius_m": 60},
        },
    )
    assert status == 201, fence
    if indexed is not None:
        await indexed(str(fence["id"]))
    status, _ = await c.call(
        "PUT", "/v1/program", manager, {"daily_offer_cap": None, "quiet_hours": None}
    )
    assert status == 200
    body = {
        "name": "Across replicas",
        "title": "10% off",
        "body": "Come in",
        "geofence_ids": [fence["id"]],
        "trigger": "enter",
        "channels": ["inbox"],
        "coupon": {"discount": "10% off", "valid_minutes": 60},
        **offer,
    }
    status, made = await c.call("POST", "/v1/offers", manager, body)
    assert status == 201, made
    return str(fence["id"]), str(made["id"])


async def _indexed(
    http: aiohttp.ClientSession,
    urls: list[str],
    conn: asyncpg.Connection,
    tenant: Tenant,
    fence: str,
) -> None:
    """Wait until every replica's index has the new geofence (a probe shopper enters it)."""
    probes = await _shoppers(conn, tenant, len(urls))
    for url, token in zip(urls, probes, strict=True):
        c = Client(http, url)
        for _ in range(100):
            answer = await c.ping(token, 0, retry=False)
            if any(t["geofence_id"] == fence for t in answer["transitions"]):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{url} never indexed geofence {fence}")


async def _shoppers(conn: asyncpg.Connection, tenant: Tenant, n: int) -> list[str]:
    tokens = []
    for i in range(n):
        _, token = await tenancy.enrol_shopper(
            conn,
            merchant_id=tenant.merchant_id,
            name=f"r{i}",
            email=None,
            marketing_consent=True,
            timezone=None,
        )
        tokens.append(token)
    return tokens


async def test_caps_budgets_and_single_use_hold_across_replicas(
    database_url: str,
    conn: asyncpg.Connection,
    tenant_a: Tenant,
    tmp_path: Path,
    route: dict[str, str],
) -> None:
    async with (
        cluster(_environ(database_url, tmp_path, **route), tmp_path / "nginx") as cl,
        aiohttp.ClientSession() as http,
    ):
        if True:
            c = Client(http, cl.url)
            urls = [r.url for r in cl.replicas]
            _, offer = await _place(
                c,
                tenant_a,
                indexed=lambda f: _indexed(http, urls, conn, tenant_a, f),
                caps=[{"max": 1, "days": 1}],
                budget={"max_issued": 10},
            )
            shoppers = await _shoppers(conn, tenant_a, 30)

            async def walk(token: str) -> list[dict[str, Any]]:
                sent = []
                for dx in (400, 0, 400, 400, 0):  # in, out (two pings), in again
                    sent += (await c.ping(token, dx, retry=False))["offers"]
                return sent

            results = await asyncio.gather(*(walk(t) for t in shoppers))
            assert all(len(r) <= 1 for r in results)  # the cap, across replicas
            coupons = [s["coupon"]["code"] for r in results for s in r]
            assert len(coupons) == 10  # the budget, exactly
            per_shopper = await conn.fetch(
                "SELECT shopper_id, count(*) AS n FROM decisions "
                "WHERE offer_id = $1 AND outcome = 'sent' GROUP BY shopper_id",
                int(offer),
            )
            assert len(per_shopper) == 10 and {r["n"] for r in per_shopper} == {1}

            code = coupons[0]
            attempts = await asyncio.gather(
                *(
                    c.call(
                        "POST",
                        "/v1/redemptions",
                        tenant_a.tokens["pos"],
                        {"code": code, "store_id": str(tenant_a.store_ids[1])},
                        **{"Idempotency-Key": f"race-{i}"},
                    )
                    for i in range(12)
                )
            )
            statuses = sorted(s for s, _ in attempts)
            assert statuses == [201] + [409] * 11, attempts
            assert {a["error"]["code"] for s, a in attempts if s == 409} == {"already_redeemed"}


async def test_a_geofence_edit_reaches_every_replica_within_a_second(
    database_url: str,
    conn: asyncpg.Connection,
    tenant_a: Tenant,
    tmp_path: Path,
    route: dict[str, str],
) -> None:
    # Through PgBouncer too: LISTEN goes direct, or no NOTIFY would reach the replicas.
    async with cluster(_environ(database_url, tmp_path, **route), tmp_path / "nginx") as cl:
        shoppers = await _shoppers(conn, tenant_a, len(cl.replicas))
        async with aiohttp.ClientSession() as http:
            direct = [Client(http, r.url) for r in cl.replicas]
            for c, token in zip(direct, shoppers, strict=True):
                assert (await c.ping(token, 0, retry=False))["transitions"] == []
            fence_id, _ = await _place(direct[0], tenant_a)
            made = time.monotonic()

            async def until_enter(c: Client, token: str) -> float:
                while time.monotonic() - made < 1.0:
                    answer = await c.ping(token, 0, retry=False)
                    if any(t["geofence_id"] == fence_id for t in answer["transitions"]):
                        return time.monotonic() - made
                    await asyncio.sleep(0.02)
                raise AssertionError("the new geofence did not reach this replica within 1 s")

            seen = await asyncio.gather(
                *(until_enter(c, t) for c, t in zip(direct, shoppers, strict=True))
            )
            assert len(seen) == len(cl.replicas)


async def test_kill_9_of_a_replica_under_load_loses_no_decision(
    database_url: str,
    conn: asyncpg.Connection,
    tenant_a: Tenant,
    tmp_path: Path,
    route: dict[str, str],
) -> None:
    environ = _environ(database_url, tmp_path, GATEWAY_OUTBOX_LEASE_SECONDS="2", **route)
    async with (
        PushService() as push,
        cluster(environ, tmp_path / "nginx") as cl,
        aiohttp.ClientSession() as http,
    ):
        if True:
            c = Client(http, cl.url)
            urls = [r.url for r in cl.replicas]
            _, offer = await _place(
                c,
                tenant_a,
                indexed=lambda f: _indexed(http, urls, conn, tenant_a, f),
                channels=["inbox", "webpush"],
            )
            shoppers = await _shoppers(conn, tenant_a, 36)
            for token in shoppers:
                status, _ = await c.call(
                    "POST", "/v1/push-subscriptions", token, push.subscribe().subscription_info()
                )
                assert status == 201
            started = asyncio.Event()

            redeemed: dict[str, int] = {}

            async def redeem(code: str) -> None:
                """At the till; a lost answer is retried with the same Idempotency-Key."""
                body = {"code": code, "store_id": str(tenant_a.store_ids[1])}
                for _ in range(50):
                    try:
                        status, answer = await c.call(
                            "POST",
                            "/v1/redemptions",
                            tenant_a.tokens["pos"],
                            body,
                            **{"Idempotency-Key": f"kill-{code}"},
                        )
                    except aiohttp.ClientError:
                        status, answer = 0, None
                    if status == 201:
                        redeemed[code] = redeemed.get(code, 0) + 1
                        return
                    assert status in (0, 502, 503), (status, answer)
                    await asyncio.sleep(0.1)
                raise AssertionError("redemption never answered")

            async def walk(i: int, token: str) -> None:
                await asyncio.sleep(0.05 * i)
                if i == len(shoppers) // 3:
                    started.set()
                got = False
                for dx in (400, 0, 0):
                    for sent in (await c.ping(token, dx))["offers"]:
                        await redeem(sent["coupon"]["code"])
                        got = True
                if not got:
                    # The answer carrying the coupon was lost with the killed replica (the
                    # decision was committed, the answer never left): the app finds it in
                    # its inbox, as after any lost answer.
                    for _ in range(50):
                        try:
                            status, inbox = await c.call("GET", "/v1/inbox", token)
                        except aiohttp.ClientError:
                            status, inbox = 0, None
                        if status == 200:
                            break
                        await asyncio.sleep(0.1)
                    for item in inbox["items"]:
                        await redeem(item["coupon"]["code"])

            async def killer() -> None:
                await started.wait()
                cl.kill(1)

            await asyncio.gather(killer(), *(walk(i, t) for i, t in enumerate(shoppers)))

            # Every shopper entered once and got the offer once; the inbox shows it once.
            sent = await conn.fetch(
                "SELECT d.shopper_id, v.id AS delivery_id FROM decisions d "
                "JOIN deliveries v ON v.decision_id = d.id "
                "WHERE d.offer_id = $1 AND d.outcome = 'sent'",
                int(offer),
            )
            assert len(sent) == len(shoppers)
            assert len({r["shopper_id"] for r in sent}) == len(shoppers)
            for token in shoppers[::6]:
                status, inbox = await c.call("GET", "/v1/inbox", token)
                assert status == 200
                ids = [item["delivery_id"] for item in inbox["items"]]
                assert len(ids) == len(set(ids)) == 1

            # Rows the killed replica had claimed go to the others once the lease ends.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pending = await conn.fetchval(
                    "SELECT count(*) FROM outbox o JOIN deliveries v ON v.id = o.delivery_id "
                    "WHERE v.offer_id = $1 AND o.status = 'pending'",
                    int(offer),
                )
                if pending == 0:
                    break
                await asyncio.sleep(0.2)
            assert pending == 0, "outbox rows stuck after the lease"
            # Each coupon redeemed exactly once, whatever replica answered or died.
            assert len(redeemed) == len(shoppers)
            rows = await conn.fetch(
                "SELECT coupon_id, count(*) AS n FROM redemptions WHERE offer_id = $1 "
                "GROUP BY coupon_id",
                int(offer),
            )
            assert len(rows) == len(shoppers) and {r["n"] for r in rows} == {1}
            pushed = {r.json()["delivery_id"] for r in push.received}
            assert pushed == {str(r["delivery_id"]) for r in sent}
            # Every ping answered 200 is in the log once, those the killed replica
            # answered included: it spooled them before answering, and a survivor on
            # the same data directory replays its spool.
            keys = await conn.fetch(
                "SELECT public_id, shopper_id FROM api_keys WHERE shopper_id IS NOT NULL"
            )
            shopper_of = {r["public_id"]: r["shopper_id"] for r in keys}
            answered = {(shopper_of[t.split("_")[2]], ts) for t, ts in c.answered}
            assert len(answered) == 3 * len(shoppers)
            deadline = time.monotonic() + 30
            while True:
                rows = await conn.fetch(
                    "SELECT shopper_id, ts FROM pings WHERE merchant_id = $1", tenant_a.merchant_id
                )
                logged = {(r["shopper_id"], r["ts"]) for r in rows}
                if answered <= logged or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert answered <= logged, f"{len(answered - logged)} answered pings not logged"
            # Twice only if sent twice: the dead replica took it, its answer was lost.
            counts = collections.Counter((r["shopper_id"], r["ts"]) for r in rows)
            resent = {(shopper_of[t.split("_")[2]], ts) for t, ts in c.resent}
            assert {k for k, n in counts.items() if n > 1} <= resent


async def test_replicas_ride_out_a_database_restart_and_lose_nothing(tmp_path: Path) -> None:
    """PostgreSQL stops mid-load: replicas answer 503 with Retry-After for what needs it,
    keep accepted pings, and recover by themselves once it is back."""
    from gateway import db, migrate
    from tests.support.tenants import make_tenant

    server = db.EmbeddedServer(tmp_path / "own-pg")
    url = server.url()
    conn = await db.connect(url)
    try:
        await migrate.migrate(conn)
        tenant = await make_tenant(conn, "Restart Coffee")
        shoppers = await _shoppers(conn, tenant, 3)
    finally:
        await conn.close()

    def pg_ctl(*args: str) -> None:
        from pgserver import _commands

        getattr(_commands, "pg_ctl")(  # noqa: B009 - generated at import, untyped
            list(args), pgdata=server._server.pgdata, user=server._server.system_user
        )

    environ = _environ(url, tmp_path, GATEWAY_DB_POOL_MIN="1")
    async with (
        cluster(environ, tmp_path / "nginx", n=2) as cl,
        aiohttp.ClientSession() as http,
    ):
        c = Client(http, cl.url)
        probe_conn = await db.connect(url)
        try:
            urls = [r.url for r in cl.replicas]
            _, offer = await _place(
                c, tenant, indexed=lambda f: _indexed(http, urls, probe_conn, tenant, f)
            )
        finally:
            await probe_conn.close()
        warm = shoppers[0]
        direct = [Client(http, r.url) for r in cl.replicas]
        accepted = 0
        for d in direct * 2:
            await d.ping(warm, 400, retry=False)
            accepted += 1
        sent: list[Any] = []
        for _ in range(20):  # a replica may not have heard of the new offer yet: walk again
            sent = (await c.ping(shoppers[1], 0, retry=False))["offers"]
            if sent:
                break
            for _ in range(2):
                await c.ping(shoppers[1], 400, retry=False)
        assert len(sent) == 1
        code = sent[0]["coupon"]["code"]

        pg_ctl("-w", "stop", "-m", "fast")
        try:
            # What needs the database is refused, with a hint when to come back...
            status, answer = await c.call(
                "POST",
                "/v1/redemptions",
                tenant.tokens["pos"],
                {"code": code, "store_id": str(tenant.store_ids[1])},
                **{"Idempotency-Key": "outage-1"},
            )
            assert status == 503 and answer["error"]["code"] == "unavailable"
            async with http.get(f"{cl.replicas[0].url}/readyz") as r:
                assert r.status == 503 and r.headers["Retry-After"] == "2"
            cold = shoppers[2]
            status, answer = await c.call(
                "POST",
                "/v1/pings",
                cold,
                {
                    "lat": LAT,
                    "lon": LON + 0.01,
                    "accuracy_m": 10,
                    "ts": dt.datetime.now(dt.UTC).isoformat(),
                },
            )
            assert status == 503, answer
            # ...while a ping that changes nothing is still accepted from the caches.
            # Pings too, once a replica has noticed (its listener is gone, so its caches
            # are): every answer is 200 (kept) or 503 with Retry-After (not taken).
            for d in direct * 2:
                lat, lon = _at(400)
                body = {"lat": lat, "lon": lon, "accuracy_m": 10,
                        "ts": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
                async with http.post(
                    f"{d.base}/v1/pings", json=body, headers={"Authorization": f"Bearer {warm}"}
                ) as r:
                    assert r.status in (200, 503)
                    if r.status == 503:
                        assert r.headers["Retry-After"]
                    accepted += r.status == 200
        finally:
            socket_dir = url.split("host=", 1)[1].split("&", 1)[0]
            log_file = str(server._server.log)  # where the server's own user may write
            pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", log_file, "start")

        # Back by themselves: ready again, the refused redemption goes through once.
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and not ready:
            statuses = []
            for r in cl.replicas:
                async with http.get(f"{r.url}/readyz") as resp:
                    statuses.append(resp.status)
            ready = statuses == [200, 200]
            await asyncio.sleep(0.2)
        assert ready
        status, _ = await c.call(
            "POST",
            "/v1/redemptions",
            tenant.tokens["pos"],
            {"code": code, "store_id": str(tenant.store_ids[1])},
            **{"Idempotency-Key": "outage-1"},
        )
        assert status == 201
        await c.ping(shoppers[2], 0)  # the cold shopper now enters
    # Every accepted ping reached the log, including those taken during the outage.
    conn = await db.connect(url)
    try:
        warm_id = await conn.fetchval(
            "SELECT shopper_id FROM api_keys WHERE public_id = $1", warm.split("_")[2]
        )
        logged = await conn.fetchval("SELECT count(*) FROM pings WHERE shopper_id = $1", warm_id)
        assert logged == accepted
        assert (
            await conn.fetchval("SELECT count(*) FROM redemptions WHERE offer_id = $1", int(offer))
            == 1
        )
    finally:
        await conn.close()
        server.stop()


async def test_a_resent_ping_is_answered_once_across_replicas_and_after_kill_9(
    database_url: str,
    conn: asyncpg.Connection,
    tenant_a: Tenant,
    tmp_path: Path,
    route: dict[str, str],
) -> None:
    # A slow ping log: the first attempt's row is still only in the killed replica's spool.
    environ = _environ(database_url, tmp_path, GATEWAY_PING_LOG_FLUSH_SECONDS="30", **route)
    async with cluster(environ, tmp_path / "nginx") as cl, aiohttp.ClientSession() as http:
        urls = [r.url for r in cl.replicas]
        c = Client(http, cl.url)
        await _place(c, tenant_a, indexed=lambda f: _indexed(http, urls, conn, tenant_a, f))
        first_token, racing_token = await _shoppers(conn, tenant_a, 2)
        lat, lon = _at(0)
        ts = dt.datetime.now(dt.UTC).isoformat()
        ping = {"lat": lat, "lon": lon, "accuracy_m": 10, "ts": ts, "id": str(uuid.uuid4())}

        # Answered by replica 0, which dies before its ping log batch is written.
        status, first = await Client(http, urls[0]).call("POST", "/v1/pings", first_token, ping)
        assert status == 200 and first["offers"], first
        cl.kill(0)
        # Straight to the live replicas: nginx does not retry a POST on another upstream
        # (non-idempotent), so through it a resend can meet the dead replica as a 502.
        for url in (urls[1], urls[2]):
            status, again = await Client(http, url).call("POST", "/v1/pings", first_token, ping)
            assert (status, again) == (200, first)  # the same coupon, from any replica

        # The same new ping sent to two replicas at once: one of them does it.
        ping = {**ping, "id": str(uuid.uuid4())}
        answers = await asyncio.gather(
            *(Client(http, u).call("POST", "/v1/pings", racing_token, ping) for u in urls[1:])
        )
        assert answers[0] == answers[1] and answers[0][0] == 200
        assert answers[0][1]["offers"]

        keys = await conn.fetch("SELECT public_id, shopper_id FROM api_keys")
        shopper_of = {r["public_id"]: r["shopper_id"] for r in keys}
        shoppers = [shopper_of[t.split("_")[2]] for t in (first_token, racing_token)]
        for shopper in shoppers:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM geofence_events WHERE shopper_id = $1) AS events,"
                " (SELECT count(*) FROM decisions WHERE shopper_id = $1) AS decisions,"
                " (SELECT count(*) FROM coupons WHERE shopper_id = $1) AS coupons",
                shopper,
            )
            assert row is not None and tuple(row) == (1, 1, 1)
        # Each ping is logged once: the killed replica's row comes from its spool, which a
        # survivor replays (it scans for orphans every few seconds); no resend adds one.
        deadline = time.monotonic() + 30
        query = "SELECT count(*) FROM pings WHERE shopper_id = $1"
        while await conn.fetchval(query, shoppers[0]) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    # The survivors write the rest as they stop.
    assert [await conn.fetchval(query, s) for s in shoppers] == [1, 1]
