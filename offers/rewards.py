"""The rewards catalog's SQL access: rewards, gift-card code pools, grants, and coupons the
program grants without a decision (a reward, or any other non-offer source).

A reward's coupon (title, body, channels, validity, stores) lives on an offer row with
trigger 'reward', which no place ever fires and the offers API does not show; so a
granted coupon is an ordinary coupon: the outbox delivers it, the inbox lists it, the
wallet makes its pass, and the till redeems it. Functions take a connection inside the
caller's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from geo import sql
from offers import codes, errors
from offers import store as offers_store

_Q = sql.load("offers", "rewards.sql")

KINDS = ("free_item", "discount", "gift_card")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reward:
    id: int
    merchant_id: int
    kind: str
    name: str
    offer_id: int
    points: int
    stock: int | None
    issued_count: int
    per_shopper_limit: int | None
    tiers: tuple[str, ...] | None
    status: str
    title: str
    body: str
    image_url: str | None
    channels: tuple[str, ...]
    store_ids: tuple[int, ...]
    coupon: Mapping[str, Any]
    codes_left: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, r: Any) -> Reward:
        return cls(
            **{k: r[k] for k in cls.__slots__ if k not in ("tiers", "channels", "store_ids")},
            tiers=None if r["tiers"] is None else tuple(r["tiers"]),
            channels=tuple(r["channels"]),
            store_ids=tuple(r["store_ids"]),
        )


# The reward's own columns, in insert_reward's order from $2; the rest is its offer's.
REWARD_FIELDS = ("kind", "name", "points", "stock", "per_shopper_limit", "tiers", "status")
OFFER_FIELDS = ("title", "body", "image_url", "channels", "store_ids", "coupon")


def _offer_values(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """A reward's offer: fired by no place, with no caps, budget or holdout of its own."""
    stores = sorted(set(values["store_ids"]))
    return {
        "name": name,
        "title": values["title"],
        "body": values["body"],
        "image_url": values["image_url"],
        "channels": list(values["channels"]),
        "trigger": "reward",
        "status": "active",
        "geofence_ids": [],
        "store_ids": stores,
        "scope_store_ids": stores,
        "starts_at": None,
        "ends_at": None,
        "schedule": None,
        "weather": None,
        "audience": None,
        "caps": [],
        "budget_issued": None,
        "budget_redeemed": None,
        "priority": 0,
        "holdout_pct": 0.0,
        "coupon": dict(values["coupon"]),
        "fire_when_closed": True,
    }


async def insert(conn: asyncpg.Connection, merchant_id: int, values: Mapping[str, Any]) -> Reward:
    """A new reward and its offer; ``values`` holds REWARD_FIELDS and OFFER_FIELDS."""
    await offers_store.resolve_scope(conn, merchant_id, [], values["store_ids"])
    offer = await offers_store.insert_offer(
        conn, merchant_id, _offer_values(values["name"], values)
    )
    rid = await conn.fetchval(
        _Q["insert_reward"],
        merchant_id,
        values["kind"],
        values["name"],
        offer.offer.id,
        *[values[f] for f in REWARD_FIELDS[2:]],
    )
    found = await get(conn, merchant_id, rid)
    assert found is not None
    return found


async def get(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> Reward | None:
    row = await conn.fetchrow(_Q["get_reward"], merchant_id, reward_id)
    return None if row is None else Reward.from_row(row)


async def list_page(
    conn: asyncpg.Connection, merchant_id: int, *, after: int, limit: int
) -> list[Reward]:
    return [
        Reward.from_row(r) for r in await conn.fetch(_Q["list_rewards"], merchant_id, after, limit)
    ]


async def update(
    conn: asyncpg.Connection, merchant_id: int, reward_id: int, changes: Mapping[str, Any]
) -> Reward | None:
    """Apply the changed fields; the rest keep their stored values. Raises StockBelowIssued."""
    current = await get(conn, merchant_id, reward_id)
    if current is None:
        return None
    merged = {f: changes.get(f, getattr(current, f)) for f in (*REWARD_FIELDS, *OFFER_FIELDS)}
    if "store_ids" in changes:
        await offers_store.resolve_scope(conn, merchant_id, [], merged["store_ids"])
    try:
        await conn.execute(
            _Q["update_reward"],
            merchant_id,
            reward_id,
            merged["name"],
            *[merged[f] for f in REWARD_FIELDS[2:]],
        )
    except asyncpg.CheckViolationError:
        raise errors.StockBelowIssued(current.issued_count) from None
    offer = _offer_values(merged["name"], merged)
    await conn.execute(
        _Q["update_reward_offer"],
        merchant_id,
        current.offer_id,
        *[offer[f] for f in ("name", "title", "body", "image_url", "channels", "store_ids")],
        offer["coupon"],
    )
    return await get(conn, merchant_id, reward_id)


async def archive(conn: asyncpg.Connection, merchant_id: int, reward_id: int) -> bool:
    return await conn.fetchval(_Q["archive_reward"], merchant_id, reward_id) is not None


async def add_codes(
    conn: asyncpg.Connection, merchant_id: int, reward_id: int, new: Sequence[str]
) -> int:
    """Add codes to a gift card's pool in one statement; codes already there are skipped."""
    return int(await conn.fetchval(_Q["add_codes"], merchant_id, reward_id, list(new)))


async def for_shopper(conn: asyncpg.Connection, merchant_id: int, shopper_id: int) -> list[Reward]:
    """The rewards the shopper may buy now (tier, stock, codes, per-shopper limit)."""
    rows = await conn.fetch(_Q["shop_rewards"], merchant_id, shopper_id)
    return [Reward.from_row(r) for r in rows]


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    id: int
    reward_id: int
    shopper_id: int
    points: int
    coupon_id: int
    code: str
    expires_at: dt.datetime
    store_ids: tuple[int, ...]
    gift_code: str | None
    delivery_id: uuid.UUID | None
    request_hash: bytes
    created_at: dt.datetime
    created: bool = True

    @classmethod
    def from_row(cls, r: Any, *, created: bool = True) -> Grant:
        fields = [k for k in cls.__slots__ if k not in ("store_ids", "request_hash", "created")]
        return cls(
            **{k: r[k] for k in fields},
            store_ids=tuple(r["store_ids"]),
            request_hash=bytes(r["request_hash"]),
            created=created,
        )


async def grant_by_key(conn: asyncpg.Connection, shopper_id: int, key: str) -> Grant | None:
    row = await conn.fetchrow(_Q["grant_by_key"], shopper_id, key)
    return None if row is None else Grant.from_row(row, created=False)


async def shopper_grants(
    conn: asyncpg.Connection, shopper_id: int, *, before: int, limit: int
) -> list[tuple[Grant, str, str]]:
    """The shopper's grants, newest first, each with its reward's name and kind."""
    rows = await conn.fetch(_Q["shopper_grant_list"], shopper_id, before, limit)
    return [(Grant.from_row(r), r["name"], r["kind"]) for r in rows]


async def grant_coupon(
    conn: asyncpg.Connection, *, merchant_id: int, shopper_id: int, offer_id: int, at: dt.datetime
) -> offers_store.Send:
    """Issue a coupon of a 'reward' offer to the shopper, with no decision.

    The generic way for any non-offer source (a reward, a referral) to put a coupon in
    the shopper's inbox and wallet: the caller enqueues the returned Send (gateway's
    outbox) in the same transaction, so the coupon is delivered if and only if it exists.
    """
    row = await conn.fetchrow(
        _Q["grant_coupon"], merchant_id, offer_id, shopper_id, codes.new_code(), at
    )
    if row is None:
        raise errors.UnknownReward()
    return offers_store.Send(
        delivery_id=uuid.uuid4(),
        merchant_id=merchant_id,
        shopper_id=shopper_id,
        offer_id=offer_id,
        coupon_id=row["id"],
        decision_id=None,
        store_id=None,
        channels=tuple(row["channels"]),
        at=at,
        expires_at=row["expires_at"],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Purchase:
    """A shopper buying a reward, checked against the catalog under the shopper's row lock."""

    merchant_id: int
    shopper_id: int
    shopper_tier: str | None
    idempotency_key: str
    request_hash: bytes
    at: dt.datetime


def check(reward: Reward | None, tier: str | None) -> Reward:
    """The reward if it is on sale to a shopper of ``tier``; else the refusal."""
    if reward is None or reward.status != "active":
        raise errors.UnknownReward()
    if reward.tiers is not None and tier not in reward.tiers:
        raise errors.RewardNotForTier(reward.tiers)
    return reward


async def issue(
    conn: asyncpg.Connection, reward: Reward, buy: Purchase
) -> tuple[Grant, offers_store.Send]:
    """Reserve the reward's stock, take a gift-card code, grant its coupon; the grant and
    the coupon's Send, which the caller enqueues.

    The caller holds the shopper's row lock (wallet's ledger), which makes the
    per-shopper count exact, and spends the points in the same transaction. Raises
    RewardLimitReached or RewardOutOfStock; the caller's rollback undoes everything.
    """
    if reward.per_shopper_limit is not None:
        bought = await conn.fetchval(_Q["shopper_grants"], reward.id, buy.shopper_id)
        if bought >= reward.per_shopper_limit:
            raise errors.RewardLimitReached(reward.per_shopper_limit)
    if await conn.fetchval(_Q["reserve_stock"], reward.id) is None:
        raise errors.RewardOutOfStock()
    code = None
    if reward.kind == "gift_card":
        code = await conn.fetchrow(_Q["take_code"], reward.id)
        if code is None:
            raise errors.RewardOutOfStock()
    send = await grant_coupon(
        conn,
        merchant_id=buy.merchant_id,
        shopper_id=buy.shopper_id,
        offer_id=reward.offer_id,
        at=buy.at,
    )
    gid = await conn.fetchval(
        _Q["insert_grant"],
        buy.merchant_id,
        reward.id,
        buy.shopper_id,
        reward.points,
        send.coupon_id,
        None if code is None else code["code"],
        buy.idempotency_key,
        buy.request_hash,
        buy.at,
    )
    if code is not None:
        await conn.execute(_Q["use_code"], code["id"], gid)
    row = await conn.fetchrow(_Q["get_grant"], gid)
    # The delivery row is written by the caller's enqueue, after this read.
    return dataclasses.replace(Grant.from_row(row), delivery_id=send.delivery_id), send
