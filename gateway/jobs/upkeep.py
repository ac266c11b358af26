"""Wallet upkeep: points expire, tiers fall as earnings leave the window, and expired
coupon passes are refreshed on the devices that hold them.

``gateway serve`` runs :func:`job` in the background (one replica at a time does the
work, under its advisory lock); ``gateway wallet upkeep`` runs :func:`run` once. Each
change is its own short transaction under the shopper's row lock, recomputed from the
ledger there, so upkeep racing purchases (or a second run) never expires a point twice
or sets a stale tier. Every change queues a pass update for the pass pusher.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import asyncpg

from gateway import db
from gateway.jobs import periodic
from geo import locks
from wallet import loyalty
from wallet.store import ledger as wallet_ledger
from wallet.store import upkeep as upkeep_store

log = logging.getLogger(__name__)

PAGE = 1000

Progress = Callable[[str, int], None]
TierRow = tuple[int, str | None, int]  # shopper id, tier held, points earned in the window
T = TypeVar("T")


@dataclass(slots=True)
class Summary:
    shoppers_expired: int = 0  # shoppers who lost points to expiry
    points_expired: int = 0  # points expired in all
    tiers_changed: int = 0
    coupon_passes_expired: int = 0


async def run(
    pool: asyncpg.Pool, *, now: dt.datetime, progress: Progress | None = None
) -> Summary | None:
    """One upkeep pass over every merchant; None if another process holds the job."""
    async with db.acquire(pool) as lock_conn:
        return await periodic.once(
            lock_conn, locks.UPKEEP, lambda: _run(pool, lock_conn, now, progress)
        )


def job(*, every_seconds: float) -> periodic.Job:
    """One upkeep pass every ``every_seconds``."""

    async def round_(r: periodic.Round) -> None:
        summary = await _run(r.pool, r.conn, r.now, None)
        if any(asdict(summary).values()):
            log.info("wallet upkeep", extra=asdict(summary))

    return periodic.Job(
        name="wallet-upkeep", every_seconds=every_seconds, lock=locks.UPKEEP, round=round_
    )


async def _run(
    pool: asyncpg.Pool, conn: asyncpg.Connection, now: dt.datetime, progress: Progress | None
) -> Summary:
    """The pass itself; ``conn`` holds the lock and reads the merchants, the pool's other
    connections do the work in short transactions."""
    pass_ = _Pass(pool=pool, now=now, progress=progress)
    for merchant_id in await upkeep_store.merchant_ids(conn):
        rules = await wallet_ledger.rules(conn, merchant_id)
        if rules.points_expire_days is not None:
            await pass_.expire_points(merchant_id, rules, rules.points_expire_days)
        await pass_.recompute_tiers(merchant_id, rules)
    async with db.acquire(pool) as work_conn:
        expired = await upkeep_store.expire_coupon_passes(work_conn, now)
    pass_.summary.coupon_passes_expired = expired
    pass_.report("coupon passes expired", expired)
    return pass_.summary


@dataclass(slots=True, kw_only=True)
class _Pass:
    """One upkeep pass: where it works, its time, and what it has done so far."""

    pool: asyncpg.Pool
    now: dt.datetime
    progress: Progress | None
    summary: Summary = field(default_factory=Summary)

    def report(self, what: str, count: int) -> None:
        if self.progress is not None:
            self.progress(what, count)

    async def expire_points(self, merchant_id: int, rules: loyalty.Rules, days: int) -> None:
        cutoff = self.now - dt.timedelta(days=days)

        def page(conn: asyncpg.Connection, after: int) -> Awaitable[list[int]]:
            return upkeep_store.shoppers_with_expiring_points(
                conn, merchant_id, cutoff, after, PAGE
            )

        async for shopper_id in _each(self.pool, page, lambda shopper_id: shopper_id):
            async with db.acquire(self.pool) as conn, conn.transaction():
                points = await upkeep_store.expire_points(
                    conn,
                    merchant_id=merchant_id,
                    shopper_id=shopper_id,
                    cutoff=cutoff,
                    at=self.now,
                    rules_=rules,
                )
            if points:
                self.summary.shoppers_expired += 1
                self.summary.points_expired += points
                self.report("shoppers with points expired", self.summary.shoppers_expired)

    async def recompute_tiers(self, merchant_id: int, rules: loyalty.Rules) -> None:
        since = self.now - dt.timedelta(days=rules.tier_window_days)

        def page(conn: asyncpg.Connection, after: int) -> Awaitable[list[TierRow]]:
            return upkeep_store.tier_page(conn, merchant_id, since, after, PAGE)

        async for shopper_id, tier, earned in _each(self.pool, page, lambda row: row[0]):
            if loyalty.tier_for(earned, rules.tiers) == tier:
                continue
            async with db.acquire(self.pool) as conn, conn.transaction():
                changed = await upkeep_store.recompute_tier(
                    conn, merchant_id=merchant_id, shopper_id=shopper_id, rules_=rules, at=self.now
                )
            if changed:
                self.summary.tiers_changed += 1
                self.report("tiers changed", self.summary.tiers_changed)


async def _each(
    pool: asyncpg.Pool,
    page: Callable[[asyncpg.Connection, int], Awaitable[list[T]]],
    key: Callable[[T], int],
) -> AsyncIterator[T]:
    """Every row of a keyset-paged query, a page per short-lived connection, so the work
    done on each row never holds a page's connection."""
    after = 0
    while True:
        async with db.acquire(pool) as conn:
            rows = await page(conn, after)
        for row in rows:
            yield row
        if len(rows) < PAGE:
            return
        after = key(rows[-1])
