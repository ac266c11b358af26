"""SQL access for where shoppers keep their passes: Google Wallet callbacks (kept once per
nonce), Apple Wallet device registrations, and whether each pass is in a wallet now, which
feeds the funnel's "saved to wallet" stage. Functions run inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import asyncpg

from geo import sql
from wallet.google import callback
from wallet.store import google as google_store

_Q = sql.load("wallet", "saves.sql")

Wallet = Literal["apple", "google"]
Outcome = Literal["recorded", "replayed"]


async def _set_in_wallet(
    conn: asyncpg.Connection,
    *,
    wallet: Wallet,
    object_id: str,
    merchant_id: int,
    coupon_id: int | None,
    in_wallet: bool,
    at: dt.datetime,
) -> None:
    await conn.fetch(_Q["set_in_wallet"], wallet, object_id, merchant_id, coupon_id, in_wallet, at)


async def record_google_event(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    event: callback.CallbackEvent,
    at: dt.datetime,
) -> Outcome:
    """Keep a verified callback once per nonce and apply it to the object it names; a nonce
    seen before changes nothing. The object is looked up among those the merchant issued
    (`google_wallet_objects`): an id it did not issue is kept in the log only.

    A delete takes the pass out of the wallet and stops its updates; a save after that
    puts it back and queues an update, so the pass catches up with what it missed."""
    row = await conn.fetchrow(
        _Q["record_google_event"],
        merchant_id,
        event.nonce,
        event.event_type,
        event.class_id,
        event.object_id,
        event.expires_at,
        at,
    )
    if row is None:
        return "replayed"
    found = await google_store.callback_object(conn, merchant_id, event.object_id)
    if found is None:
        return "recorded"
    saved = event.event_type == "save"
    await _set_in_wallet(
        conn,
        wallet="google",
        object_id=event.object_id,
        merchant_id=merchant_id,
        coupon_id=found.coupon_id,
        in_wallet=saved,
        at=at,
    )
    if saved and found.deleted:
        await google_store.set_deleted(conn, found.id, None)
        await google_store.queue_update(conn, merchant_id, found.shopper_id, "wallet_saved")
    elif not saved and not found.deleted:
        await google_store.set_deleted(conn, found.id, at)
    return "recorded"


async def apple_registrations_changed(
    conn: asyncpg.Connection, pass_id: int, at: dt.datetime
) -> None:
    """After a device registered for the pass or left it: the pass is in Apple Wallet while
    any device is registered for it. Call it in the transaction of that change."""
    found = await conn.fetchrow(_Q["lock_pass"], pass_id)
    if found is None:
        return
    held = bool(await conn.fetchval(_Q["pass_registered"], pass_id))
    await _set_in_wallet(
        conn,
        wallet="apple",
        object_id=found["serial"],
        merchant_id=found["merchant_id"],
        coupon_id=found["coupon_id"],
        in_wallet=held,
        at=at,
    )


async def out_of_wallet(
    conn: asyncpg.Connection, wallet: Wallet, object_ids: Sequence[str]
) -> set[str]:
    """Which of these passes the shopper has taken out of the wallet and not put back.
    (What stops updates to a deleted Google object is its `deleted_at`, set beside this.)"""
    rows = await conn.fetch(_Q["out_of_wallet"], wallet, list(object_ids))
    return {r["object_id"] for r in rows}
