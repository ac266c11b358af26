"""Time-partitioned event tables: migration 0024 converts a populated database without
losing a row, the partitions job makes partitions ahead and empties the DEFAULT partition,
retention drops whole days, erasure reaches every partition, and the readers' plans leave
out the partitions outside their time range."""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import test_utils

from gateway import app as app_mod
from gateway import db, metrics, migrate
from gateway.accounts import privacy
from gateway.jobs import partitions, retention
from gateway.settings import Settings
from offers import store as offers_store
from tests.gateway import test_pings
from tests.gateway.test_pings import T0, World
from tests.support.client import ApiClient
from tests.support.openapi_check import SpecChecker
from tests.support.pg import PgServer
from tests.support.tenants import Tenant, make_tenant

BEFORE = 23  # the schema just before the partitions (migration 0024)
EVENT_TABLES = {"pings": "received_at", "decisions": "decided_at", "geofence_events": "at"}
NOW = dt.datetime.now(dt.UTC)

# The ping tests' world (fences, settings, fixed clock), with the ping log written in the
# request.
sync_world = test_pings.sync_world


def _day(offset: int) -> dt.datetime:
    return (NOW + dt.timedelta(days=offset)).replace(hour=12, minute=0, second=0, microsecond=0)


async def _ping(conn: asyncpg.Connection, t: Tenant, received_at: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO pings (merchant_id, shopper_id, ts, received_at, lat, lon, accuracy_m, "
        "verdict) VALUES ($1, $2, $3, $3, 48.85, 2.35, 10, 'ok')",
        t.merchant_id,
        t.shopper_id,
        received_at,
    )


async def _event(conn: asyncpg.Connection, t: Tenant, at: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO geofence_events (merchant_id, shopper_id, geofence_id, event, at) "
        "VALUES ($1, $2, $3, 'enter', $4)",
        t.merchant_id,
        t.shopper_id,
        t.geofence_ids[0],
        at,
    )


async def _decision(conn: asyncpg.Connection, t: Tenant, at: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO decisions (merchant_id, offer_id, shopper_id, store_id, geofence_id, "
        "trigger, outcome, reason, decided_at) "
        "VALUES ($1, $2, $3, $4, $5, 'enter', 'suppressed', 'quiet_hours', $6)",
        t.merchant_id,
        t.offer_id,
        t.shopper_id,
        t.store_ids[0],
        t.geofence_ids[0],
        at,
    )


async def _rows(conn: asyncpg.Connection) -> dict[str, Any]:
    return {
        table: await conn.fetchval(
            f"SELECT jsonb_agg(to_jsonb(t) ORDER BY id)::text FROM {table} t"
        )
        for table in EVENT_TABLES
    }


async def _where(conn: asyncpg.Connection, table: str) -> dict[str, int]:
    """How many rows of ``table`` each partition holds."""
    rows = await conn.fetch(
        f"SELECT tableoid::regclass::text AS p, count(*) FROM {table} GROUP BY 1"
    )
    return {r["p"]: r["count"] for r in rows}


@pytest.fixture
async def old_db(pg: PgServer) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A database at migration 0023, before the partitions."""
    name, url = await pg.create(empty=True)
    conn = await db.connect(url)
    try:
        await conn.execute(migrate._CREATE_TABLE)
        for m in migrate.available()[:BEFORE]:
            await migrate._apply(conn, m, None)
        yield url, conn
    finally:
        await conn.close()
        await pg.drop(name)


async def test_a_populated_database_is_converted_and_keeps_working(
    old_db: tuple[str, asyncpg.Connection], tmp_path: Any, spec: SpecChecker
) -> None:
    url, conn = old_db
    t = await make_tenant(conn, "Old Coffee")  # its decisions and coupons too, at 0023
    for days in (-40, -3, -1, 0):
        await _ping(conn, t, _day(days))
        await _event(conn, t, _day(days))
        await _decision(conn, t, _day(days))
    resent = uuid.uuid4()
    answer = {"status": "accepted", "reason": None, "transitions": [], "offers": []}
    await conn.execute(
        "INSERT INTO ping_receipts (shopper_id, client_id, merchant_id, received_at, answer) "
        "VALUES ($1, $2, $3, now(), $4)",
        t.shopper_id,
        resent,
        t.merchant_id,
        answer,
    )
    before = await _rows(conn)
    last_ids = {
        table: await conn.fetchval(f"SELECT max(id) FROM {table}") for table in EVENT_TABLES
    }

    applied = await migrate.migrate(conn)
    assert [m.version for m in applied] == list(range(BEFORE + 1, migrate.latest_version() + 1))
    assert await _rows(conn) == before  # nothing lost, nothing changed
    for table in EVENT_TABLES:
        kind = await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = $1", table)
        assert kind == "p", table
        # The old rows stay where they were, in the legacy partition: nothing was copied.
        assert set(await _where(conn, table)) == {f"{table}_legacy"}

    settings = Settings(data_dir=tmp_path, ping_log="sync", db_pool_min=1, db_pool_max=4)
    application = app_mod.create_app(settings, db_url=url)
    async with test_utils.TestClient(test_utils.TestServer(application)) as client:
        api = ApiClient(client, spec)
        lat, lon = 48.8566, 2.3522  # at store 0's door: an enter, and a decision
        body = {"lat": lat, "lon": lon, "accuracy_m": 10, "ts": NOW.isoformat()}
        fresh = await api.post(
            "/v1/pings", token=t.tokens["shopper"], json={**body, "id": str(uuid.uuid4())}
        )
        assert fresh.status == 200, fresh.body
        again = await api.post(
            "/v1/pings", token=t.tokens["shopper"], json={**body, "id": str(resent)}
        )
        assert again.status == 200 and again.json == answer  # the receipt from before
        export = await api.get("/v1/me/export", token=t.tokens["shopper"])
        assert export.status == 200
        assert len(export.json["location"]["pings"]) == 5
        query = urllib.parse.urlencode({"from": _day(-41).isoformat(), "format": "csv"})
        log = await api.get(f"/v1/logs/decisions?{query}", token=t.tokens["reviewer"])
        assert log.status == 200
    # New rows take ids after the old ones, in the new partitions.
    for table in ("pings", "geofence_events"):
        newest = await conn.fetchrow(
            f"SELECT id, tableoid::regclass::text AS p FROM {table} ORDER BY id DESC LIMIT 1"
        )
        assert newest is not None and newest["id"] > last_ids[table], table
    assert len(log.body.splitlines()) == 1 + await conn.fetchval("SELECT count(*) FROM decisions")


async def test_a_fresh_database_has_its_partitions_from_today(conn: asyncpg.Connection) -> None:
    for table, scheme in zip(EVENT_TABLES, partitions.SCHEMES, strict=True):
        found = await partitions.partitions(conn, table)
        assert found[-1].is_default, table
        assert not any(p.name.endswith("_legacy") for p in found)
        until = partitions.covered_until(found, NOW)
        start = scheme.period(NOW)
        for _ in range(scheme.ahead):
            start = scheme.after(start)
        assert until > start, (table, until)


async def test_the_job_makes_partitions_ahead_and_empties_the_default(
    conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    later = NOW + dt.timedelta(days=200)
    await _ping(conn, tenant_a, later)  # no partition yet: kept in the DEFAULT one
    await _decision(conn, tenant_a, later)
    await _event(conn, tenant_a, _day(-400))
    assert set(await _where(conn, "pings")) == {"pings_default"}
    made = await partitions.run(conn, NOW)
    assert made is not None
    assert f"pings_p{later:%Y%m%d}" in made
    assert f"decisions_p{later:%Y%m}" in made
    assert f"geofence_events_p{_day(-400):%Y%m}" in made
    assert await _where(conn, "pings") == {f"pings_p{later:%Y%m%d}": 1}
    for table in EVENT_TABLES:
        assert await conn.fetchval(f"SELECT count(*) FROM {table}_default") == 0, table
    # Nothing is made twice, and the gauge says how far ahead the partitions reach.
    assert await partitions.run(conn, NOW) == []
    sample = metrics.REGISTRY.get_sample_value(
        "gateway_partitions_until_timestamp_seconds", {"table": "pings"}
    )
    assert (
        sample
        == partitions.covered_until(await partitions.partitions(conn, "pings"), NOW).timestamp()
    )
    assert sample >= (NOW + dt.timedelta(days=7)).timestamp()
    # Days later, the round makes the days that came into its reach.
    made = await partitions.run(conn, NOW + dt.timedelta(days=3))
    assert made == [f"pings_p{(NOW + dt.timedelta(days=d)):%Y%m%d}" for d in (8, 9, 10)]


async def test_the_job_runs_one_replica_at_a_time(database_url: str) -> None:
    a, b = await db.connect(database_url), await db.connect(database_url)
    try:
        await a.execute("SELECT pg_advisory_lock($1)", partitions.locks.PARTITIONS)
        assert await partitions.run(b, NOW) is None
    finally:
        await a.close()
        await b.close()


async def test_retention_drops_whole_days_and_deletes_in_the_straddling_one(
    conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    for days in (-40, -35, -31, -30, -29, 0):
        await _ping(conn, tenant_a, _day(days))
    straddling = _day(-30) - dt.timedelta(hours=6)  # 06:00 that day
    await _ping(conn, tenant_a, straddling)
    await partitions.run(conn, NOW)  # the old days get their partitions
    cutoff = _day(-30) - dt.timedelta(hours=3)  # 09:00: the 06:00 ping goes, noon stays
    purged = await retention.purge(conn, older_than=cutoff, batch=1)
    assert purged is not None
    assert purged.dropped == [f"pings_p{_day(d):%Y%m%d}" for d in (-40, -35, -31)]
    assert purged.deleted == 1
    kept = await conn.fetch("SELECT received_at FROM pings ORDER BY received_at")
    assert [r["received_at"] for r in kept] == [_day(-30), _day(-29), _day(0)]
    assert f"pings_p{_day(-30):%Y%m%d}" in {
        p.name for p in await partitions.partitions(conn, "pings")
    }
    again = await retention.purge(conn, older_than=cutoff)
    assert again == retention.Purged(deleted=0, dropped=[])


async def test_erasure_reaches_every_partition(
    conn: asyncpg.Connection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    for t in (tenant_a, tenant_b):
        for days in (-60, -2, 0, 90):  # 90: the DEFAULT partitions
            await _ping(conn, t, _day(days))
            await _event(conn, t, _day(days))
    await partitions.run(conn, NOW)
    assert len(await _where(conn, "pings")) >= 3
    await _ping(conn, tenant_a, _day(200))
    assert tenant_a.shopper_id is not None and tenant_b.shopper_id is not None
    erased = await privacy.erase(conn, tenant_a.shopper_id, tenant_a.merchant_id, NOW)
    assert erased is not None and erased["pings"] == 5 and erased["geofence_events"] == 4
    for table in ("pings", "geofence_events"):
        left = await conn.fetch(f"SELECT DISTINCT shopper_id FROM {table}")
        assert [r["shopper_id"] for r in left] == [tenant_b.shopper_id], table


async def test_writes_go_on_while_partitions_are_made_and_dropped(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    """Writers on three connections, into days that have a partition, days that get one
    meanwhile and days that lose theirs, while the job and retention run: no write fails
    and every row not purged is kept."""
    days = list(range(-33, 12))
    stop = asyncio.Event()
    written: list[dt.datetime] = []

    async def writer(n: int) -> None:
        c = await db.connect(database_url)
        try:
            i = n
            while not stop.is_set():
                at = _day(days[i % len(days)]) + dt.timedelta(seconds=i)
                await _ping(c, tenant_a, at)
                written.append(at)
                i += 3
        finally:
            await c.close()

    tasks = [asyncio.create_task(writer(n)) for n in range(3)]
    try:
        jobs = await db.connect(database_url)
        try:
            for step in range(4):
                await partitions.run(jobs, NOW + dt.timedelta(days=3 * step))
                await retention.purge(jobs, older_than=_day(-30))
        finally:
            await jobs.close()
    finally:
        stop.set()
        await asyncio.gather(*tasks)  # a failed write fails the test here
    cutoff = _day(-30)
    # Writes into the days before the cut-off went on after the last round's purge.
    await retention.purge(conn, older_than=cutoff)
    kept = [r["received_at"] for r in await conn.fetch("SELECT received_at FROM pings")]
    assert len(written) > 100
    assert sorted(kept) == sorted(at for at in written if at >= cutoff)
    assert any(at < cutoff for at in written)


async def test_a_resend_after_midnight_gets_the_first_answer(
    sync_world: World, conn: asyncpg.Connection
) -> None:
    """The first attempt's ping is in one day's partition, its resend arrives the next day:
    the receipts (one plain table) answer it, and the ping is logged once."""
    midnight = (T0 + dt.timedelta(days=1)).replace(hour=0, minute=0)
    await partitions.run(conn, T0)  # T0's day and the next have their partitions
    sync_world.clock.set(midnight - dt.timedelta(seconds=10))
    ping = {"ts": sync_world.clock.now().isoformat(), "id": str(uuid.uuid4())}
    first = await sync_world.ping(-50, 0, **ping)  # an enter: there is something to repeat
    assert first.status == 200 and sync_world.events(first), first.json
    sync_world.clock.set(midnight + dt.timedelta(seconds=20))
    again = await sync_world.ping(-50, 0, **ping)
    assert again.status == 200 and again.json == first.json
    other = await sync_world.ping(-40, 0, id=str(uuid.uuid4()))
    assert other.status == 200
    where = await _where(conn, "pings")
    assert where == {f"pings_p{T0:%Y%m%d}": 1, f"pings_p{midnight:%Y%m%d}": 1}
    assert await conn.fetchval("SELECT count(*) FROM ping_receipts") == 2
    assert await conn.fetchval("SELECT count(*) FROM geofence_events") == 1


# --- plans -------------------------------------------------------------------------------


def _scanned(plan: dict[str, Any], parent: str) -> set[str]:
    """The partitions of ``parent`` a plan reads (or writes), and its number of pruned ones."""
    found = set()
    stack = [plan["Plan"]]
    while stack:
        node = stack.pop()
        name = node.get("Relation Name", "")
        if name.startswith(parent + "_"):
            found.add(name)
        stack.extend(node.get("Plans", []))
    return found


async def _plans(conn: asyncpg.Connection, query: str, *args: Any) -> list[dict[str, Any]]:
    """The query's plan as a custom plan and as a generic plan (asyncpg prepares every
    statement, and PostgreSQL may switch to a generic plan after five runs), executed in a
    transaction that is rolled back."""
    oids = [t.oid for t in (await conn.prepare(query)).get_parameters()]
    types = await conn.fetchval(
        "SELECT array_agg(format_type(o, NULL) ORDER BY n) FROM unnest($1::oid[]) "
        "WITH ORDINALITY AS t(o, n)",
        oids,
    )
    # EXPLAIN EXECUTE takes no bind parameters: the arguments go in as literals.
    literals = await conn.fetchrow(
        "SELECT " + ", ".join(f"format('%L::{k}', ${i}::{k})" for i, k in enumerate(types, 1)),
        *args,
    )
    assert literals is not None
    out = []
    for mode in ("force_custom_plan", "force_generic_plan"):
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
            await conn.execute(f"PREPARE planned({', '.join(types)}) AS {query}")
            plan = await conn.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE planned({', '.join(literals)})"
            )
            out.append(plan[0])
        finally:
            await tx.rollback()
            await conn.execute("DEALLOCATE planned")
    return out


async def _filled(conn: asyncpg.Connection, t: Tenant) -> None:
    for days in (-70, -35, 0, 40):
        await _decision(conn, t, _day(days))
        await _ping(conn, t, _day(days))
    await partitions.run(conn, NOW)


async def test_the_decision_log_reads_only_the_months_asked_for(
    conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    await _filled(conn, tenant_a)
    f = offers_store.LogFilter(merchant_id=tenant_a.merchant_id, since=_day(-1), until=_day(1))
    for limit in (100, None):  # a JSON page, and the CSV stream's query
        query, args = offers_store.decision_log_query(f, 0, limit)
        for plan in await _plans(conn, query, *args):
            assert _scanned(plan, "decisions") <= {f"decisions_p{NOW:%Y%m}"}, plan
    everything = offers_store.LogFilter(merchant_id=tenant_a.merchant_id)
    query, args = offers_store.decision_log_query(everything, 0, None)
    plan = (await _plans(conn, query, *args))[0]
    assert len(_scanned(plan, "decisions")) >= 4  # no time range: every month


async def test_the_shoppers_cap_window_reads_only_recent_months(
    conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    await _filled(conn, tenant_a)
    since = _day(-2)
    for plan in await _plans(
        conn, offers_store._Q["shopper_offer_state"], tenant_a.shopper_id, since
    ):
        scanned = _scanned(plan, "decisions")
        # 33 days before ``since`` is always another month.
        assert not {f"decisions_p{_day(d):%Y%m}" for d in (-70, -35)} & scanned, scanned
        assert "decisions_default" in scanned or f"decisions_p{since:%Y%m}" in scanned


async def test_the_purge_deletes_only_before_the_cutoff(
    conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    await _filled(conn, tenant_a)
    from geo import store as geo_store

    for plan in await _plans(conn, geo_store._Q["purge_pings"], _day(-1), 10):
        scanned = _scanned(plan, "pings")
        assert scanned <= {f"pings_p{_day(d):%Y%m%d}" for d in (-70, -35)} | {"pings_default"}, (
            scanned
        )
