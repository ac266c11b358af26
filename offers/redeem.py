"""Redeeming coupons at the till, exactly once, and voiding a redemption in a short window.

Both run in SQL: the plpgsql functions redeem_coupon and void_redemption
(offers/functions.sql) check, write and answer an outcome, which this module turns into
the redemption or an OffersError. redeem_coupon locks the coupon row, so of N concurrent
attempts one wins and the rest see it redeemed; a partial unique index backs that up. An
idempotent retry (same key, same request) answers the first result.
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
    "already_redeemed": errors.AlreadyRedeemed,
    "budget_exhausted": errors.RedemptionBudgetExhausted,
    "idempotency_key_reused": errors.IdempotencyKeyReused,
}


async def redeem(conn: asyncpg.Connection, req: RedeemRequest, now: dt.datetime) -> Redeemed:
    """Redeem through the SQL function redeem_coupon; raises an OffersError.

    The function call is one statement (its own transaction unless the caller opened
    one); a redemption it made or replayed is then read back in a second round trip. A
    code whose check symbol fails raises CodeMistyped without touching the database (the
    caller has already counted the attempt against its rate limit); one that cannot be a
    code at all raises UnknownCode.
    """
    canonical = codes.normalize(req.code)
    if canonical is None:
        raise errors.CodeMistyped() if codes.is_mistyped(req.code) else errors.UnknownCode()
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
    if outcome == "coupon_expired":
        expires_at = await store.coupon_expires_at(conn, req.merchant_id, canonical)
        if expires_at is None:  # erased since that answer, with its shopper
            raise errors.UnknownCode()
        raise errors.CouponExpired(expires_at, now)
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
    """Void ``redemption`` through the SQL function void_redemption (one round trip).

    The coupon becomes redeemable again until it expires and a redemption budget gets its
    unit back; a conversion the redemption attributed stays. The function locks the
    redemption row, so concurrent voids queue and the later ones raise AlreadyVoided.
    Raises AlreadyVoided, or VoidWindowClosed when ``window_minutes`` have passed since
    the redemption.
    """
    outcome, voided = await store.void_redemption(
        conn,
        merchant_id=merchant_id,
        redemption_id=redemption.id,
        key_id=key_id,
        reason=reason,
        window_minutes=window_minutes,
        at=now,
    )
    if outcome == "already_voided":
        raise errors.AlreadyVoided()
    if outcome == "void_window_closed":
        raise errors.VoidWindowClosed(window_minutes)
    # The caller read this redemption in its transaction: it cannot have vanished.
    assert outcome == "voided" and voided is not None, outcome
    return voided
