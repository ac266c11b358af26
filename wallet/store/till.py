"""SQL access for the till: members found by their card's barcode, payments with points
(idempotent, never overdrawn) and their voids, and the program's points by month.

Functions take a connection inside the caller's transaction. A payment locks the
shopper's row first, like every change to points, so two tills spending the same
points queue and the second sees what the first left.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

import asyncpg

from geo import sql
from wallet import errors, loyalty
from wallet.store import ledger

_Q = sql.load("wallet", "till.sql")


async def member_shopper(conn: asyncpg.Connection, merchant_id: int, member: str) -> int:
    """The shopper whose card carries ``member`` (Apple serial or Google member code)."""
    found = await conn.fetchval(_Q["member_shopper"], merchant_id, member)
    if found is None:
        raise errors.UnknownMember()
    return int(found)


@dataclass(frozen=True, slots=True, kw_only=True)
class Payment:
    id: int
    shopper_id: int
    store_id: int
    points: int
    requested: Decimal
    amount: Decimal
    order_ref: str | None
    request_hash: bytes
    created_at: dt.datetime
    voided_at: dt.datetime | None
    voided_by: int | None
    void_reason: str | None
    balance: int | None = None
    created: bool = True

    @classmethod
    def from_row(cls, r: Any, **extra: Any) -> Payment:
        fields = [k for k in cls.__slots__ if k not in ("balance", "created", "request_hash")]
        return cls(**{k: r[k] for k in fields}, request_hash=bytes(r["request_hash"]), **extra)


def points_for(amount: Decimal, rules: loyalty.Rules) -> int:
    """Whole points that cover ``amount`` at the program's point value (rounded up)."""
    return int((amount / rules.point_value).to_integral_value(rounding=ROUND_CEILING))


def covered(points: int, amount: Decimal, rules: loyalty.Rules) -> Decimal:
    """What ``points`` pay of ``amount``: their value, never more than the amount."""
    return min(amount, loyalty.points_value(points, rules))


@dataclass(frozen=True, slots=True, kw_only=True)
class PayRequest:
    merchant_id: int
    shopper_id: int
    store_id: int
    amount: Decimal
    partial: bool
    order_ref: str | None
    key_id: int
    idempotency_key: str
    request_hash: bytes
    at: dt.datetime


async def pay_with_points(conn: asyncpg.Connection, req: PayRequest) -> Payment:
    """Spend points for ``amount``, once per idempotency key.

    Spends what covers the amount, or with ``partial`` as much of it as the balance
    does; raises InsufficientPoints when the balance covers nothing (or not all of it
    without ``partial``). A retry with the key answers the first payment (``created``
    False); the key with another request raises IdempotencyKeyReused.
    """
    locked = await ledger.lock_shopper(conn, req.merchant_id, req.shopper_id)
    earlier = await conn.fetchrow(_Q["payment_by_key"], req.merchant_id, req.idempotency_key)
    if earlier is not None:
        if bytes(earlier["request_hash"]) != req.request_hash:
            raise errors.IdempotencyKeyReused()
        return Payment.from_row(earlier, balance=int(locked["points"]), created=False)
    rules = await ledger.rules(conn, req.merchant_id)
    balance = int(locked["points"])
    needed = points_for(req.amount, rules)
    points = min(needed, balance) if req.partial else needed
    if points <= 0 or points > balance:
        raise errors.InsufficientPoints(balance)
    row = await conn.fetchrow(
        _Q["insert_payment"],
        req.merchant_id,
        req.shopper_id,
        req.store_id,
        points,
        req.amount,
        covered(points, req.amount, rules),
        req.order_ref,
        req.key_id,
        req.idempotency_key,
        req.request_hash,
        req.at,
    )
    assert row is not None
    done = await ledger.apply_entry(
        conn,
        merchant_id=req.merchant_id,
        shopper_id=req.shopper_id,
        current_tier=locked["tier"],
        kind="spend",
        points=-points,
        reason=f"till_payment:{row['id']}",
        at=req.at,
        rules_=rules,
        key_id=req.key_id,
    )
    return Payment.from_row(row, balance=done.points)


async def get_payment(
    conn: asyncpg.Connection, merchant_id: int, payment_id: int
) -> Payment | None:
    row = await conn.fetchrow(_Q["get_payment"], merchant_id, payment_id)
    return None if row is None else Payment.from_row(row)


async def void_payment(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    payment: Payment,
    key_id: int,
    reason: str | None,
    at: dt.datetime,
    window_minutes: int,
) -> Payment:
    """Give the payment's points back (an ``adjust`` entry) within the void window.

    Locks the shopper, then the payment: concurrent voids queue, and the later ones raise
    AlreadyVoided. Raises VoidWindowClosed after ``window_minutes``.
    """
    locked = await ledger.lock_shopper(conn, merchant_id, payment.shopper_id)
    row = await conn.fetchrow(_Q["lock_payment"], merchant_id, payment.id)
    assert row is not None  # payments are never deleted but with their shopper, locked above
    if row["voided_at"] is not None:
        raise errors.AlreadyVoided()
    if at - row["created_at"] > dt.timedelta(minutes=window_minutes):
        raise errors.VoidWindowClosed(window_minutes)
    voided = await conn.fetchrow(_Q["void_payment"], payment.id, at, key_id, reason)
    done = await ledger.apply_entry(
        conn,
        merchant_id=merchant_id,
        shopper_id=payment.shopper_id,
        current_tier=locked["tier"],
        kind="adjust",
        points=int(row["points"]),
        reason=f"till_payment_void:{payment.id}",
        at=at,
        rules_=await ledger.rules(conn, merchant_id),
        key_id=key_id,
    )
    return Payment.from_row(voided, balance=done.points)


@dataclass(frozen=True, slots=True, kw_only=True)
class Month:
    month: dt.date
    issued: int
    spent: int
    expired: int
    outstanding: int


async def points_by_month(conn: asyncpg.Connection, merchant_id: int) -> list[Month]:
    """Every month with ledger entries, with the balance outstanding at its end."""
    return [
        Month(**{k: r[k] for k in Month.__slots__})
        for r in await conn.fetch(_Q["points_by_month"], merchant_id)
    ]


def points_by_month_query(merchant_id: int) -> tuple[str, list[Any]]:
    """The report's query and arguments, for streaming it as CSV."""
    return _Q["points_by_month"], [merchant_id]
