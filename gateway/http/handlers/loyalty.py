"""Loyalty accounts: the program's rules, purchases at the till, action awards, the points
ledger and adjustments."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors, idempotency, paging, referral_rewards
from gateway.http.api import Endpoint, Reply
from gateway.http.handlers import till
from geo import store as geo_store
from offers import store as offers_store
from wallet import loyalty
from wallet.store import ledger as wallet_ledger

STAFF = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})
WRITERS = frozenset({Role.ADMIN, Role.MANAGER})


class TierIn(api.Model):
    name: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=40)]
    threshold: Annotated[int, pydantic.Field(ge=0, le=10**9)]


class ActionIn(api.Model):
    points: Annotated[int, pydantic.Field(ge=0, le=10**6)]
    limit: Annotated[int, pydantic.Field(ge=1, le=1000)]
    days: Annotated[int, pydantic.Field(ge=1, le=3660)]


class LoyaltyIn(api.Model):
    # Stored with 4 decimals (numeric(12, 4)): a smaller value would round to zero.
    point_value: Annotated[float, pydantic.Field(ge=0.0001, le=1000, allow_inf_nan=False)]
    earn_rate: Annotated[float, pydantic.Field(ge=0, le=1000, allow_inf_nan=False)]
    tiers: Annotated[list[TierIn], pydantic.Field(min_length=1, max_length=20)]
    tier_window_days: Annotated[int, pydantic.Field(ge=1, le=3660)]
    actions: dict[Literal["signup", "referral", "survey", "review"], ActionIn]
    points_expire_days: Annotated[
        int | None,
        pydantic.Field(
            ge=1,
            le=3660,
            description="Points expire this many days after they were earned, oldest "
            "first; null (the default) means never",
        ),
    ] = None


class LoyaltyOut(api.Out):
    point_value: str
    earn_rate: str
    tiers: list[dict[str, Any]]
    tier_window_days: int
    actions: dict[str, dict[str, int]]
    points_expire_days: int | None

    @classmethod
    def of(cls, r: loyalty.Rules) -> LoyaltyOut:
        return cls.model_construct(
            point_value=format(r.point_value.normalize(), "f"),
            earn_rate=format(r.earn_rate.normalize(), "f"),
            tiers=[{"name": t.name, "threshold": t.threshold} for t in r.tiers],
            tier_window_days=r.tier_window_days,
            actions={
                k: {"points": a.points, "limit": a.limit, "days": a.days}
                for k, a in (r.actions or {}).items()
            },
            points_expire_days=r.points_expire_days,
        )


async def get_loyalty(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn:
        rules = await wallet_ledger.rules(conn, p.merchant_id)
    return api.json(LoyaltyOut.of(rules))


async def put_loyalty(request: web.Request) -> web.Response:
    p = api.principal(request)
    api.require_merchant_wide(p, "loyalty rules")
    req = await api.body(request, LoyaltyIn)
    try:
        tiers = loyalty.check_tiers([t.model_dump() for t in req.tiers])
    except ValueError as exc:
        raise errors.ValidationFailed("bad field", fields={"tiers": str(exc)}) from None
    values = {
        "point_value": Decimal(str(req.point_value)),
        "earn_rate": Decimal(str(req.earn_rate)),
        "tiers": [{"name": t.name, "threshold": t.threshold} for t in tiers],
        "tier_window_days": req.tier_window_days,
        "actions": {k: v.model_dump() for k, v in req.actions.items()},
        "points_expire_days": req.points_expire_days,
    }
    async with db.acquire(request.app[POOL]) as conn:
        rules = await wallet_ledger.set_rules(conn, p.merchant_id, values)
    return api.json(LoyaltyOut.of(rules))


class PurchaseIn(api.Model):
    # One of the two: the member barcode scanned from the wallet pass, or the id.
    shopper_id: api.Id | None = None
    member: till.Member | None = None
    store_id: api.Id
    amount: Annotated[float, pydantic.Field(ge=0, le=10**9, allow_inf_nan=False)]
    order_ref: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)] | None = (
        None
    )


class PurchaseOut(api.Out):
    id: str
    shopper_id: str
    store_id: str
    amount: str
    order_ref: str | None
    points: int
    balance: int | None
    tier: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, done: wallet_ledger.Purchase) -> PurchaseOut:
        return cls.model_construct(
            id=str(done.id),
            shopper_id=str(done.shopper_id),
            store_id=str(done.store_id),
            amount=format(done.amount, "f"),
            order_ref=done.order_ref,
            points=done.points,
            balance=done.balance,
            tier=done.tier,
            created_at=done.created_at,
        )


async def create_purchase(request: web.Request) -> web.Response:
    """Earn points, then convert the shopper's open offer decisions, in one transaction."""
    p = api.principal(request)
    key = idempotency.key(request)
    req = await api.body(request, PurchaseIn)
    if (req.shopper_id is None) == (req.member is None):
        raise errors.ValidationFailed(
            "bad field", fields={"member": "give either member (the card's barcode) or shopper_id"}
        )
    api.require_store(p, req.store_id)
    amount = Decimal(str(req.amount)).quantize(Decimal("0.01"))
    now = request.app[CLOCK].now()
    async with db.acquire(request.app[POOL]) as conn:
        if not await geo_store.existing_stores(conn, p.merchant_id, [req.store_id]):
            raise errors.ValidationFailed("no such store", fields={"store_id": "no such store"})
        shopper_id = req.shopper_id
        if shopper_id is None:
            assert req.member is not None
            shopper_id = await till.member_shopper(conn, p.merchant_id, req.member)
        fingerprint = idempotency.request_hash(shopper_id, req.store_id, amount, req.order_ref)
        async with conn.transaction():
            done = await wallet_ledger.record_purchase(
                conn,
                merchant_id=p.merchant_id,
                shopper_id=shopper_id,
                store_id=req.store_id,
                amount=amount,
                order_ref=req.order_ref,
                key_id=p.key_id,
                idempotency_key=key,
                request_hash=fingerprint,
                at=now,
            )
            if done.created:
                # A transaction at the till converts open offer decisions at this store.
                await offers_store.record_conversion(
                    conn,
                    merchant_id=p.merchant_id,
                    shopper_id=shopper_id,
                    store_id=req.store_id,
                    source="purchase",
                    amount=amount,
                    at=now,
                )
                _, rewarded = await referral_rewards.after_event(
                    conn,
                    merchant_id=p.merchant_id,
                    shopper_id=shopper_id,
                    event="purchase",
                    balance=done.balance,
                    at=now,
                    key_id=p.key_id,
                )
                if rewarded is not None:  # the referral's reward is in the balance
                    done = dataclasses.replace(done, balance=rewarded.points, tier=rewarded.tier)
    return idempotency.answer(PurchaseOut.of(done), created=done.created)


class ActionAward(api.Model):
    action: Literal["signup", "referral", "survey", "review"]


class PointsChange(api.Model):
    kind: Literal["adjust", "spend"]
    points: Annotated[int, pydantic.Field(ge=-(10**9), le=10**9)]
    reason: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)]


class BalanceOut(api.Out):
    shopper_id: str
    balance: int
    value: str
    tier: str | None

    @staticmethod
    def fields(
        shopper_id: int, balance: wallet_ledger.Balance, rules: loyalty.Rules
    ) -> dict[str, Any]:
        return {
            "shopper_id": str(shopper_id),
            "balance": balance.points,
            "value": format(loyalty.points_value(balance.points, rules), "f"),
            "tier": balance.tier,
        }


async def _balance_answer(
    request: web.Request, shopper_id: int, balance: wallet_ledger.Balance
) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn:
        rules = await wallet_ledger.rules(conn, p.merchant_id)
    return api.json(
        BalanceOut.model_construct(**BalanceOut.fields(shopper_id, balance, rules)),
        status=201,
    )


async def award_action(request: web.Request) -> web.Response:
    p = api.principal(request)
    shopper_id = api.path_id(request, "shopper_id")
    req = await api.body(request, ActionAward)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        balance = await wallet_ledger.award_action(
            conn,
            merchant_id=p.merchant_id,
            shopper_id=shopper_id,
            action=req.action,
            at=request.app[CLOCK].now(),
            key_id=p.key_id,
        )
    return await _balance_answer(request, shopper_id, balance)


async def change_points(request: web.Request) -> web.Response:
    p = api.principal(request)
    shopper_id = api.path_id(request, "shopper_id")
    req = await api.body(request, PointsChange)
    if req.points == 0 or (req.kind == "spend" and req.points > 0):
        raise errors.ValidationFailed(
            "bad field",
            fields={"points": "a spend is negative; an adjustment is not zero"},
        )
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        balance = await wallet_ledger.change_points(
            conn,
            merchant_id=p.merchant_id,
            shopper_id=shopper_id,
            kind=req.kind,
            points=req.points,
            reason=req.reason,
            at=request.app[CLOCK].now(),
            key_id=p.key_id,
        )
    return await _balance_answer(request, shopper_id, balance)


class LedgerOut(BalanceOut):
    entries: list[dict[str, Any]]
    next_cursor: str | None


async def _points(request: web.Request, shopper_id: int) -> web.Response:
    p = api.principal(request)
    limit = paging.limit(request, 50, 500)
    before = paging.query_id(request, "cursor", "not a cursor") or 2**62
    async with db.acquire(request.app[POOL]) as conn:
        current = await wallet_ledger.shopper_balance(conn, p.merchant_id, shopper_id)
        if current is None:
            raise errors.NotFound("no such shopper")
        rules = await wallet_ledger.rules(conn, p.merchant_id)
        entries = await wallet_ledger.ledger(
            conn, p.merchant_id, shopper_id, before=before, limit=limit
        )
    items = [
        {
            "id": str(e["id"]),
            "kind": e["kind"],
            "points": e["points"],
            "reason": e["reason"],
            "purchase_id": None if e["purchase_id"] is None else str(e["purchase_id"]),
            "at": e["created_at"].isoformat(),
        }
        for e in entries
    ]
    return api.json(
        LedgerOut.model_construct(
            **BalanceOut.fields(shopper_id, current, rules),
            entries=items,
            next_cursor=paging.next_cursor([i["id"] for i in items], limit),
        )
    )


async def shopper_points(request: web.Request) -> web.Response:
    return await _points(request, api.path_id(request, "shopper_id"))


async def my_points(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    return await _points(request, p.shopper_id)


ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/loyalty",
        handler=get_loyalty,
        tag="loyalty",
        summary="The loyalty program: point value, earn rate, tiers and action awards",
        roles=STAFF,
        replies={200: Reply(description="The rules", model=LoyaltyOut)},
    ),
    Endpoint(
        method="PUT",
        path="/v1/loyalty",
        handler=put_loyalty,
        tag="loyalty",
        summary="Set the loyalty program's rules",
        description="Tiers are reached by points earned within tier_window_days; each action "
        "(signup, referral, survey, review) awards its points at most `limit` times in "
        "`days` days.",
        roles=WRITERS,
        body=LoyaltyIn,
        replies={200: Reply(description="The rules", model=LoyaltyOut)},
    ),
    Endpoint(
        method="POST",
        path="/v1/purchases",
        handler=create_purchase,
        tag="loyalty",
        summary="Record a purchase at the till: earns points once per Idempotency-Key",
        description="The shopper is named by `member`, the barcode scanned from the wallet "
        "pass (404 unknown_member), or by `shopper_id`; one of the two. "
        "Points = floor(amount x earn_rate). A retry with the same key and body "
        "answers the first result (Idempotent-Replayed: true); the same key with another "
        "body is 422. A purchase also converts the shopper's open offer decisions at that "
        "store, sent or held out, for the uplift report, and can qualify the shopper's "
        "referral (GET /v1/referrals/rules): both sides' rewards are paid in the same "
        "transaction, once.",
        roles=frozenset({Role.POS}),
        body=PurchaseIn,
        replies={201: Reply(description="The purchase and the new balance", model=PurchaseOut)},
        errors=(404, 409),
        parameters=(idempotency.PARAMETER,),
    ),
    Endpoint(
        method="POST",
        path="/v1/shoppers/{shopper_id}/actions",
        handler=award_action,
        tag="loyalty",
        summary="Award points for an action (signup, referral, survey, review), within its limit",
        roles=frozenset({Role.APP, Role.ADMIN, Role.MANAGER}),
        body=ActionAward,
        replies={201: Reply(description="The new balance", model=BalanceOut)},
        errors=(404, 409),
    ),
    Endpoint(
        method="POST",
        path="/v1/shoppers/{shopper_id}/points",
        handler=change_points,
        tag="loyalty",
        summary="Adjust points, or spend them (never below zero)",
        roles=WRITERS,
        body=PointsChange,
        replies={201: Reply(description="The new balance", model=BalanceOut)},
        errors=(404, 409),
    ),
    Endpoint(
        method="GET",
        path="/v1/shoppers/{shopper_id}/points",
        handler=shopper_points,
        tag="loyalty",
        summary="A shopper's balance, tier and ledger (newest first, cursor-paged)",
        roles=STAFF,
        replies={200: Reply(description="Balance and ledger", model=LedgerOut)},
        errors=(404, 422),
        parameters=paging.PAGING,
    ),
    Endpoint(
        method="GET",
        path="/v1/me/points",
        handler=my_points,
        tag="loyalty",
        summary="The calling shopper's balance, tier and ledger",
        roles=frozenset({Role.SHOPPER}),
        replies={200: Reply(description="Balance and ledger", model=LedgerOut)},
        errors=(404, 422),
        parameters=paging.PAGING,
    ),
]
