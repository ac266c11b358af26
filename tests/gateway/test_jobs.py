"""The periodic job runner: rounds under the job's advisory lock, failures logged and
survived, a held lock skipping the work, and stop() cancelling a round cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway import clock, db
from gateway.jobs import periodic

# Not one of geo.locks: tests must not block the service's own jobs on a shared server.
TEST_LOCK = int.from_bytes(b"gwtestjb", "big")
NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with await db.create_pool(database_url, min_size=1, max_size=2) as pool:
        yield pool


async def _free(conn: asyncpg.Connection) -> bool:
    """Whether the test lock is free (taking and dropping it from ``conn``)."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", TEST_LOCK):
        return False
    await conn.execute("SELECT pg_advisory_unlock($1)", TEST_LOCK)
    return True


async def test_rounds_hold_the_lock_and_a_failed_round_is_survived(
    pool: asyncpg.Pool, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[bool, dt.datetime]] = []
    second = asyncio.Event()

    async def round_(r: periodic.Round) -> None:
        seen.append((await _free(conn), r.now))
        if len(seen) == 1:
            raise RuntimeError("first round fails")
        second.set()

    job = periodic.Job(name="test-job", every_seconds=0, lock=TEST_LOCK, round=round_)
    runner = periodic.Runner(pool, [job], clock_=clock.FixedClock(NOW))
    runner.start()
    try:
        await asyncio.wait_for(second.wait(), 30)
    finally:
        await runner.stop()
    assert seen[:2] == [(False, NOW), (False, NOW)]
    failed = [r for r in caplog.records if r.getMessage() == "periodic job failed; will retry"]
    assert failed and failed[0].__dict__["job"] == "test-job"
    assert await _free(conn)


async def test_once_skips_the_work_while_another_session_holds_the_lock(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    calls: list[int] = []

    async def work() -> int:
        calls.append(1)
        return 7

    assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", TEST_LOCK)
    async with db.acquire(pool) as other:
        assert await periodic.once(other, TEST_LOCK, work) is None
        assert calls == []
        await conn.execute("SELECT pg_advisory_unlock($1)", TEST_LOCK)
        assert await periodic.once(other, TEST_LOCK, work) == 7
    assert calls == [1]
    assert await _free(conn)


async def test_stop_cancels_a_round_in_progress_and_releases_its_lock(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    started = asyncio.Event()

    async def round_(r: periodic.Round) -> None:
        started.set()
        await asyncio.Event().wait()

    job = periodic.Job(name="stuck", every_seconds=0, lock=TEST_LOCK, round=round_)
    runner = periodic.Runner(pool, [job], clock_=clock.SystemClock())
    runner.start()
    await asyncio.wait_for(started.wait(), 30)
    assert not await _free(conn)
    await runner.stop()
    assert await _free(conn)
