"""Redeeming coupons at the till, exactly once, and voiding a redemption in a short window.

The coupon row is locked for the whole transaction, so of N concurrent attempts
one wins and the rest see it redeemed; a partial unique index backs that up.
An idempotent retry (same key, same request) answers the first result again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from offers import codes, errors, store


@dataclass(frozen=True, slots=True, kw_only=True)
class RedeemRequest:
    merchant_id: int
    code: str
    store_id: int
    order_ref: str | None
    amount: Decimal | None
    key_id: int
    idempotency_key: str
    # The caller's fingerprint of the request: a retry with the key carries the same one,
    # and the database refuses the key with another (idempotency_key_reused).
    request_hash: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Redeemed:
    redemption: store.Redemption
    # False when this answers an earlier request with the same idempotency key.
    created: bool


_FAILURES: dict[str, Callable[[], errors.OffersError]] = {
    "unknown_code": errors.UnknownCode,
    "wrong_store": errors.WrongStore,
    "coupon_expired": errors.CouponExpired,
    "already_redeemed": errors.AlreadyRedeemed,
    "budget_exhausted": errors.RedemptionBudgetExhausted,
    "idempotency_key_reused": errors.IdempotencyKeyReused,
}


async def redeem(conn: asyncpg.Connection, req: RedeemRequest, now: dt.datetime) -> Redeemed:
    """Redeem (one database round trip, its own transaction); raises an OffersError."""
    canonical = codes.normalize(req.code)
    if canonical is None:
        # A typo caught by the check symbol reads as unknown, without a lookup.
        raise errors.UnknownCode()
    outcome, redemption = await store.redeem_coupon(
        conn,
        merchant_id=req.merchant_id,
        code=canonical,
        store_id=req.store_id,
        order_ref=req.order_ref,
        amount=req.amount,
        key_id=req.key_id,
        idempotency_key=req.idempotency_key,
        request_hash=req.request_hash,
        at=now,
    )
    if redemption is None:
        raise _FAILURES[outcome]()
    return Redeemed(redemption=redemption, created=outcome == "redeemed")


async def void(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    redemption: store.Redemption,
    key_id: int,
    reason: str | None,
    now: dt.datetime,
    window_minutes: int,
) -> store.Redemption:
    """Roll a redemption back (the coupon becomes redeemable again until it expires).

    The caller has locked the redemption row (store.lock_redemption). A conversion
    that the redemption attributed stays: the shopper did come to the till.
    """
    if redemption.voided_at is not None:
        raise errors.AlreadyVoided()
    if now - redemption.redeemed_at > dt.timedelta(minutes=window_minutes):
        raise errors.VoidWindowClosed(window_minutes)
    return await store.void_redemption(
        conn, merchant_id=merchant_id, redemption=redemption, at=now, key_id=key_id, reason=reason
    )
