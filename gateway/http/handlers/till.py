"""The till: the member barcode on the wallet pass identifies the shopper, and points pay
(part of) a bill in one idempotent call, voidable within the void window."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors, idempotency
from gateway.http.api import Endpoint, Reply
from gateway.settings import SETTINGS
from geo import store as geo_store
from wallet import loyalty
from wallet.store import ledger as wallet_ledger
from wallet.store import till

Member = Annotated[
    str,
    pydantic.StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$"),
    pydantic.Field(
        description="What the member barcode on the shopper's wallet pass says: the Apple "
        "pass's serial number or the Google card's member code (never the internal id)"
    ),
]
Amount = Annotated[float, pydantic.Field(gt=0, le=10**9, allow_inf_nan=False)]


async def member_shopper(conn: Any, merchant_id: int, member: str) -> int:
    """The shopper a scanned member barcode names; 404 unknown_member otherwise."""
    return await till.member_shopper(conn, merchant_id, member)


class MemberOut(api.Out):
    member: str
    balance: int
    value: str
    tier: str | None


async def find_member(request: web.Request) -> web.Response:
    p = api.principal(request)
    member = request.query.get("code", "")
    try:
        pydantic.TypeAdapter(Member).validate_python(member)
    except pydantic.ValidationError:
        raise errors.ValidationFailed(
            "bad query parameter", fields={"code": "a member barcode: letters, digits, hyphens"}
        ) from None
    async with db.acquire(request.app[POOL]) as conn:
        sid = await member_shopper(conn, p.merchant_id, member)
        balance = await wallet_ledger.shopper_balance(conn, p.merchant_id, sid)
        rules = await wallet_ledger.rules(conn, p.merchant_id)
    assert balance is not None
    return api.json(
        MemberOut.model_construct(
            member=member,
            balance=balance.points,
            value=format(loyalty.points_value(balance.points, rules), "f"),
            tier=balance.tier,
        )
    )


class PaymentIn(api.Model):
    member: Member
    store_id: api.Id
    amount: Amount
    partial: bool = pydantic.Field(
        default=True,
        description="true (the default): cover as much of the amount as the balance does; "
        "false: all of it or nothing (409 insufficient_points)",
    )
    order_ref: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)] | None = (
        None
    )


class VoidIn(api.Model):
    reason: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=500)] | None = None


class PaymentOut(api.Out):
    id: str
    store_id: str
    points: int
    requested: str
    covered: str
    due: str
    order_ref: str | None
    balance: int | None
    created_at: dt.datetime
    voided_at: dt.datetime | None
    voided_by: str | None
    void_reason: str | None

    @classmethod
    def of(cls, pay: till.Payment) -> PaymentOut:
        return cls.model_construct(
            id=str(pay.id),
            store_id=str(pay.store_id),
            points=pay.points,
            requested=format(pay.requested, "f"),
            covered=format(pay.amount, "f"),
            due=format(pay.requested - pay.amount, "f"),
            order_ref=pay.order_ref,
            balance=pay.balance,
            created_at=pay.created_at,
            voided_at=pay.voided_at,
            voided_by=api.ident(pay.voided_by),
            void_reason=pay.void_reason,
        )


async def pay_with_points(request: web.Request) -> web.Response:
    p = api.principal(request)
    key = idempotency.key(request)
    req = await api.body(request, PaymentIn)
    api.require_store(p, req.store_id)
    amount = Decimal(str(req.amount)).quantize(Decimal("0.01"))
    if amount <= 0:
        raise errors.ValidationFailed("bad field", fields={"amount": "at least 0.01"})
    async with db.acquire(request.app[POOL]) as conn:
        if not await geo_store.existing_stores(conn, p.merchant_id, [req.store_id]):
            raise errors.ValidationFailed("no such store", fields={"store_id": "no such store"})
        async with conn.transaction():
            sid = await member_shopper(conn, p.merchant_id, req.member)
            done = await till.pay_with_points(
                conn,
                till.PayRequest(
                    merchant_id=p.merchant_id,
                    shopper_id=sid,
                    store_id=req.store_id,
                    amount=amount,
                    partial=req.partial,
                    order_ref=req.order_ref,
                    key_id=p.key_id,
                    idempotency_key=key,
                    request_hash=idempotency.request_hash(
                        req.member, req.store_id, amount, req.partial, req.order_ref
                    ),
                    at=request.app[CLOCK].now(),
                ),
            )
    return idempotency.answer(PaymentOut.of(done), created=done.created)


async def void_payment(request: web.Request) -> web.Response:
    p = api.principal(request)
    raw = await api.read_limited(request, request.app[SETTINGS].max_body_bytes)
    reason = None
    if raw.strip():
        if request.content_type != "application/json":
            raise errors.UnsupportedMediaType("send the body as application/json")
        reason = api.parse(raw, VoidIn).reason
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        current = await till.get_payment(conn, p.merchant_id, api.path_id(request, "payment_id"))
        if current is None:
            raise errors.NotFound("no such payment")
        if not p.can_reach_store(current.store_id):
            raise errors.Forbidden(
                "this token is not scoped to that payment's store", code="out_of_scope"
            )
        voided = await till.void_payment(
            conn,
            merchant_id=p.merchant_id,
            payment=current,
            key_id=p.key_id,
            reason=reason,
            at=request.app[CLOCK].now(),
            window_minutes=request.app[SETTINGS].void_window_minutes,
        )
    return api.json(PaymentOut.of(voided))


ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/till/member",
        handler=find_member,
        tag="till",
        summary="The shopper behind a scanned member barcode: balance, its value and tier",
        roles=frozenset({Role.POS}),
        replies={200: Reply(description="The member's balance", model=MemberOut)},
        errors=(404, 422),
        parameters=(
            {
                "name": "code",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "maxLength": 64},
                "description": "The member barcode (Apple pass serial or Google member code)",
            },
        ),
    ),
    Endpoint(
        method="POST",
        path="/v1/till/payments",
        handler=pay_with_points,
        tag="till",
        summary="Pay with points at the till, once per Idempotency-Key",
        description="The member barcode names the shopper. Points = ceil(amount / "
        "point_value); with partial (the default) the balance pays what it can. The answer "
        "gives the points spent, the amount covered and the amount still due. The shopper's "
        "row lock serialises tills spending the same points: never below zero. 409 "
        "insufficient_points when the balance covers nothing (or, with partial false, not "
        "all of it); 404 unknown_member; a retry with the same key answers the first "
        "payment (Idempotent-Replayed: true), the key with another request is 422.",
        roles=frozenset({Role.POS}),
        body=PaymentIn,
        replies={201: Reply(description="The payment and the new balance", model=PaymentOut)},
        errors=(404, 409),
        parameters=(idempotency.PARAMETER,),
    ),
    Endpoint(
        method="POST",
        path="/v1/till/payments/{payment_id}/void",
        handler=void_payment,
        tag="till",
        summary="Void a points payment within GATEWAY_VOID_WINDOW_MINUTES: the points come back",
        description='The body is optional: {"reason": "..."}. 409 already_voided or '
        "void_window_closed.",
        roles=frozenset({Role.POS, Role.MANAGER, Role.ADMIN}),
        body=VoidIn,
        replies={200: Reply(description="The voided payment", model=PaymentOut)},
        errors=(404, 409),
    ),
]
