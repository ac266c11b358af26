"""Raw-ping retention: pings older than the retention period are deleted (and stale
ping spool marks with them).

``gateway serve`` runs :func:`run_forever` in the background (one replica at a
time does the work, under an advisory lock); ``gateway pings purge`` runs it once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

import asyncpg

from gateway import clock, db
from geo import store as geo_store

log = logging.getLogger(__name__)

# "gwpurge" as a number: the lock that keeps two replicas from purging at once.
LOCK_ID = 0x67777075726765


async def purge(
    conn: asyncpg.Connection,
    *,
    older_than: dt.datetime,
    batch: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> int | None:
    """Delete pings received before ``older_than``; None if another process holds the job."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_ID):
        return None
    total = 0
    try:
        while True:
            deleted = await geo_store.purge_pings(conn, older_than, batch)
            total += deleted
            if progress is not None:
                progress(total)
            if deleted < batch:
                # Spool marks untouched for as long belong to files that are gone (a
                # live spool is rotated every few minutes, a dead one replayed).
                await geo_store.purge_spool_marks(conn, older_than)
                return total
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)


async def run_forever(
    pool: asyncpg.Pool, *, retention_days: float, clock_: clock.Clock, every_seconds: float = 3600
) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        cutoff = clock_.now() - dt.timedelta(days=retention_days)
        try:
            async with db.acquire(pool) as conn:
                deleted = await purge(conn, older_than=cutoff)
            if deleted:
                log.info(
                    "purged old pings", extra={"deleted": deleted, "before": cutoff.isoformat()}
                )
        except Exception:
            log.warning("ping purge failed; will retry", exc_info=True)
