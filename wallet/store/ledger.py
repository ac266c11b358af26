"""SQL access for loyalty accounts: program rules, the points ledger, tiers and purchases.

Functions take a connection inside the caller's transaction; every change to a
shopper's points locks the shopper's row first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from geo import sql
from wallet import errors, loyalty
from wallet.store import passes

_Q = sql.load("wallet")


@dataclass(frozen=True, slots=True, kw_only=True)
class Balance:
    points: int
    tier: str | None
    tier_changed: bool = False


async def rules(conn: asyncpg.Connection, merchant_id: int) -> loyalty.Rules:
    row = await conn.fetchrow(_Q["rules"], merchant_id)
    return loyalty.Rules() if row is None else loyalty.Rules.from_row(dict(row))


async def set_rules(
    conn: asyncpg.Connection, merchant_id: int, values: dict[str, Any]
) -> loyalty.Rules:
    row = await conn.fetchrow(
        _Q["set_rules"],
        merchant_id,
        values["point_value"],
        values["earn_rate"],
        values["tiers"],
        values["tier_window_days"],
        values["actions"],
        values.get("points_expire_days"),
    )
    assert row is not None
    return loyalty.Rules.from_row(dict(row))


async def shopper_balance(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int
) -> Balance | None:
    """A shopper's points and tier, or None when the program has no such shopper."""
    row = await conn.fetchrow(_Q["shopper_balance"], shopper_id, merchant_id)
    return None if row is None else Balance(points=int(row["points"]), tier=row["tier"])


async def lock_shopper(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int
) -> asyncpg.Record:
    row = await conn.fetchrow(_Q["lock_shopper"], shopper_id, merchant_id)
    if row is None:
        raise errors.UnknownShopper()
    return row


async def apply_entry(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    current_tier: str | None,
    kind: str,
    points: int,
    reason: str,
    at: dt.datetime,
    rules_: loyalty.Rules,
    purchase_id: int | None = None,
    key_id: int | None = None,
) -> Balance:
    row = await conn.fetchrow(
        _Q["add_entry"], merchant_id, shopper_id, kind, points, reason, purchase_id, key_id, at
    )
    assert row is not None
    tier = await settle_tier(conn, merchant_id, shopper_id, current_tier, rules_, at)
    changed = tier != current_tier
    # The loyalty pass shows points and tier: its devices fetch it again.
    await passes.queue_pass_update(
        conn, merchant_id, shopper_id, "tier_changed" if changed else f"points_{kind}"
    )
    return Balance(points=int(row["points"]), tier=tier, tier_changed=changed)


async def settle_tier(
    conn: asyncpg.Connection,
    merchant_id: int,
    shopper_id: int,
    current_tier: str | None,
    rules_: loyalty.Rules,
    at: dt.datetime,
) -> str | None:
    """Set (and log) the tier the window's earnings give at ``at``; the tier."""
    since = at - dt.timedelta(days=rules_.tier_window_days)
    earned = int(await conn.fetchval(_Q["earned_since"], shopper_id, since))
    tier = loyalty.tier_for(earned, rules_.tiers)
    if tier != current_tier:
        await conn.execute(_Q["set_tier"], merchant_id, shopper_id, current_tier, tier, at)
    return tier


async def change_points(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    kind: str,
    points: int,
    reason: str,
    at: dt.datetime,
    key_id: int | None = None,
) -> Balance:
    """An adjust, a spend (points < 0, never below zero) or an expiry."""
    locked = await lock_shopper(conn, merchant_id, shopper_id)
    if points < 0 and kind in ("spend", "expire") and locked["points"] + points < 0:
        raise errors.InsufficientPoints(int(locked["points"]))
    return await apply_entry(
        conn,
        merchant_id=merchant_id,
        shopper_id=shopper_id,
        current_tier=locked["tier"],
        kind=kind,
        points=points,
        reason=reason,
        at=at,
        rules_=await rules(conn, merchant_id),
        key_id=key_id,
    )


async def award_action(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    action: str,
    at: dt.datetime,
    key_id: int | None = None,
) -> Balance:
    locked = await lock_shopper(conn, merchant_id, shopper_id)
    rules_ = await rules(conn, merchant_id)
    rule = (rules_.actions or {}).get(action)
    if rule is None or rule.points <= 0:
        raise errors.ActionLimitReached(action, 0, 0)
    reason = f"action:{action}"
    since = at - dt.timedelta(days=rule.days)
    earlier = [
        r["created_at"] for r in await conn.fetch(_Q["action_times"], shopper_id, reason, since)
    ]
    if not loyalty.action_allowed(rule, earlier, at):
        raise errors.ActionLimitReached(action, rule.limit, rule.days)
    return await apply_entry(
        conn,
        merchant_id=merchant_id,
        shopper_id=shopper_id,
        current_tier=locked["tier"],
        kind="earn",
        points=rule.points,
        reason=reason,
        at=at,
        rules_=rules_,
        key_id=key_id,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Purchase:
    id: int
    shopper_id: int
    store_id: int
    amount: Decimal
    order_ref: str | None
    points: int
    created_at: dt.datetime
    balance: int | None = None
    tier: str | None = None
    created: bool = True


_PURCHASE_FIELDS = ("id", "shopper_id", "store_id", "amount", "order_ref", "points", "created_at")


async def record_purchase(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    store_id: int,
    amount: Decimal,
    order_ref: str | None,
    key_id: int,
    idempotency_key: str,
    request_hash: bytes,
    at: dt.datetime,
) -> Purchase:
    """Earn points for a purchase, once per idempotency key.

    ``request_hash`` is the caller's fingerprint of the request: the key reused with
    another one raises IdempotencyKeyReused; with the same one, the first purchase
    answers again (``created`` False).
    """
    locked = await lock_shopper(conn, merchant_id, shopper_id)
    # After the lock: a concurrent first attempt with this key (same shopper) has committed.
    earlier = await conn.fetchrow(_Q["purchase_by_key"], merchant_id, idempotency_key)
    if earlier is not None:
        if bytes(earlier["request_hash"]) != request_hash:
            raise errors.IdempotencyKeyReused()
        return Purchase(
            **{k: earlier[k] for k in _PURCHASE_FIELDS},
            balance=int(locked["points"]),
            tier=locked["tier"],
            created=False,
        )
    rules_ = await rules(conn, merchant_id)
    points = loyalty.purchase_points(amount, rules_)
    row = await conn.fetchrow(
        _Q["insert_purchase"],
        merchant_id,
        shopper_id,
        store_id,
        amount,
        order_ref,
        points,
        key_id,
        idempotency_key,
        request_hash,
        at,
    )
    assert row is not None
    balance = Balance(points=int(locked["points"]), tier=locked["tier"])
    if points > 0:
        balance = await apply_entry(
            conn,
            merchant_id=merchant_id,
            shopper_id=shopper_id,
            current_tier=locked["tier"],
            kind="earn",
            points=points,
            reason="purchase",
            at=at,
            rules_=rules_,
            purchase_id=row["id"],
            key_id=key_id,
        )
    return Purchase(
        **{k: row[k] for k in _PURCHASE_FIELDS}, balance=balance.points, tier=balance.tier
    )


async def ledger(
    conn: asyncpg.Connection, merchant_id: int, shopper_id: int, *, before: int, limit: int
) -> list[asyncpg.Record]:
    return list(await conn.fetch(_Q["ledger"], shopper_id, merchant_id, before, limit))


async def ledger_sum(conn: asyncpg.Connection, shopper_id: int) -> int:
    return int(await conn.fetchval(_Q["ledger_sum"], shopper_id))
