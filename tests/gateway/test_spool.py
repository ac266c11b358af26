"""The ping spool: what a dead process leaves behind is replayed exactly once.

The files are written by our own Spool class and marked by our own write, as a
process that died mid-run would have left them; a real `kill -9` of a real
`gateway serve` is in test_replicas.py and below.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from gateway import db
from gateway.accounts import privacy, tenancy
from gateway.pingpath import pinglog, spool
from geo import store as geo_store
from tests.support import proc
from tests.support.tenants import Tenant

T0 = dt.datetime(2026, 1, 12, 8, 0, tzinfo=dt.UTC)


def records(tenant: Tenant, shopper_id: int, n: int, start: int = 0) -> list[geo_store.PingRecord]:
    return [
        geo_store.PingRecord(
            merchant_id=tenant.merchant_id,
            shopper_id=shopper_id,
            ts=T0 + dt.timedelta(seconds=start + i),
            received_at=T0 + dt.timedelta(seconds=start + i),
            lat=48.86,
            lon=2.34 + i * 1e-5,
            accuracy_m=10.0,
            speed_mps=None,
            weather_condition="rain" if i % 2 else None,
            temp_c=4.5 if i % 2 else None,
            verdict="ok",
            transitions=0,
        )
        for i in range(n)
    ]


@pytest.fixture
async def shopper(conn: asyncpg.Connection, tenant_a: Tenant) -> int:
    sid: int = await conn.fetchval(
        "SELECT id FROM shoppers WHERE merchant_id = $1 ORDER BY id LIMIT 1", tenant_a.merchant_id
    )
    return sid


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        yield p
    finally:
        await p.close()


async def dead_process_spool(
    directory: Path, pool: asyncpg.Pool, batch: list[geo_store.PingRecord], flushed: int
) -> spool.Spool:
    """A spool whose process wrote `batch`, got the first `flushed` into the database
    (with their mark, as PingLog does), and died before the rest."""
    sp = spool.Spool(directory)
    ends = sp.append(batch)
    if flushed:
        async with pool.acquire() as c:
            await geo_store.write_pings(
                c, batch[:flushed], spool=sp.id, spooled_to=ends[flushed - 1]
            )
    sp.release()  # the process is gone: its lock with it
    return sp


async def test_an_orphaned_spool_is_replayed_from_its_mark_exactly_once(
    tmp_path: Path, pool: asyncpg.Pool, conn: asyncpg.Connection, tenant_a: Tenant, shopper: int
) -> None:
    batch = records(tenant_a, shopper, 10)
    sp = await dead_process_spool(tmp_path, pool, batch, flushed=4)
    with open(sp.path, "ab") as f:
        f.write(b"not json at all\n")  # skipped, with a warning
        f.write(b'[1, 2, "cut sh')  # the crash cut this one short: never answered
    assert await conn.fetchval("SELECT count(*) FROM pings") == 4

    log = pinglog.PingLog(spool_dir=tmp_path)
    log.start(pool)
    try:
        for _ in range(100):
            if not sp.path.exists():
                break
            await asyncio.sleep(0.05)
        assert not sp.path.exists()
        assert log.replayed == 6
    finally:
        await log.stop()
    rows = await conn.fetch("SELECT ts, lon, weather_condition, temp_c FROM pings ORDER BY ts")
    assert [(r["ts"], r["lon"], r["weather_condition"], r["temp_c"]) for r in rows] == [
        (r.ts, r.lon, r.weather_condition, r.temp_c) for r in batch
    ]
    assert await conn.fetchval("SELECT count(*) FROM ping_spools") == 0
    # The newest fix moved the travel baseline.
    assert await conn.fetchval("SELECT last_ts FROM shopper_geo") == batch[-1].ts
    # The stopped log left no file of its own behind (all of it was written).
    assert list(tmp_path.glob("*.spool")) == []


async def test_a_live_spool_is_left_alone(
    tmp_path: Path, pool: asyncpg.Pool, conn: asyncpg.Connection, tenant_a: Tenant, shopper: int
) -> None:
    live = spool.Spool(tmp_path)  # held by a running process (this one)
    live.append(records(tenant_a, shopper, 3))
    log = pinglog.PingLog(spool_dir=tmp_path)
    log._pool = pool
    try:
        assert await log.replay_orphans() == 0
        assert live.path.exists()
        assert await conn.fetchval("SELECT count(*) FROM pings") == 0
    finally:
        live.release()
    # Once its process is gone, it is an orphan like any other.
    assert await log.replay_orphans() == 3
    assert not live.path.exists()


async def test_two_processes_replaying_at_once_write_each_ping_once(
    tmp_path: Path, pool: asyncpg.Pool, conn: asyncpg.Connection, tenant_a: Tenant, shopper: int
) -> None:
    for k in range(6):
        await dead_process_spool(
            tmp_path, pool, records(tenant_a, shopper, 50, start=100 * k), flushed=k * 5
        )
    logs = [pinglog.PingLog(spool_dir=tmp_path, batch_size=7) for _ in range(3)]
    for log in logs:
        log._pool = pool
    replayed = await asyncio.gather(*(log.replay_orphans() for log in logs))
    assert sum(replayed) == 6 * 50 - sum(k * 5 for k in range(6))
    assert await conn.fetchval("SELECT count(*) FROM pings") == 300
    assert await conn.fetchval("SELECT count(DISTINCT ts) FROM pings") == 300
    assert list(tmp_path.glob("*.spool")) == []


async def test_kill_9_of_gateway_serve_loses_no_answered_ping(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Path
) -> None:
    """Answered pings, then kill -9 before the batch is written: the next process on the
    same data directory replays them, once."""
    environ = proc.env(
        database_url, tmp_path, GATEWAY_LOG_LEVEL="WARNING", GATEWAY_PING_RATE="1000",
        GATEWAY_PING_BURST="1000", GATEWAY_MAX_SPEED_MPS="1000000",
        # No batch is written before the kill: every answered ping is only in the spool.
        GATEWAY_PING_LOG_FLUSH_SECONDS="60",
    )  # fmt: skip
    token = tenant_a.tokens["shopper"]
    answered: list[str] = []

    async def ping_all(base: str, n: int) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(n):
                ts = dt.datetime.now(dt.UTC).isoformat()
                body = {"lat": 48.86, "lon": 2.34, "accuracy_m": 10, "ts": ts}
                headers = {"Authorization": f"Bearer {token}"}
                async with http.post(f"{base}/v1/pings", json=body, headers=headers) as r:
                    assert r.status == 200, await r.text()
                    answered.append(ts)

    first = proc.Served(proc.free_port(), environ)
    await first.start()
    await first.wait_ready()
    try:
        await ping_all(first.url, 40)
        assert await conn.fetchval("SELECT count(*) FROM pings") == 0
    finally:
        assert first.proc is not None
        os.kill(first.proc.pid, signal.SIGKILL)  # no shutdown, no flush
        await first.stop()
    (left,) = (tmp_path / "spool").rglob("*.spool")
    assert left.parent == spool.directory(tmp_path, db.describe(database_url))
    second = proc.Served(proc.free_port(), environ)
    await second.start()
    await second.wait_ready()
    try:
        for _ in range(100):
            if await conn.fetchval("SELECT count(*) FROM pings") >= len(answered):
                break
            await asyncio.sleep(0.1)
        logged = await conn.fetch("SELECT ts FROM pings")
        assert sorted(r["ts"].isoformat() for r in logged) == sorted(
            dt.datetime.fromisoformat(ts).isoformat() for ts in answered
        )
    finally:
        await second.stop()


async def test_a_late_replay_keeps_no_ping_of_an_erased_shopper(
    tmp_path: Path, pool: asyncpg.Pool, conn: asyncpg.Connection, tenant_a: Tenant, shopper: int
) -> None:
    """DELETE /v1/me ran after the pings were answered but before a dead process's spool
    was replayed: the replay must not bring the location history back."""
    other, _ = await tenancy.enrol_shopper(
        conn,
        merchant_id=tenant_a.merchant_id,
        name="stays",
        email=None,
        marketing_consent=True,
        timezone=None,
    )
    batch = records(tenant_a, shopper, 5) + records(tenant_a, other.id, 5, start=10)
    await dead_process_spool(tmp_path, pool, batch, flushed=0)
    assert await privacy.erase(conn, shopper, tenant_a.merchant_id, T0) is not None
    log = pinglog.PingLog(spool_dir=tmp_path)
    log._pool = pool
    await log.replay_orphans()
    rows = await conn.fetch("SELECT shopper_id FROM pings")
    assert [r["shopper_id"] for r in rows] == [other.id] * 5
    assert await conn.fetchval("SELECT array_agg(shopper_id) FROM shopper_geo") == [other.id]
    assert list(tmp_path.glob("*.spool")) == []


def test_each_database_has_its_own_spool_directory(tmp_path: Path) -> None:
    """Spools are replayed only into the database their pings were taken for."""
    a = spool.directory(tmp_path, "postgresql://gw@db-a:5432/gateway")
    b = spool.directory(tmp_path, "postgresql://gw@db-b:5432/gateway")
    assert a != b and a.parent == b.parent == tmp_path / "spool"
    assert a == spool.directory(tmp_path, "postgresql://gw@db-a:5432/gateway")


async def test_pings_taken_before_the_start_are_spooled_with_their_offsets(
    tmp_path: Path, pool: asyncpg.Pool, conn: asyncpg.Connection, tenant_a: Tenant, shopper: int
) -> None:
    log = pinglog.PingLog(spool_dir=tmp_path)
    await log.record(records(tenant_a, shopper, 3))
    log.start(pool)
    try:
        await log.record(records(tenant_a, shopper, 2, start=10))
        assert await log.flush() == 5
        assert log.spool_id is not None
        path = tmp_path / f"{log.spool_id}{spool.SUFFIX}"
        assert len(path.read_bytes().splitlines()) == 5
        mark = await conn.fetchval(
            "SELECT flushed_bytes FROM ping_spools WHERE id = $1", log.spool_id
        )
        assert mark == path.stat().st_size
    finally:
        await log.stop()
    assert await conn.fetchval("SELECT count(*) FROM pings") == 5


def _plan_nodes(node: dict[str, object]) -> list[dict[str, object]]:
    children = node.get("Plans", [])
    assert isinstance(children, list)
    return [node, *(n for child in children for n in _plan_nodes(child))]


async def test_the_log_write_reads_its_batch_once_in_a_generic_plan(
    conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    # After five runs PostgreSQL may plan a prepared statement once for any parameters.
    # The log write runs every 0.2 s on one connection, so that plan is the one that
    # counts: one that scanned the batch once per shopper row took 115 ms for 700 pings.
    ids = [
        r["id"]
        for r in await conn.fetch(
            "INSERT INTO shoppers (merchant_id, name, marketing_consent) "
            "SELECT $1, 's' || g, true FROM generate_series(1, 300) g RETURNING id",
            tenant_a.merchant_id,
        )
    ]
    batch = [r for sid in ids for r in records(tenant_a, sid, 1)]
    columns = [list(c) for c in zip(*batch, strict=True)]
    types = (
        "bigint[], bigint[], timestamptz[], timestamptz[], float8[], float8[], real[], real[], "
        "text[], real[], text[], smallint[], text, bigint"
    )
    await conn.execute(f"PREPARE log_generic({types}) AS {geo_store._Q['log_pings']}")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    # EXPLAIN EXECUTE takes no bind parameters: PostgreSQL writes the batch as literals.
    kinds = [t.strip() for t in types.split(",")]
    literals = await conn.fetchrow(
        "SELECT "
        + ", ".join(f"format('%L::{kind}', ${i}::{kind})" for i, kind in enumerate(kinds, 1)),
        *columns,
        None,
        0,
    )
    assert literals is not None
    params = ", ".join(literals)
    tx = conn.transaction()
    await tx.start()
    try:
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE log_generic({params})")
    finally:
        await tx.rollback()
    nodes = _plan_nodes(plan[0]["Plan"])
    inserts = [n for n in nodes if n.get("Relation Name") == "pings"]
    assert [n["Actual Rows"] for n in inserts if n["Node Type"] == "ModifyTable"] == [300]
    batch_scans = [n for n in nodes if n["Node Type"] == "Function Scan"]
    assert batch_scans, nodes
    assert all(n["Actual Loops"] == 1 for n in batch_scans), [
        (n["Node Type"], n["Actual Loops"]) for n in batch_scans
    ]
