"""One runner for periodic jobs: each job runs every so often under its advisory lock, so
that with several replicas one at a time does a given job, and stopping cancels them all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from gateway import clock, db, metrics

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Round:
    """What one round of a job works with."""

    pool: asyncpg.Pool
    conn: asyncpg.Connection  # holds the job's lock for the round
    now: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    name: str  # names the task and the log lines
    every_seconds: float  # the pause before each round, the first included
    lock: int  # its advisory lock id, from geo.locks
    round: Callable[[Round], Awaitable[None]]


async def once(conn: asyncpg.Connection, lock: int, work: Callable[[], Awaitable[T]]) -> T | None:
    """``work()`` while ``conn`` holds advisory lock ``lock``; None, without running it,
    if another session holds the lock.

    A session lock, released here rather than at a transaction's end, so that the work
    may commit in as many short transactions as it likes.
    """
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock):
        return None
    try:
        return await work()
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock)


class Runner:
    """Runs every job in its own task until :meth:`stop`; a failed round is logged and
    the job carries on with the next one."""

    def __init__(self, pool: asyncpg.Pool, jobs: Sequence[Job], *, clock_: clock.Clock) -> None:
        self._pool = pool
        self._jobs = tuple(jobs)
        self._clock = clock_
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job), name=job.name) for job in self._jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        # Each loop ends in CancelledError, which gather hands back instead of raising.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _round(self, job: Job) -> str:
        """One round of ``job`` now, unless another process holds its lock ("skipped")."""
        async with db.acquire(self._pool) as conn:
            round_ = Round(pool=self._pool, conn=conn, now=self._clock.now())
            ran = await once(conn, job.lock, lambda: _ran(job.round(round_)))
        return "ok" if ran else "skipped"

    async def _loop(self, job: Job) -> None:
        while True:
            await asyncio.sleep(job.every_seconds)
            try:
                outcome = await self._round(job)
            except Exception:
                outcome = "failed"
                log.warning(
                    "periodic job failed; will retry", extra={"job": job.name}, exc_info=True
                )
            metrics.job_ran(job.name, outcome, time.time())


async def _ran(work: Awaitable[None]) -> bool:
    await work
    return True
