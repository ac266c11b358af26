"""Redeeming coupons at the till, exactly once, and voiding a redemption in a short window.

The coupon row is locked for the whole transaction, so of N concurrent attempts
one wins and the rest see it redeemed; a partial unique index backs that up.
An idempotent retry (same key, same request) answers the first result again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Redeemed:
    redemption: store.Redemption
    # False when this answers an earlier request with the same idempotency key.
    created: bool


def request_hash(req: RedeemRequest, canonical_code: str) -> bytes:
    """What makes two requests the same request, for idempotency."""
    amount = "" if req.amount is None else format(req.amount.normalize(), "f")
    text = f"{canonical_code}\x1f{req.store_id}\x1f{req.order_ref or ''}\x1f{amount}"
    return hashlib.sha256(text.encode()).digest()


async def redeem(conn: asyncpg.Connection, req: RedeemRequest, now: dt.datetime) -> Redeemed:
    """Redeem inside the caller's transaction; raises an OffersError when it cannot."""
    canonical = codes.normalize(req.code)
    if canonical is None:
        # A typo caught by the check symbol reads as unknown, without a lookup.
        raise errors.UnknownCode()
    fingerprint = request_hash(req, canonical)
    coupon = await store.lock_coupon(conn, req.merchant_id, canonical)
    # After the lock: a concurrent first attempt with this key has committed by now.
    earlier = await store.redemption_by_key(conn, req.merchant_id, req.idempotency_key)
    if earlier is not None:
        if earlier.request_hash != fingerprint:
            raise errors.IdempotencyKeyReused()
        return Redeemed(redemption=earlier, created=False)
    if coupon is None:
        raise errors.UnknownCode()
    if req.store_id not in coupon.store_ids:
        raise errors.WrongStore()
    if now >= coupon.expires_at:
        raise errors.CouponExpired()
    if await store.has_live_redemption(conn, coupon.id):
        raise errors.AlreadyRedeemed()
    if coupon.budget_redeemed is not None and not await store.reserve_redeem(conn, coupon.offer_id):
        raise errors.RedemptionBudgetExhausted()
    redemption = await store.insert_redemption(
        conn,
        merchant_id=req.merchant_id,
        coupon=coupon,
        store_id=req.store_id,
        order_ref=req.order_ref,
        amount=req.amount,
        key_id=req.key_id,
        idempotency_key=req.idempotency_key,
        request_hash=fingerprint,
        at=now,
    )
    await store.record_conversion(
        conn,
        merchant_id=req.merchant_id,
        shopper_id=coupon.shopper_id,
        store_id=req.store_id,
        source="redemption",
        amount=req.amount,
        at=now,
    )
    return Redeemed(redemption=redemption, created=True)


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
