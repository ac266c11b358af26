"""The ping path over HTTP: transitions, spoofing, rate limits, batches, concurrency, hot swaps."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import test_utils, web

from gateway import app as app_mod
from gateway import clock
from gateway.accounts import tenancy
from gateway.accounts.auth import VERIFIER
from gateway.db import POOL
from gateway.pingpath.geoindex import GEO_INDEX
from gateway.pingpath.pings import PINGS
from gateway.settings import Settings
from tests.support.client import ApiClient
from tests.support.fences import LAT, LON, add_fence, circle_feature, offset
from tests.support.openapi_check import SpecChecker
from tests.support.tenants import Tenant

T0 = dt.datetime(2026, 1, 12, 8, 0, tzinfo=dt.UTC)


@dataclass
class World:
    api: ApiClient
    app: web.Application
    clock: clock.FixedClock
    tenant: Tenant
    circle: int  # 100 m circle centred on (LAT, LON)
    square: int  # 200 m square whose west edge is 1 km east of the centre

    async def ping(
        self, dx: float, dy: float, *, acc: float = 10, token: str | None = None, **kw: Any
    ) -> Any:
        lat, lon = offset(dx, dy)
        body = {"lat": lat, "lon": lon, "accuracy_m": acc, "ts": self.clock.now().isoformat()}
        body.update(kw)
        return await self.api.post(
            "/v1/pings", token=token or self.tenant.tokens["shopper"], json=body
        )

    def events(self, reply: Any) -> list[tuple[int, str]]:
        return [(int(t["geofence_id"]), t["event"]) for t in reply.json["transitions"]]


def square_feature(west_m: float, size_m: float) -> dict[str, Any]:
    s, w = offset(west_m, -size_m / 2)
    n, e = offset(west_m + size_m, size_m / 2)
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"name": "square"},
    }


@contextlib.asynccontextmanager
async def make_world(
    database_url: str,
    conn: asyncpg.Connection,
    tenant_a: Tenant,
    tmp_path: Any,
    spec: SpecChecker,
    **options: Any,
) -> AsyncIterator[World]:
    # The tenant fixture's own circles are far from here (Paris centre, 50 m).
    circle = await add_fence(conn, tenant_a, circle_feature(LAT, LON, 100))
    square = await add_fence(conn, tenant_a, square_feature(1000, 200))
    settings = Settings(
        data_dir=tmp_path,
        db_pool_min=1,
        db_pool_max=8,
        dwell_seconds=120,
        ping_rate=1000,
        ping_burst=1000,
        max_ping_age_seconds=3600,
        **options,
    )
    fixed = clock.FixedClock(T0)
    application = app_mod.create_app(settings, db_url=database_url, clock_=fixed)
    async with test_utils.TestClient(test_utils.TestServer(application)) as client:
        yield World(
            api=ApiClient(client, spec),
            app=application,
            clock=fixed,
            tenant=tenant_a,
            circle=circle,
            square=square,
        )


@pytest.fixture
async def world(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Any, spec: SpecChecker
) -> AsyncIterator[World]:
    async with make_world(database_url, conn, tenant_a, tmp_path, spec) as w:
        yield w


@pytest.fixture
async def sync_world(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Any, spec: SpecChecker
) -> AsyncIterator[World]:
    async with make_world(database_url, conn, tenant_a, tmp_path, spec, ping_log="sync") as w:
        yield w


class TestTransitions:
    async def test_enter_dwell_exit_on_a_circle(
        self, world: World, conn: asyncpg.Connection
    ) -> None:
        r = await world.ping(-300, 0)
        assert r.status == 200 and r.json["status"] == "accepted"
        assert world.events(r) == []
        world.clock.advance(seconds=30)
        r = await world.ping(-50, 0)
        assert world.events(r) == [(world.circle, "enter")]
        assert r.json["transitions"][0]["store_id"] == str(world.tenant.store_ids[0])
        world.clock.advance(seconds=60)
        r = await world.ping(0, 20)
        assert world.events(r) == []  # inside, dwell not reached
        world.clock.advance(seconds=61)
        r = await world.ping(10, 0)
        assert world.events(r) == [(world.circle, "dwell")]
        world.clock.advance(seconds=30)
        r = await world.ping(0, 0)
        assert world.events(r) == []  # dwell fires once per visit
        world.clock.advance(seconds=30)
        r = await world.ping(0, 400)
        assert world.events(r) == []  # one ping outside is not an exit
        world.clock.advance(seconds=10)
        r = await world.ping(0, 420)
        assert world.events(r) == [(world.circle, "exit")]
        rows = await conn.fetch(
            "SELECT event FROM geofence_events WHERE geofence_id = $1 ORDER BY id", world.circle
        )
        assert [r["event"] for r in rows] == ["enter", "dwell", "exit"]

    async def test_enter_and_exit_on_a_polygon(self, world: World) -> None:
        r = await world.ping(900, 0)  # 100 m west of the square
        assert world.events(r) == []
        world.clock.advance(seconds=20)
        r = await world.ping(1100, 0)
        assert world.events(r) == [(world.square, "enter")]
        world.clock.advance(seconds=20)
        for _ in range(2):
            world.clock.advance(seconds=5)
            r = await world.ping(1500, 0)
        assert world.events(r) == [(world.square, "exit")]

    async def test_entry_counts_within_accuracy(self, world: World) -> None:
        # 130 m from the centre: 30 m outside the 100 m circle.
        r = await world.ping(130, 0, acc=20)
        assert world.events(r) == []
        world.clock.advance(seconds=5)
        r = await world.ping(130, 0, acc=35)
        assert world.events(r) == [(world.circle, "enter")]

    async def test_poor_accuracy_is_recorded_but_triggers_nothing(
        self, world: World, conn: asyncpg.Connection
    ) -> None:
        r = await world.ping(0, 0, acc=500)
        assert r.json["status"] == "ignored"
        assert r.json["reason"] == "poor_accuracy"
        assert r.json["transitions"] == []
        await world.app[PINGS].log.flush()
        row = await conn.fetchrow("SELECT verdict, accuracy_m FROM pings")
        assert row is not None
        assert (row["verdict"], row["accuracy_m"]) == ("poor_accuracy", 500)

    async def test_a_ping_that_changes_nothing_writes_nothing(
        self, world: World, conn: asyncpg.Connection
    ) -> None:
        await world.ping(0, 0)
        before = await conn.fetchrow("SELECT visits, updated_at FROM shopper_geo")
        events = await conn.fetchval("SELECT count(*) FROM geofence_events")
        for i in range(5):
            world.clock.advance(seconds=5)
            r = await world.ping(i, -i)
            assert world.events(r) == []
        after = await conn.fetchrow("SELECT visits, updated_at FROM shopper_geo")
        assert after == before
        assert await conn.fetchval("SELECT count(*) FROM geofence_events") == events

    async def test_loitering_at_the_edge_writes_only_real_transitions(
        self, world: World, conn: asyncpg.Connection
    ) -> None:
        r = await world.ping(0, 0)
        assert world.events(r) == [(world.circle, "enter")]
        version = await conn.fetchval("SELECT version FROM shopper_geo")
        # out, in, out, in...: each "out" moves only the out counter, kept in memory
        seen = []
        for dy in (400, 0, 400, 0, 400, 0):
            world.clock.advance(seconds=15)  # slow enough not to look like teleporting
            r = await world.ping(0, dy)
            assert r.json["status"] == "accepted"
            seen.extend(world.events(r))
        assert seen == []  # 90 s in: no exit, and the 120 s dwell has not come yet
        assert await conn.fetchval("SELECT version FROM shopper_geo") == version
        for _ in range(2):
            world.clock.advance(seconds=15)
            r = await world.ping(0, 400)
        assert world.events(r) == [(world.circle, "exit")]
        assert await conn.fetchval("SELECT version FROM shopper_geo") == version + 1

    async def test_a_visit_whose_pings_stopped_exits_at_its_last_sighting(
        self, world: World
    ) -> None:
        entered = world.clock.now()
        r = await world.ping(0, 0)
        assert world.events(r) == [(world.circle, "enter")]
        world.clock.advance(hours=3)  # app killed; the visit times out after 2 h
        r = await world.ping(0, 2000)
        assert world.events(r) == [(world.circle, "exit")]
        assert r.json["transitions"][0]["at"] == entered.isoformat()


class TestSpoofingAndLimits:
    async def test_future_timestamp_is_refused(
        self, world: World, conn: asyncpg.Connection
    ) -> None:
        lat, lon = offset(0, 0)
        future = (world.clock.now() + dt.timedelta(minutes=5)).isoformat()
        r = await world.api.post(
            "/v1/pings",
            token=world.tenant.tokens["shopper"],
            json={"lat": lat, "lon": lon, "accuracy_m": 10, "ts": future},
        )
        assert r.status == 422
        assert "ts" in r.json["error"]["fields"]
        await world.app[PINGS].log.flush()
        assert await conn.fetchval("SELECT count(*) FROM pings") == 0

    async def test_old_timestamp_is_refused(self, world: World) -> None:
        lat, lon = offset(0, 0)
        old = (world.clock.now() - dt.timedelta(hours=2)).isoformat()
        r = await world.api.post(
            "/v1/pings",
            token=world.tenant.tokens["shopper"],
            json={"lat": lat, "lon": lon, "accuracy_m": 10, "ts": old},
        )
        assert r.status == 422
        assert r.json["error"]["fields"] == {"ts": "too old"}

    async def test_timestamp_without_offset_is_refused(self, world: World) -> None:
        r = await world.api.post(
            "/v1/pings",
            token=world.tenant.tokens["shopper"],
            json={"lat": LAT, "lon": LON, "accuracy_m": 10, "ts": "2026-01-12T08:00:00"},
        )
        assert r.status == 422
        assert "ts" in r.json["error"]["fields"]

    async def test_impossible_travel_is_flagged_and_triggers_nothing(self, world: World) -> None:
        await world.ping(-5000, 0)
        world.clock.advance(seconds=10)
        r = await world.ping(0, 0)  # 5 km in 10 s: 500 m/s
        assert r.json["status"] == "flagged"
        assert r.json["reason"] == "impossible_travel"
        assert world.events(r) == []
        world.clock.advance(seconds=600)
        r = await world.ping(0, 0)  # plausible after 10 minutes
        assert world.events(r) == [(world.circle, "enter")]

    async def test_rate_limit_answers_429_with_retry_after(
        self, database_url: str, tenant_a: Tenant, tmp_path: Any, spec: SpecChecker
    ) -> None:
        settings = Settings(data_dir=tmp_path, db_pool_min=1, ping_rate=1, ping_burst=3)
        application = app_mod.create_app(settings, db_url=database_url)
        async with test_utils.TestClient(test_utils.TestServer(application)) as client:
            api = ApiClient(client, spec)
            body = {
                "lat": LAT,
                "lon": LON,
                "accuracy_m": 10,
                "ts": dt.datetime.now(dt.UTC).isoformat(),
            }
            statuses = [
                (await api.post("/v1/pings", token=tenant_a.tokens["shopper"], json=body))
                for _ in range(5)
            ]
        assert [r.status for r in statuses] == [200, 200, 200, 429, 429]
        assert int(statuses[3].headers["Retry-After"]) >= 1
        assert statuses[3].error_code == "rate_limited"


class TestBatch:
    async def test_batch_is_processed_in_timestamp_order(self, world: World) -> None:
        pings = []
        for k, (dx, dy) in enumerate([(-400, 0), (0, 0), (10, 5), (600, 0), (620, 0)]):
            lat, lon = offset(dx, dy)
            ts = (world.clock.now() - dt.timedelta(seconds=60 - 10 * k)).isoformat()
            pings.append({"lat": lat, "lon": lon, "accuracy_m": 10, "ts": ts})
        r = await world.api.post(
            "/v1/pings/batch",
            token=world.tenant.tokens["shopper"],
            json={"pings": list(reversed(pings))},  # sent newest first
        )
        assert r.status == 200
        assert [(int(t["geofence_id"]), t["event"]) for t in r.json["transitions"]] == [
            (world.circle, "enter"),
            (world.circle, "exit"),
        ]
        # results come back in the order sent: the enter belongs to the 4th item sent
        per_item = [[t["event"] for t in res["transitions"]] for res in r.json["results"]]
        assert per_item == [["exit"], [], [], ["enter"], []]

    async def test_pings_sharing_a_timestamp_keep_their_own_transitions(self, world: World) -> None:
        ts = world.clock.now().isoformat()
        # 30 m and 35 m east of the 100 m circle's edge, taken at the same instant.
        lat, lon = offset(130, 0)
        loose = {"lat": lat, "lon": lon, "accuracy_m": 50, "ts": ts}  # the edge is within 50 m
        lat, lon = offset(135, 0)
        sharp = {"lat": lat, "lon": lon, "accuracy_m": 10, "ts": ts}  # in the exit band
        r = await world.api.post(
            "/v1/pings/batch",
            token=world.tenant.tokens["shopper"],
            json={"pings": [loose, sharp]},
        )
        assert r.status == 200
        assert [x["status"] for x in r.json["results"]] == ["accepted", "accepted"]
        per_item = [[t["event"] for t in res["transitions"]] for res in r.json["results"]]
        assert per_item == [["enter"], []]
        assert r.json["results"][0]["transitions"][0]["store_id"] == str(world.tenant.store_ids[0])

    async def test_batch_rejects_stale_items_individually(self, world: World) -> None:
        ok = {"lat": LAT, "lon": LON, "accuracy_m": 10, "ts": world.clock.now().isoformat()}
        stale = {**ok, "ts": (world.clock.now() - dt.timedelta(days=3)).isoformat()}
        r = await world.api.post(
            "/v1/pings/batch", token=world.tenant.tokens["shopper"], json={"pings": [stale, ok]}
        )
        assert r.status == 200
        assert [x["status"] for x in r.json["results"]] == ["rejected", "accepted"]
        assert r.json["results"][0]["reason"] == "too_old"

    async def test_batch_size_is_bounded(self, world: World) -> None:
        ok = {"lat": LAT, "lon": LON, "accuracy_m": 10, "ts": world.clock.now().isoformat()}
        r = await world.api.post(
            "/v1/pings/batch", token=world.tenant.tokens["shopper"], json={"pings": [ok] * 501}
        )
        assert r.status == 422
        r = await world.api.post(
            "/v1/pings/batch", token=world.tenant.tokens["shopper"], json={"pings": []}
        )
        assert r.status == 422


async def test_parallel_pings_from_one_shopper_enter_once(
    world: World, conn: asyncpg.Connection
) -> None:
    """Two app instances of one shopper send 50 pings at once: one enter, not many."""
    tasks = [world.ping(random.uniform(-20, 20), random.uniform(-20, 20)) for _ in range(50)]
    replies = await asyncio.gather(*tasks)
    assert all(r.status == 200 for r in replies)
    enters = [e for r in replies for e in world.events(r)]
    assert enters == [(world.circle, "enter")]
    assert await conn.fetchval("SELECT count(*) FROM geofence_events WHERE event = 'enter'") == 1


async def test_jittering_pings_at_a_boundary_do_not_flap(world: World) -> None:
    """600 pings at 1 Hz with sigma = 15 m around the circle's edge, through the API."""
    rng = random.Random(7)
    events = []
    for _ in range(600):
        world.clock.advance(seconds=1)
        radial = 100 + rng.gauss(0, 15)
        angle = rng.uniform(-0.05, 0.05)
        r = await world.ping(radial * math.cos(angle), radial * math.sin(angle), acc=15)
        events.extend(world.events(r))
    assert [e for _, e in events] == ["enter", "dwell"]


async def test_ping_log_is_written_in_batches_and_moves_the_baseline(
    world: World, conn: asyncpg.Connection
) -> None:
    for i in range(20):
        world.clock.advance(seconds=3)
        await world.ping(i * 5, 0, weather={"condition": "rain", "temp_c": 7.5})
    # The background flush may be writing right now: flushes never write a ping twice.
    ping_log = world.app[PINGS].log
    await asyncio.gather(ping_log.flush(), ping_log.flush(), ping_log.flush())
    rows = await conn.fetch("SELECT verdict, weather_condition, temp_c FROM pings")
    assert len(rows) == 20
    assert {(r["verdict"], r["weather_condition"], r["temp_c"]) for r in rows} == {
        ("ok", "rain", 7.5)
    }
    last = await conn.fetchrow("SELECT last_lat, last_lon, last_ts FROM shopper_geo")
    assert last is not None
    assert last["last_ts"] == world.clock.now()
    assert last["last_lon"] == pytest.approx(offset(95, 0)[1])


async def test_an_answered_ping_is_in_the_spool_before_the_database(
    world: World, conn: asyncpg.Connection, tmp_path: Any
) -> None:
    """The default log: the record is in this process's spool file when the answer
    leaves; the batch then reaches the database, marking how far into the file it got."""
    ping_log = world.app[PINGS].log
    assert ping_log.mode == "spool" and ping_log.spool_id is not None
    assert ping_log.spool_dir is not None and ping_log.spool_dir.parent == tmp_path / "spool"
    path = ping_log.spool_dir / f"{ping_log.spool_id}.spool"
    for i in range(5):
        world.clock.advance(seconds=3)
        r = await world.ping(i * 5, 0, weather={"condition": "rain", "temp_c": 7.5})
        assert r.status == 200
        lines = path.read_bytes().splitlines()
        assert len(lines) == i + 1
        row = orjson.loads(lines[-1])
        assert row[2] == world.clock.now().isoformat() and row[8:10] == ["rain", 7.5]
    await ping_log.flush()
    assert await conn.fetchval("SELECT count(*) FROM pings") == 5
    mark = await conn.fetchval(
        "SELECT flushed_bytes FROM ping_spools WHERE id = $1", ping_log.spool_id
    )
    assert mark == path.stat().st_size


async def test_an_answered_ping_is_already_in_the_log_in_sync_mode(
    sync_world: World, conn: asyncpg.Connection
) -> None:
    """GATEWAY_PING_LOG=sync, group commit: the answer waits for the log row, and pings
    arriving together share a write."""
    world = sync_world
    ping_log = world.app[PINGS].log
    assert ping_log.sync
    for i in range(5):
        world.clock.advance(seconds=3)
        r = await world.ping(i * 5, 0)
        assert r.status == 200
        # No flush asked for: the row was committed before the answer left.
        assert await conn.fetchval("SELECT count(*) FROM pings") == i + 1
    batches = ping_log.batches
    world.clock.advance(seconds=3)
    replies = await asyncio.gather(*(world.ping(30, 0) for _ in range(30)))
    assert all(r.status == 200 for r in replies)
    assert await conn.fetchval("SELECT count(*) FROM pings") == 35
    assert ping_log.pending == 0
    assert ping_log.batches - batches < 30


async def test_a_failed_log_write_is_a_503_and_keeps_nothing_in_sync_mode(
    sync_world: World, conn: asyncpg.Connection
) -> None:
    """The ping log's connection dies mid-write: the ping is refused with 503 and
    Retry-After (the app sends it again), no row of it is written, the baseline does
    not move, and the next ping goes through."""
    world = sync_world
    r = await world.ping(-300, 0)
    assert r.status == 200
    before = await conn.fetchrow("SELECT last_ts, last_lon FROM shopper_geo")
    async with conn.transaction():
        # Hold the log's table, so the write waits where we can see it, then cut it off.
        await conn.execute("LOCK TABLE pings IN ACCESS EXCLUSIVE MODE")
        world.clock.advance(seconds=5)
        task = asyncio.create_task(world.ping(-290, 0))
        waiting: list[Any] = []
        for _ in range(200):
            waiting = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                # This database only: other xdist workers may share the server.
                "AND application_name = 'gateway' AND datname = current_database()"
            )
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert len(waiting) == 1
        await conn.execute("SELECT pg_terminate_backend($1)", waiting[0]["pid"])
        r = await task
    assert r.status == 503, r.body
    assert r.json["error"]["code"] == "unavailable" and r.headers["Retry-After"]
    assert await conn.fetchval("SELECT count(*) FROM pings") == 1
    assert await conn.fetchrow("SELECT last_ts, last_lon FROM shopper_geo") == before
    # The app sends it again, and it is taken.
    r = await world.ping(-290, 0)
    assert r.status == 200
    assert await conn.fetchval("SELECT count(*) FROM pings") == 2


async def test_memory_ping_log_writes_on_its_timer(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Any
) -> None:
    """GATEWAY_PING_LOG=memory: no spool file; the timer writes the rows."""
    settings = Settings(data_dir=tmp_path, db_pool_min=1, ping_log="memory")
    application = app_mod.create_app(settings, db_url=database_url)
    async with test_utils.TestClient(test_utils.TestServer(application)) as client:
        ping_log = application[PINGS].log
        assert ping_log.mode == "memory" and ping_log.spool_id is None
        lat, lon = offset(0, 0)
        body = {"lat": lat, "lon": lon, "accuracy_m": 10,
                "ts": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
        token = tenant_a.tokens["shopper"]
        r = await client.post("/v1/pings", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status == 200
        for _ in range(100):
            if await conn.fetchval("SELECT count(*) FROM pings") == 1:
                break
            await asyncio.sleep(0.05)
        assert await conn.fetchval("SELECT count(*) FROM pings") == 1
        assert ping_log.written == 1
    assert not (tmp_path / "spool").exists()


async def test_index_hot_swap_while_pings_run(world: World, conn: asyncpg.Connection) -> None:
    """Rebuild the index over and over while pings run: no errors, no phantom transitions."""
    holder = world.app[GEO_INDEX]
    errors: list[Any] = []
    seen: list[tuple[int, str]] = []
    stop = asyncio.Event()

    async def pinger() -> None:
        while not stop.is_set():
            world.clock.advance(seconds=1)
            r = await world.ping(random.uniform(-30, 30), random.uniform(-30, 30))
            if r.status != 200:
                errors.append(r.body)
            seen.extend(world.events(r))

    async def churn() -> None:
        # Add and drop far-away fences so every rebuild yields a different index.
        for i in range(15):
            extra = await add_fence(conn, world.tenant, circle_feature(10 + i, 10, 50, f"far{i}"))
            await holder.rebuild()
            await conn.execute("DELETE FROM geofences WHERE id = $1", extra)
            await holder.rebuild()
        stop.set()

    before = holder.rebuilds
    await asyncio.gather(pinger(), pinger(), churn())
    assert not errors
    assert holder.rebuilds - before >= 30
    assert seen.count((world.circle, "enter")) == 1
    assert all(fid == world.circle for fid, _ in seen)


def test_settings_validate_ping_limits(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="ping rate"):
        Settings(data_dir=tmp_path, ping_rate=0)


async def test_retention_purges_only_old_pings(
    world: World, conn: asyncpg.Connection, database_url: str, tmp_path: Any
) -> None:
    from gateway.jobs import retention
    from tests.support import proc

    now = dt.datetime.now(dt.UTC)
    ages = [0, 1, 29, 31, 45, 400]
    await conn.executemany(
        "INSERT INTO pings (merchant_id, shopper_id, ts, received_at, lat, lon, accuracy_m, "
        "verdict) VALUES ($1, $2, $3, $3, 0, 0, 10, 'ok')",
        [
            (world.tenant.merchant_id, world.tenant.shopper_id, now - dt.timedelta(days=d))
            for d in ages
        ],
    )
    await conn.execute(
        "INSERT INTO ping_spools (id, flushed_bytes, updated_at) VALUES "
        "('gone', 10, now() - interval '31 days'), ('live', 20, now())"
    )
    purged = await retention.purge(conn, older_than=now - dt.timedelta(days=30), batch=1)
    assert purged is not None and purged.deleted == 3
    assert await conn.fetchval(
        "SELECT array_agg(id) FROM ping_spools WHERE id IN ('gone', 'live')"
    ) == ["live"]
    kept = await conn.fetchval("SELECT count(*) FROM pings")
    assert kept == 3
    code, out, err = await proc.run(
        "pings", "purge", "--older-than-days", "0.5", environ=proc.env(database_url, tmp_path)
    )
    assert code == 0, err
    assert '"deleted": 2' in out
    assert await conn.fetchval("SELECT count(*) FROM pings") == 1


async def test_a_shoppers_key_and_geofence_state_come_in_one_read(
    world: World, conn: asyncpg.Connection
) -> None:
    """A process that has not seen the shopper yet gets the visit state with the key."""
    r = await world.ping(0, 0)  # inside the circle: a visit with state in the database
    assert world.events(r) == [(world.circle, "enter")]
    pings_svc = world.app[PINGS]
    verifier = world.app[VERIFIER]
    sid = world.tenant.shopper_id
    assert sid is not None
    pings_svc._states.clear()
    verifier.forget_all()
    principal = await verifier.verify(world.app[POOL], world.tenant.tokens["shopper"])
    assert principal is not None and principal.shopper_id == sid
    primed = pings_svc._states[sid]
    stored = await conn.fetchrow("SELECT version FROM shopper_geo WHERE shopper_id = $1", sid)
    assert primed.version == stored["version"] and world.circle in primed.visits
    # A shopper with no state yet is primed as such, and the next ping works from it.
    _, other = await tenancy.enrol_shopper(
        conn,
        merchant_id=world.tenant.merchant_id,
        name="new",
        email=None,
        marketing_consent=True,
        timezone=None,
    )
    who = await verifier.verify(world.app[POOL], other)
    assert who is not None and pings_svc._states[who.shopper_id].version is None
    world.clock.advance(seconds=5)
    r = await world.ping(0, 0, token=other)
    assert world.events(r) == [(world.circle, "enter")]
