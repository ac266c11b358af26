"""Redemptions at the till, exactly once per Idempotency-Key, and voids in a short window."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors, idempotency, referral_rewards
from gateway.http.api import Endpoint, Reply
from gateway.http.ratelimit import REDEEM_LIMITER
from gateway.settings import SETTINGS
from offers import codes, redeem
from offers import store as offers_store


class RedemptionIn(api.Model):
    code: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=64)]
    store_id: api.Id
    order_ref: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)] | None = (
        None
    )
    amount: Annotated[float, pydantic.Field(ge=0, le=10**9, allow_inf_nan=False)] | None = None


class VoidIn(api.Model):
    reason: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=500)] | None = None


class RedemptionOut(api.Out):
    id: str
    coupon_id: str
    offer_id: str
    store_id: str
    code: str
    order_ref: str | None
    amount: str | None
    redeemed_at: dt.datetime
    voided_at: dt.datetime | None
    voided_by: str | None
    void_reason: str | None

    @classmethod
    def of(cls, r: offers_store.Redemption) -> RedemptionOut:
        return cls.model_construct(
            id=str(r.id),
            coupon_id=str(r.coupon_id),
            offer_id=str(r.offer_id),
            store_id=str(r.store_id),
            code=codes.display(r.code),
            order_ref=r.order_ref,
            amount=None if r.amount is None else format(r.amount, "f"),
            redeemed_at=r.redeemed_at,
            voided_at=r.voided_at,
            voided_by=api.ident(r.voided_by),
            void_reason=r.void_reason,
        )


def _take_attempt(request: web.Request, key_id: int) -> None:
    # The limiter counts failures too: guessing codes costs the guesser's budget.
    limiter = request.app[REDEEM_LIMITER]
    wait = limiter.take(key_id)
    if wait:
        raise errors.RateLimited(
            f"too many redemption attempts from this key (limit {limiter.rate:g}/s)",
            headers={"Retry-After": limiter.retry_after(wait)},
        )


async def create_redemption(request: web.Request) -> web.Response:
    p = api.principal(request)
    key = idempotency.key(request)
    req = await api.body(request, RedemptionIn)
    api.require_store(p, req.store_id)
    _take_attempt(request, p.key_id)
    amount = None if req.amount is None else Decimal(str(req.amount)).quantize(Decimal("0.01"))
    canonical = codes.normalize(req.code) or ""
    attempt = redeem.RedeemRequest(
        merchant_id=p.merchant_id,
        code=req.code,
        store_id=req.store_id,
        order_ref=req.order_ref,
        amount=amount,
        key_id=p.key_id,
        idempotency_key=key,
        request_hash=idempotency.request_hash(canonical, req.store_id, req.order_ref, amount),
    )
    now = request.app[CLOCK].now()
    # One transaction: a first redemption that qualifies a referral pays it with it.
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        done = await redeem.redeem(conn, attempt, now)
        if done.created:
            await referral_rewards.after_event(
                conn,
                merchant_id=p.merchant_id,
                shopper_id=done.redemption.shopper_id,
                event="redemption",
                balance=None,
                at=now,
                key_id=p.key_id,
            )
    return idempotency.answer(RedemptionOut.of(done.redemption), created=done.created)


async def void_redemption(request: web.Request) -> web.Response:
    p = api.principal(request)
    raw = await api.read_limited(request, request.app[SETTINGS].max_body_bytes)
    reason = None
    if raw.strip():
        if request.content_type != "application/json":
            raise errors.UnsupportedMediaType("send the body as application/json")
        reason = api.parse(raw, VoidIn).reason
    settings = request.app[SETTINGS]
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        current = await offers_store.lock_redemption(
            conn, p.merchant_id, api.path_id(request, "redemption_id")
        )
        if current is None:
            raise errors.NotFound("no such redemption")
        if not p.can_reach_store(current.store_id):
            raise errors.Forbidden(
                "this token is not scoped to that redemption's store", code="out_of_scope"
            )
        voided = await redeem.void(
            conn,
            merchant_id=p.merchant_id,
            redemption=current,
            key_id=p.key_id,
            reason=reason,
            now=request.app[CLOCK].now(),
            window_minutes=settings.void_window_minutes,
        )
    return api.json(RedemptionOut.of(voided))


ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/v1/redemptions",
        handler=create_redemption,
        tag="redemptions",
        summary="Redeem a coupon at the till (single use)",
        description="Needs an Idempotency-Key header: a retry with the same key and request "
        "answers the first result again (with Idempotent-Replayed: true). 404 unknown_code "
        "(no such coupon, or not a code at all); 422 code_mistyped (the check symbol shows "
        "a mistyped or swapped symbol: check the code against the shopper's screen); 403 "
        "not valid at this store; 410 coupon_expired, with error.details.expired_at "
        "(RFC 3339); 409 already redeemed or redemption budget used up; 422 the key was "
        "used for another request. Every attempt, mistyped ones too, counts against the "
        "per-key rate limit (GATEWAY_REDEEM_RATE per second), so codes cannot be guessed "
        "by brute force.",
        roles=frozenset({Role.POS}),
        body=RedemptionIn,
        replies={201: Reply(description="The redemption", model=RedemptionOut)},
        errors=(404, 409, 410, 422, 429),
        parameters=(idempotency.PARAMETER,),
    ),
    Endpoint(
        method="POST",
        path="/v1/redemptions/{redemption_id}/void",
        handler=void_redemption,
        tag="redemptions",
        summary="Void a redemption within GATEWAY_VOID_WINDOW_MINUTES; records who did it",
        description='The body is optional: {"reason": "..."}. The coupon becomes '
        "redeemable again until it expires.",
        roles=frozenset({Role.POS, Role.MANAGER, Role.ADMIN}),
        body=VoidIn,
        replies={200: Reply(description="The voided redemption", model=RedemptionOut)},
        errors=(404, 409),
    ),
]
