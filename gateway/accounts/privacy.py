"""Shopper privacy: export everything held about a shopper, and erase them.

Erasure deletes the location history (raw pings, geofence events, the visit state and
last position), push subscriptions, wallet passes and their device registrations, and
deliveries not yet sent; it clears name, e-mail, time zone, tags and consent, and revokes
the shopper's keys, all in one transaction. The shopper's id stays, without anything
that identifies a person, on purchases, the points ledger, offer decisions, coupons and
redemptions: the merchant's accounting and the campaign reports (which read per-day
rollups that hold no shopper at all) do not change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import orjson

from geo import sql
from geo import store as geo_store

_Q = sql.load("gateway.accounts", "privacy.sql")


async def export(conn: asyncpg.Connection, shopper_id: int, merchant_id: int) -> Any | None:
    """The shopper's data as one JSON-ready document; None if there is no such shopper."""
    text = await conn.fetchval(_Q["export"], shopper_id, merchant_id)
    return None if text is None else orjson.loads(text)


async def erase(
    conn: asyncpg.Connection, shopper_id: int, merchant_id: int, at: dt.datetime
) -> dict[str, int] | None:
    """Erase the shopper (see the module docstring); what was removed, or None if unknown."""
    async with conn.transaction():
        # Ping log batches in flight finish first (their rows are deleted below); later
        # ones see the erasure and keep nothing of this shopper. Taken before the
        # shopper's row lock, which a batch's foreign-key checks may wait for.
        await geo_store.lock_out_ping_log(conn)
        if await conn.fetchval(_Q["lock_for_erasure"], shopper_id, merchant_id) is None:
            return None
        row = await conn.fetchrow(_Q["erase"], shopper_id, at)
    assert row is not None
    return {k: int(v) for k, v in dict(row).items()}
