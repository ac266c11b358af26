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
from wallet.google import callback, ids

_Q = sql.load("wallet", "saves.sql")

Wallet = Literal["apple", "google"]
Outcome = Literal["recorded", "replayed"]


async def google_issuer_id(conn: asyncpg.Connection, merchant_id: int) -> str | None:
    """The merchant's Google Wallet issuer id, the recipient of its callbacks; None if it has
    none. The one place that reads it."""
    value = await conn.fetchval(_Q["google_issuer_id"], merchant_id)
    return None if value is None else str(value)


async def put_google_issuer(conn: asyncpg.Connection, merchant_id: int, issuer_id: str) -> None:
    await conn.execute(_Q["put_google_issuer"], merchant_id, issuer_id)


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
    issuer_id: str,
    event: callback.CallbackEvent,
    at: dt.datetime,
) -> Outcome:
    """Keep a verified callback once per nonce and apply it to the object's place; a nonce
    seen before changes nothing. Objects not named as ours (`wallet.google.ids`) or not of
    this merchant are kept in the log only."""
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
    ref = ids.parse(issuer_id, event.object_id)
    if ref is None:
        return "recorded"
    query = "merchant_coupon" if ref.kind == "coupon" else "merchant_shopper"
    if await conn.fetchval(_Q[query], merchant_id, ref.id) is None:
        return "recorded"
    await _set_in_wallet(
        conn,
        wallet="google",
        object_id=event.object_id,
        merchant_id=merchant_id,
        coupon_id=ref.id if ref.kind == "coupon" else None,
        in_wallet=event.event_type == "save",
        at=at,
    )
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
    """Which of these passes the shopper has taken out of the wallet: updates to them are
    not sent (a deleted Google Wallet card stops receiving updates)."""
    rows = await conn.fetch(_Q["out_of_wallet"], wallet, list(object_ids))
    return {r["object_id"] for r in rows}
