"""Wallet upkeep: points expire, tiers fall as earnings leave the window, and expired
coupon passes are refreshed on the devices that hold them.

``gateway serve`` runs :func:`run_forever` in the background (one replica at a time
does the work, under an advisory lock); ``gateway wallet upkeep`` runs it once. Each
change is its own short transaction under the shopper's row lock, recomputed from the
ledger there, so upkeep racing purchases (or a second run) never expires a point twice
or sets a stale tier. Every change queues a pass update for the pass pusher.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import asyncpg

from gateway import clock, db
from wallet import loyalty
from wallet.store import ledger as wallet_ledger
from wallet.store import upkeep as upkeep_store

log = logging.getLogger(__name__)

# "gwupkeep" as a number: the lock that keeps two replicas from running upkeep at once.
LOCK_ID = 0x6777_7570_6B65_6570
PAGE = 1000

Progress = Callable[[str, int], None]


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
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_ID):
            return None
        try:
            summary = Summary()
            for merchant_id in await upkeep_store.merchant_ids(lock_conn):
                rules = await wallet_ledger.rules(lock_conn, merchant_id)
                if rules.points_expire_days is not None:
                    await _expire_points(pool, merchant_id, rules, now, summary, progress)
                await _recompute_tiers(pool, merchant_id, rules, now, summary, progress)
            async with db.acquire(pool) as conn:
                summary.coupon_passes_expired = await upkeep_store.expire_coupon_passes(conn, now)
            if progress is not None:
                progress("coupon passes expired", summary.coupon_passes_expired)
            return summary
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)


async def _expire_points(
    pool: asyncpg.Pool,
    merchant_id: int,
    rules: loyalty.Rules,
    now: dt.datetime,
    summary: Summary,
    progress: Progress | None,
) -> None:
    assert rules.points_expire_days is not None
    cutoff = now - dt.timedelta(days=rules.points_expire_days)
    after = 0
    while True:
        async with db.acquire(pool) as conn:
            page = await upkeep_store.shoppers_with_expiring_points(
                conn, merchant_id, cutoff, after, PAGE
            )
        for shopper_id in page:
            async with db.acquire(pool) as conn, conn.transaction():
                points = await upkeep_store.expire_points(
                    conn,
                    merchant_id=merchant_id,
                    shopper_id=shopper_id,
                    cutoff=cutoff,
                    at=now,
                    rules_=rules,
                )
            if points:
                summary.shoppers_expired += 1
                summary.points_expired += points
                if progress is not None:
                    progress("shoppers with points expired", summary.shoppers_expired)
        if len(page) < PAGE:
            return
        after = page[-1]


async def _recompute_tiers(
    pool: asyncpg.Pool,
    merchant_id: int,
    rules: loyalty.Rules,
    now: dt.datetime,
    summary: Summary,
    progress: Progress | None,
) -> None:
    since = now - dt.timedelta(days=rules.tier_window_days)
    after = 0
    while True:
        async with db.acquire(pool) as conn:
            page = await upkeep_store.tier_page(conn, merchant_id, since, after, PAGE)
        for shopper_id, tier, earned in page:
            if loyalty.tier_for(earned, rules.tiers) == tier:
                continue
            async with db.acquire(pool) as conn, conn.transaction():
                changed = await upkeep_store.recompute_tier(
                    conn, merchant_id=merchant_id, shopper_id=shopper_id, rules_=rules, at=now
                )
            if changed:
                summary.tiers_changed += 1
                if progress is not None:
                    progress("tiers changed", summary.tiers_changed)
        if len(page) < PAGE:
            return
        after = page[-1][0]


async def run_forever(
    pool: asyncpg.Pool, *, clock_: clock.Clock, every_seconds: float = 3600
) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        try:
            summary = await run(pool, now=clock_.now())
            if summary is not None and any(asdict(summary).values()):
                log.info("wallet upkeep", extra=asdict(summary))
        except Exception:
            log.warning("wallet upkeep failed; will retry", exc_info=True)
