"""Folding funnel rollup deltas into the rollup table, in the background.

Every replica runs :func:`job`; its advisory lock lets one at a time do the work.
Reports stay exact meanwhile: they read the rollups and the deltas.
"""

from __future__ import annotations

import asyncpg

from gateway.jobs import periodic
from geo import locks
from offers import store as offers_store


async def compact(conn: asyncpg.Connection) -> int | None:
    """Fold the committed deltas in; None if another process is doing it."""
    # One statement, so atomic without a transaction of its own.
    return await periodic.once(conn, locks.STATS, lambda: offers_store.compact_stats(conn))


def job(*, every_seconds: float) -> periodic.Job:
    """Fold the deltas in every ``every_seconds``."""

    async def round_(r: periodic.Round) -> None:
        await offers_store.compact_stats(r.conn)

    return periodic.Job(
        name="stats-compaction", every_seconds=every_seconds, lock=locks.STATS, round=round_
    )
