"""The rewards catalog for managers: rewards bought with points (a free item, a discount
coupon, a partner gift card from an uploaded pool of codes), with price, stock,
per-shopper limit and tiers."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Any, Literal

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.db import POOL
from gateway.http import api, errors, paging
from gateway.http.api import Endpoint, Reply
from gateway.http.handlers.offers import Body, Channels, CouponIn, Text, Url
from gateway.settings import SETTINGS
from offers import rewards

WRITERS = frozenset({Role.ADMIN, Role.MANAGER})
READERS = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})

Points = Annotated[int, pydantic.Field(ge=1, le=10**9)]
Stock = Annotated[int, pydantic.Field(ge=0, le=10**9)]
Limit = Annotated[int, pydantic.Field(ge=1, le=10**6)]
TierName = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=40)]
Tiers = Annotated[list[TierName], pydantic.Field(min_length=1, max_length=20)]
StoreIds = Annotated[list[api.Id], pydantic.Field(max_length=1000)]
GiftCode = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)]
MAX_CODES = 10_000


class RewardCreate(api.Model):
    kind: Literal["free_item", "discount", "gift_card"]
    name: Text
    title: Text
    body: Body
    image_url: Url | None = None
    points: Points
    stock: Stock | None = None
    per_shopper_limit: Limit | None = None
    tiers: Tiers | None = None
    store_ids: StoreIds = []
    channels: Channels = ["inbox", "wallet"]
    coupon: CouponIn
    status: Literal["active", "paused"] = "active"


class RewardPatch(api.Model):
    name: Text | None = None
    title: Text | None = None
    body: Body | None = None
    image_url: Url | None = None
    points: Points | None = None
    stock: Stock | None = None
    per_shopper_limit: Limit | None = None
    tiers: Tiers | None = None
    store_ids: StoreIds | None = None
    channels: Channels | None = None
    coupon: CouponIn | None = None
    status: Literal["active", "paused"] | None = None


class RewardOut(api.Out):
    id: str
    kind: str
    name: str
    title: str
    body: str
    image_url: str | None
    points: int
    stock: int | None
    issued: int
    per_shopper_limit: int | None
    tiers: list[str] | None
    store_ids: list[str]
    channels: list[str]
    coupon: dict[str, Any]
    codes_left: int | None
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, r: rewards.Reward) -> RewardOut:
        return cls.model_construct(
            id=str(r.id),
            kind=r.kind,
            name=r.name,
            title=r.title,
            body=r.body,
            image_url=r.image_url,
            points=r.points,
            stock=r.stock,
            issued=r.issued_count,
            per_shopper_limit=r.per_shopper_limit,
            tiers=None if r.tiers is None else list(r.tiers),
            store_ids=[str(s) for s in r.store_ids],
            channels=list(r.channels),
            coupon=dict(r.coupon),
            codes_left=r.codes_left if r.kind == "gift_card" else None,
            status=r.status,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class RewardList(api.Out):
    items: list[RewardOut]
    next_cursor: str | None


class CodesIn(api.Model):
    codes: Annotated[list[GiftCode], pydantic.Field(min_length=1, max_length=MAX_CODES)]


class CodesOut(api.Out):
    added: int
    skipped: int
    codes_left: int


def _check_stores(kind: str, store_ids: list[int]) -> None:
    # A coffee or a discount is taken at a till: it needs somewhere to be honoured.
    if kind != "gift_card" and not store_ids:
        raise errors.ValidationFailed(
            "bad field", fields={"store_ids": "a free item or discount needs at least one store"}
        )


def _values(req: RewardCreate | RewardPatch) -> dict[str, Any]:
    out = {k: getattr(req, k) for k in req.model_fields_set}
    if "coupon" in out:
        out["coupon"] = req.coupon.model_dump() if req.coupon else None
    if "store_ids" in out:
        out["store_ids"] = sorted(set(out["store_ids"] or []))
    if (
        "channels" in out
        and out["channels"] is not None
        and len(set(out["channels"])) != len(out["channels"])
    ):
        raise errors.ValidationFailed("bad field", fields={"channels": "each channel at most once"})
    return out


async def create_reward(request: web.Request) -> web.Response:
    p = api.principal(request)
    api.require_merchant_wide(p, "rewards")
    req = await api.body(request, RewardCreate)
    values = {**req.model_dump(), **_values(req)}
    values["store_ids"] = sorted(set(req.store_ids))
    _check_stores(req.kind, values["store_ids"])
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        reward = await rewards.insert(conn, p.merchant_id, values)
    return api.json(RewardOut.of(reward), status=201)


async def list_rewards(request: web.Request) -> web.Response:
    p = api.principal(request)
    limit = paging.limit(request, 100, 1000)
    async with db.acquire(request.app[POOL]) as conn:
        found = await rewards.list_page(
            conn, p.merchant_id, after=paging.cursor(request), limit=limit
        )
    items = [RewardOut.of(r) for r in found]
    return api.json(
        RewardList.model_construct(
            items=items, next_cursor=paging.next_cursor([i.id for i in items], limit)
        )
    )


async def _reward(conn: Any, request: web.Request) -> rewards.Reward:
    found = await rewards.get(
        conn, api.principal(request).merchant_id, api.path_id(request, "reward_id")
    )
    if found is None:
        raise errors.NotFound("no such reward")
    return found


async def get_reward(request: web.Request) -> web.Response:
    async with db.acquire(request.app[POOL]) as conn:
        return api.json(RewardOut.of(await _reward(conn, request)))


async def patch_reward(request: web.Request) -> web.Response:
    p = api.principal(request)
    api.require_merchant_wide(p, "rewards")
    req = await api.body(request, RewardPatch)
    changes = _values(req)
    required = ("name", "title", "body", "points", "store_ids", "channels", "coupon", "status")
    nulls = {k: "must not be null" for k in required if k in changes and changes[k] is None}
    if nulls:
        raise errors.ValidationFailed("bad field", fields=nulls)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        current = await _reward(conn, request)
        _check_stores(current.kind, changes.get("store_ids", list(current.store_ids)))
        updated = await rewards.update(conn, p.merchant_id, current.id, changes)
    assert updated is not None
    return api.json(RewardOut.of(updated))


async def delete_reward(request: web.Request) -> web.Response:
    p = api.principal(request)
    api.require_merchant_wide(p, "rewards")
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        if not await rewards.archive(conn, p.merchant_id, api.path_id(request, "reward_id")):
            raise errors.NotFound("no such reward")
    return web.Response(status=204)


def _parse_codes(raw: bytes, content_type: str) -> list[str]:
    """Codes from a JSON body ({"codes": [...]}) or a CSV file (first column; a header
    row named ``code`` is skipped)."""
    if content_type == "text/csv":
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise errors.ValidationFailed("bad file", fields={"(body)": "not UTF-8"}) from None
        rows = [r[0].strip() for r in csv.reader(io.StringIO(text)) if r and r[0].strip()]
        if rows and rows[0].lower() == "code":
            rows = rows[1:]
        try:
            return CodesIn.model_validate({"codes": rows}).codes
        except pydantic.ValidationError as exc:
            raise errors.ValidationFailed("bad file", fields=api.validation_fields(exc)) from None
    return api.parse(raw, CodesIn).codes


async def upload_codes(request: web.Request) -> web.Response:
    p = api.principal(request)
    api.require_merchant_wide(p, "rewards")
    raw = await api.read_body(
        request,
        limit=request.app[SETTINGS].max_import_bytes,
        media_types=("application/json", "text/csv"),
    )
    codes = _parse_codes(raw, request.content_type)
    if any("\x00" in c for c in codes):
        raise errors.ValidationFailed("bad field", fields={"codes": "NUL"})
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        reward = await _reward(conn, request)
        if reward.kind != "gift_card":
            raise errors.Conflict(
                "only a gift card reward has a pool of codes", code="not_gift_card"
            )
        added = await rewards.add_codes(conn, p.merchant_id, reward.id, codes)
        after = await rewards.get(conn, p.merchant_id, reward.id)
    assert after is not None
    return api.json(
        CodesOut.model_construct(
            added=added, skipped=len(codes) - added, codes_left=after.codes_left
        ),
        status=201,
    )


_ID = "/v1/catalog/rewards/{reward_id}"

ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/v1/catalog/rewards",
        handler=create_reward,
        tag="rewards",
        summary="Define a reward shoppers buy with points",
        description="kind: free_item or discount (a coupon honoured at store_ids, redeemed "
        "at the till like an offer's coupon) or gift_card (a partner's code from the "
        "uploaded pool, plus a coupon that carries it to the inbox and wallet). stock null "
        "is unlimited; per_shopper_limit null is unlimited; tiers null is every tier. "
        "Merchant-wide keys only.",
        roles=WRITERS,
        body=RewardCreate,
        replies={201: Reply(description="The reward", model=RewardOut)},
        errors=(404,),
    ),
    Endpoint(
        method="GET",
        path="/v1/catalog/rewards",
        handler=list_rewards,
        tag="rewards",
        summary="The rewards catalog, by id, with stock issued and gift-card codes left",
        roles=READERS,
        replies={200: Reply(description="A page of rewards", model=RewardList)},
        errors=(422,),
        parameters=paging.PAGING,
    ),
    Endpoint(
        method="GET",
        path=_ID,
        handler=get_reward,
        tag="rewards",
        summary="One reward",
        roles=READERS,
        replies={200: Reply(description="The reward", model=RewardOut)},
        errors=(404,),
    ),
    Endpoint(
        method="PATCH",
        path=_ID,
        handler=patch_reward,
        tag="rewards",
        summary="Change a reward (its kind stays); a stock below what was issued is 422",
        roles=WRITERS,
        body=RewardPatch,
        replies={200: Reply(description="The reward", model=RewardOut)},
        errors=(404,),
    ),
    Endpoint(
        method="DELETE",
        path=_ID,
        handler=delete_reward,
        tag="rewards",
        summary="Archive a reward: off sale; coupons already granted stay valid",
        roles=WRITERS,
        replies={204: Reply(description="Archived", content_type="")},
        errors=(404,),
    ),
    Endpoint(
        method="POST",
        path=_ID + "/codes",
        handler=upload_codes,
        tag="rewards",
        summary="Upload partner gift-card codes to a gift card reward's pool (JSON or CSV)",
        description='JSON {"codes": [...]}, or the same codes as text/csv (one per row in '
        "the first column; a header row `code` is skipped); up to 10,000 codes per upload. "
        "Codes already in the pool are skipped. Each code goes to exactly one shopper.",
        roles=WRITERS,
        body=CodesIn,
        replies={201: Reply(description="Codes added", model=CodesOut)},
        errors=(404, 409),
        bulk_body=True,
    ),
]
