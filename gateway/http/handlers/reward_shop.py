"""Shoppers spend points on rewards: the catalog they can buy from, and buying one in one
transaction (spend the points, reserve the stock, take a gift-card code, grant the coupon
and queue its delivery to the inbox, Web Push and the wallet).

Offers and wallet never import each other; this module is where the two meet, on one
connection and in one transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.delivery import outbox
from gateway.http import api, errors, idempotency, paging
from gateway.http.api import Endpoint, Reply
from offers import codes, rewards
from wallet import errors as wallet_errors
from wallet.store import ledger as wallet_ledger

SHOPPER = frozenset({Role.SHOPPER})


class ShopItem(api.Out):
    id: str
    kind: str
    name: str
    title: str
    body: str
    image_url: str | None
    points: int
    affordable: bool
    left: int | None
    store_ids: list[str]


class ShopOut(api.Out):
    balance: int
    items: list[ShopItem]


def _left(r: rewards.Reward) -> int | None:
    stock = None if r.stock is None else r.stock - r.issued_count
    if r.kind == "gift_card":
        return r.codes_left if stock is None else min(stock, r.codes_left)
    return stock


async def shop(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    async with db.acquire(request.app[POOL]) as conn:
        balance = await wallet_ledger.shopper_balance(conn, p.merchant_id, p.shopper_id)
        if balance is None:
            raise errors.NotFound("no such shopper")
        found = await rewards.for_shopper(conn, p.merchant_id, p.shopper_id)
    items = [
        ShopItem.model_construct(
            id=str(r.id),
            kind=r.kind,
            name=r.name,
            title=r.title,
            body=r.body,
            image_url=r.image_url,
            points=r.points,
            affordable=r.points <= balance.points,
            left=_left(r),
            store_ids=[str(s) for s in r.store_ids],
        )
        for r in found
    ]
    return api.json(ShopOut.model_construct(balance=balance.points, items=items))


class CouponOut(api.Out):
    id: str
    code: str
    expires_at: dt.datetime
    store_ids: list[str]
    delivery_id: str | None


class GrantOut(api.Out):
    id: str
    reward_id: str
    points: int
    balance: int | None
    coupon: CouponOut
    gift_code: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, g: rewards.Grant, balance: int | None) -> GrantOut:
        return cls.model_construct(
            id=str(g.id),
            reward_id=str(g.reward_id),
            points=g.points,
            balance=balance,
            coupon=CouponOut.model_construct(
                id=str(g.coupon_id),
                code=codes.display(g.code),
                expires_at=g.expires_at,
                store_ids=[str(s) for s in g.store_ids],
                delivery_id=None if g.delivery_id is None else str(g.delivery_id),
            ),
            gift_code=g.gift_code,
            created_at=g.created_at,
        )


async def _buy(conn: Any, request: web.Request, reward_id: int, key: str) -> tuple[GrantOut, bool]:
    """The whole purchase, in the caller's transaction: the grant, and whether it is new
    (False: an earlier request with this key). Raises the refusal."""
    p = api.principal(request)
    assert p.shopper_id is not None
    fingerprint = idempotency.request_hash("reward", reward_id)
    # The shopper's row lock first, as every points change takes it: a shopper's purchases
    # queue, so the balance, the per-shopper count and the key's first use are exact.
    locked = await wallet_ledger.lock_shopper(conn, p.merchant_id, p.shopper_id)
    earlier = await rewards.grant_by_key(conn, p.shopper_id, key)
    if earlier is not None:
        if earlier.request_hash != fingerprint:
            raise wallet_errors.IdempotencyKeyReused()
        return GrantOut.of(earlier, int(locked["points"])), False
    now = request.app[CLOCK].now()
    reward = rewards.check(await rewards.get(conn, p.merchant_id, reward_id), locked["tier"])
    balance = await wallet_ledger.change_points(
        conn,
        merchant_id=p.merchant_id,
        shopper_id=p.shopper_id,
        kind="spend",
        points=-reward.points,
        reason=f"reward:{reward.id}",
        at=now,
        key_id=p.key_id,
    )
    grant, send = await rewards.issue(
        conn,
        reward,
        rewards.Purchase(
            merchant_id=p.merchant_id,
            shopper_id=p.shopper_id,
            shopper_tier=locked["tier"],
            idempotency_key=key,
            request_hash=fingerprint,
            at=now,
        ),
    )
    await outbox.enqueue(conn, [send])
    return GrantOut.of(grant, balance.points), True


async def redeem_reward(request: web.Request) -> web.Response:
    key = idempotency.key(request)
    reward_id = api.path_id(request, "reward_id")
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        out, created = await _buy(conn, request, reward_id, key)
    return idempotency.answer(out, created=created)


class GrantItem(GrantOut):
    reward_name: str
    kind: str


class GrantList(api.Out):
    items: list[GrantItem]
    next_cursor: str | None


async def my_rewards(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    limit = paging.limit(request, 50, 500)
    before = paging.query_id(request, "cursor", "not a cursor") or 2**62
    async with db.acquire(request.app[POOL]) as conn:
        found = await rewards.shopper_grants(conn, p.shopper_id, before=before, limit=limit)
    items = [
        GrantItem.model_construct(**dict(GrantOut.of(g, None)), reward_name=name, kind=kind)
        for g, name, kind in found
    ]
    return api.json(
        GrantList.model_construct(
            items=items, next_cursor=paging.next_cursor([i.id for i in items], limit)
        )
    )


ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/rewards",
        handler=shop,
        tag="rewards",
        summary="The rewards the calling shopper can buy now, cheapest first",
        description="Rewards on sale to the shopper's tier, in stock (and, for gift cards, "
        "with codes left) and under the per-shopper limit; `affordable` says whether the "
        "balance covers the price, `left` how many remain (null: unlimited).",
        roles=SHOPPER,
        replies={200: Reply(description="The shopper's balance and rewards", model=ShopOut)},
        errors=(404,),
    ),
    Endpoint(
        method="POST",
        path="/v1/rewards/{reward_id}/redeem",
        handler=redeem_reward,
        tag="rewards",
        summary="Buy a reward with points: spend, reserve stock, issue the coupon, in one "
        "transaction",
        description="Needs an Idempotency-Key: a retry with the key answers the first grant "
        "(Idempotent-Replayed: true); the key with another reward is 422. The coupon goes "
        "to the inbox and wallet like an offer's and is redeemed at the till with POST "
        "/v1/redemptions; a gift card also answers its partner code in gift_code. 409 "
        "insufficient_points when the balance is short, reward_out_of_stock, "
        "reward_limit_reached; 403 reward_not_for_tier; 404 unknown_reward.",
        roles=SHOPPER,
        replies={201: Reply(description="The grant and its coupon", model=GrantOut)},
        errors=(400, 403, 404, 409, 422),
        parameters=(idempotency.PARAMETER,),
    ),
    Endpoint(
        method="GET",
        path="/v1/me/rewards",
        handler=my_rewards,
        tag="rewards",
        summary="The rewards the calling shopper bought, newest first, with their coupons",
        roles=SHOPPER,
        replies={200: Reply(description="A page of grants", model=GrantList)},
        errors=(422,),
        parameters=paging.PAGING,
    ),
]
