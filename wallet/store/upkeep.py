"""SQL access for wallet upkeep: points expiry, tier recomputation and expired coupon
passes. Functions run inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from geo import sql
from wallet import loyalty
from wallet.store import google, ledger, passes

_Q = sql.load("wallet")


async def merchant_ids(conn: asyncpg.Connection) -> list[int]:
    return [r["id"] for r in await conn.fetch(_Q["merchant_ids"])]


async def shoppers_with_expiring_points(
    conn: asyncpg.Connection, merchant_id: int, cutoff: dt.datetime, after: int, limit: int
) -> list[int]:
    rows = await conn.fetch(_Q["expiring_points_page"], merchant_id, cutoff, after, limit)
    return [r["shopper_id"] for r in rows]


async def expire_points(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    cutoff: dt.datetime,
    at: dt.datetime,
    rules_: loyalty.Rules,
) -> int:
    """Expire the shopper's unused points credited up to ``cutoff``; returns how many."""
    locked = await ledger.lock_shopper(conn, merchant_id, shopper_id)
    sums = await conn.fetchrow(_Q["expiry_sums"], shopper_id, cutoff)
    assert sums is not None
    points = loyalty.expiring_points(int(sums["credits"]), int(sums["debits"]), locked["points"])
    if points > 0:
        await ledger.apply_entry(
            conn,
            merchant_id=merchant_id,
            shopper_id=shopper_id,
            current_tier=locked["tier"],
            kind="expire",
            points=-points,
            reason="expiry",
            at=at,
            rules_=rules_,
        )
    return points


async def tier_page(
    conn: asyncpg.Connection, merchant_id: int, since: dt.datetime, after: int, limit: int
) -> list[tuple[int, str | None, int]]:
    """(shopper id, tier held, points earned since ``since``) for shoppers with a tier."""
    rows = await conn.fetch(_Q["tier_page"], merchant_id, since, after, limit)
    return [(r["id"], r["tier"], int(r["earned"])) for r in rows]


async def recompute_tier(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    rules_: loyalty.Rules,
    at: dt.datetime,
) -> bool:
    """Set the tier the window's earnings give now; True if it changed."""
    locked = await ledger.lock_shopper(conn, merchant_id, shopper_id)
    tier = await ledger.settle_tier(conn, merchant_id, shopper_id, locked["tier"], rules_, at)
    if tier == locked["tier"]:
        return False
    await passes.queue_pass_update(conn, merchant_id, shopper_id, "tier_changed")
    return True


async def expire_coupon_passes(conn: asyncpg.Connection, at: dt.datetime) -> int:
    """Mark coupon passes whose coupon expired unredeemed; queue their pass updates, and
    the Google updates of shoppers whose Google coupons expired (those without an Apple
    coupon pass too). The count is of both."""
    apple = int(await conn.fetchval(_Q["expire_coupon_passes"], at))
    return apple + await google.expire_offers(conn, at)
