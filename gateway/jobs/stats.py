"""Folding funnel rollup deltas into the rollup table, in the background.

Every replica runs :func:`run_forever`; an advisory lock lets one at a time do
the work. Reports stay exact meanwhile: they read the rollups and the deltas.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from gateway import db
from offers import store as offers_store

log = logging.getLogger(__name__)

# "gwstats" as a number.
LOCK_ID = 0x67777374617473


async def compact(conn: asyncpg.Connection) -> int | None:
    """Fold the committed deltas in; None if another process is doing it."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_ID):
            return None
        return await offers_store.compact_stats(conn)


async def run_forever(pool: asyncpg.Pool, *, every_seconds: float) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        try:
            async with db.acquire(pool) as conn:
                await compact(conn)
        except Exception:
            log.warning("funnel rollup compaction failed; will retry", exc_info=True)
