"""Time partitions of the event tables, made ahead of time.

The raw ping log is partitioned by day, the decision log and the geofence events by month
(UTC), as deploy/SCALING.md explains. Migration 0024 made the first partitions; every
replica runs :func:`job`, and one at a time (under its advisory lock) makes sure each
table has its partitions from the current period to :attr:`Scheme.ahead` periods ahead.
A row whose period has no partition yet lands in the table's DEFAULT partition rather
than being refused; the job then gives that period its partition and moves the rows
there, so the DEFAULT partition empties itself. Retention (:mod:`gateway.jobs.retention`)
drops the ping log's partitions that lie wholly before its cut-off.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg

from gateway import metrics
from gateway.jobs import periodic
from geo import locks, sql

log = logging.getLogger(__name__)

_Q = sql.load("gateway.jobs", "partitions.sql")

# How long DDL waits for a lock on a partitioned table before giving up until next round.
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scheme:
    """How one table is partitioned."""

    table: str
    column: str  # the partition key: a timestamptz column
    unit: Literal["day", "month"]
    ahead: int  # periods made ahead of the current one

    def period(self, at: dt.datetime) -> dt.datetime:
        """The start of the period holding ``at`` (UTC)."""
        at = at.astimezone(dt.UTC)
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return day if self.unit == "day" else day.replace(day=1)

    def after(self, start: dt.datetime) -> dt.datetime:
        """The start of the period after the one starting at ``start``."""
        if self.unit == "day":
            return start + dt.timedelta(days=1)
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)

    def name(self, start: dt.datetime) -> str:
        return (
            f"{self.table}_p{start:%Y%m%d}" if self.unit == "day" else f"{self.table}_p{start:%Y%m}"
        )


# The write rates that call for these periods are in deploy/SCALING.md.
SCHEMES = (
    Scheme(table="pings", column="received_at", unit="day", ahead=7),
    Scheme(table="decisions", column="decided_at", unit="month", ahead=2),
    Scheme(table="geofence_events", column="at", unit="month", ahead=2),
)
PINGS = SCHEMES[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition:
    name: str
    is_default: bool
    lower: dt.datetime | None  # None: unbounded (MINVALUE), or the DEFAULT partition
    upper: dt.datetime | None  # None: unbounded (MAXVALUE), or the DEFAULT partition

    def holds(self, at: dt.datetime) -> bool:
        """Whether ``at`` falls in this partition's range (never for the DEFAULT one)."""
        return not self.is_default and (
            (self.lower is None or self.lower <= at) and (self.upper is None or at < self.upper)
        )


async def partitions(conn: asyncpg.Connection, table: str) -> list[Partition]:
    """The partitions of ``table``, in the order of their ranges, the DEFAULT one last."""
    return [Partition(**dict(r)) for r in await conn.fetch(_Q["partitions"], table)]


async def ensure(
    conn: asyncpg.Connection, now: dt.datetime, schemes: Sequence[Scheme] = SCHEMES
) -> list[str]:
    """Make the missing partitions of each table, through ``ahead`` periods after ``now``'s
    and for every period the DEFAULT partition holds rows of; the names made."""
    made = []
    for scheme in schemes:
        made += await _ensure(conn, scheme, now)
        found = await partitions(conn, scheme.table)
        metrics.partitioned_until(scheme.table, covered_until(found, now).timestamp())
    return made


async def run(conn: asyncpg.Connection, now: dt.datetime) -> list[str] | None:
    """One round now, under the job's lock; None if another process holds it."""
    return await periodic.once(conn, locks.PARTITIONS, lambda: ensure(conn, now))


def job(*, every_seconds: float = 3600) -> periodic.Job:
    """Make partitions ahead every ``every_seconds``."""

    async def round_(r: periodic.Round) -> None:
        made = await ensure(r.conn, r.now)
        if made:
            log.info("partitions made", extra={"partitions": made})

    return periodic.Job(
        name="partitions", every_seconds=every_seconds, lock=locks.PARTITIONS, round=round_
    )


async def drop_before(conn: asyncpg.Connection, scheme: Scheme, cutoff: dt.datetime) -> list[str]:
    """Drop the partitions of ``scheme``'s table that end at or before ``cutoff``, each in
    its own short transaction; the names dropped."""
    dropped = []
    for p in await partitions(conn, scheme.table):
        if p.is_default or p.upper is None or p.upper > cutoff:
            continue
        ddl = await conn.fetchval(_Q["drop_partition_ddl"], p.name)
        async with conn.transaction():
            await conn.execute(_Q["lock_timeout"], LOCK_TIMEOUT)
            await conn.execute(ddl)
        dropped.append(p.name)
    return dropped


async def _ensure(conn: asyncpg.Connection, scheme: Scheme, now: dt.datetime) -> list[str]:
    have = [p for p in await partitions(conn, scheme.table) if not p.is_default]
    wanted = set()
    start = scheme.period(now)
    for _ in range(scheme.ahead + 1):
        wanted.add(start)
        start = scheme.after(start)
    query = await conn.fetchval(_Q["default_periods_ddl"], scheme.table, scheme.column, scheme.unit)
    wanted |= {r["period"] for r in await conn.fetch(query)}
    made = []
    for start in sorted(wanted):
        end = scheme.after(start)
        if any(_overlaps(p, start, end) for p in have):
            continue
        await _create(conn, scheme, start, end)
        made.append(scheme.name(start))
    return made


def _overlaps(p: Partition, start: dt.datetime, end: dt.datetime) -> bool:
    return (p.lower is None or p.lower < end) and (p.upper is None or start < p.upper)


async def _create(
    conn: asyncpg.Connection, scheme: Scheme, start: dt.datetime, end: dt.datetime
) -> None:
    ddl = await conn.fetchrow(
        _Q["create_partition_ddl"], scheme.table, scheme.name(start), scheme.column, start, end
    )
    assert ddl is not None
    async with conn.transaction():
        await conn.execute(_Q["lock_timeout"], LOCK_TIMEOUT)
        await conn.execute(ddl["lock"])
        await conn.execute(ddl["create"])
        await conn.execute(ddl["move"])
        await conn.execute(ddl["attach"])


def covered_until(found: Sequence[Partition], now: dt.datetime) -> dt.datetime:
    """How far partitions reach, without a gap, from ``now``: ``now`` itself when its own
    period has none (its rows go to the DEFAULT partition)."""
    until = now
    for p in found:  # in the order of their ranges
        if p.holds(until):
            if p.upper is None:
                return dt.datetime.max.replace(tzinfo=dt.UTC)
            until = p.upper
    return until
