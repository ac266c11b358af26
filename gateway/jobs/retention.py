"""Raw-ping retention: pings older than the retention period go (and stale ping spool
marks, and the records of client ping ids that answer resends, with them).

The ping log is partitioned by day (:mod:`gateway.jobs.partitions`): a partition that lies
wholly before the cut-off is dropped, which is instant and leaves nothing to vacuum; the
rows before the cut-off in the one partition that straddles it (and in the DEFAULT
partition) are deleted in slices, as before partitioning.

``gateway serve`` runs :func:`job` in the background (one replica at a time does the
work, under its advisory lock); ``gateway pings purge`` runs :func:`purge` once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from gateway.jobs import partitions, periodic
from geo import locks
from geo import store as geo_store

log = logging.getLogger(__name__)

# Pings deleted per statement: short locks, steady progress.
BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Purged:
    deleted: int  # pings deleted row by row (the partition straddling the cut-off)
    dropped: list[str] = field(default_factory=list)  # partitions dropped whole


async def purge(
    conn: asyncpg.Connection,
    *,
    older_than: dt.datetime,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> Purged | None:
    """Remove pings received before ``older_than``; None if another process holds the job."""
    return await periodic.once(
        conn, locks.RETENTION, lambda: _purge(conn, older_than, batch, progress)
    )


def job(*, retention_days: float, every_seconds: float = 3600) -> periodic.Job:
    """Purge what is older than the retention period, every ``every_seconds``."""

    async def round_(r: periodic.Round) -> None:
        cutoff = r.now - dt.timedelta(days=retention_days)
        purged = await _purge(r.conn, cutoff, BATCH, None)
        if purged.deleted or purged.dropped:
            log.info(
                "purged old pings",
                extra={
                    "deleted": purged.deleted,
                    "partitions_dropped": purged.dropped,
                    "before": cutoff.isoformat(),
                },
            )

    return periodic.Job(
        name="ping-retention", every_seconds=every_seconds, lock=locks.RETENTION, round=round_
    )


async def _purge(
    conn: asyncpg.Connection,
    older_than: dt.datetime,
    batch: int,
    progress: Callable[[int], None] | None,
) -> Purged:
    # A drop that cannot get its lock in time fails the round before any row is deleted
    # one by one: the next round drops it whole.
    dropped = await partitions.drop_before(conn, partitions.PINGS, older_than)
    total = 0
    while True:
        deleted = await geo_store.purge_pings(conn, older_than, batch)
        total += deleted
        if progress is not None:
            progress(total)
        if deleted < batch:
            # Spool marks untouched for as long belong to files that are gone (a
            # live spool is rotated every few minutes, a dead one replayed).
            await geo_store.purge_spool_marks(conn, older_than)
            # A resend older than the pings kept is answered as a new ping.
            while await geo_store.purge_receipts(conn, older_than, batch) == batch:
                pass
            return Purged(deleted=total, dropped=dropped)
