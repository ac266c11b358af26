"""SQL access for offers, program rules, decisions, coupons, redemptions and rollups.

Functions take a connection and never open, commit or close one: the caller owns
the transaction. Driver errors that mean something to the domain become domain
errors here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from geo import sql
from offers import errors
from offers.models import (
    Audience,
    Cap,
    CouponSpec,
    Exposure,
    Offer,
    Program,
    ShopperState,
    WeatherRule,
)

_Q = sql.load("offers")

# --- offers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferRecord:
    """A stored offer: the rule the decision engine sees, plus bookkeeping."""

    offer: Offer
    scope_store_ids: frozenset[int]
    created_at: dt.datetime
    updated_at: dt.datetime


def _weather(raw: Mapping[str, Any] | None) -> WeatherRule | None:
    if raw is None:
        return None
    conditions = raw.get("conditions")
    return WeatherRule(
        conditions=None if conditions is None else frozenset(conditions),
        min_temp_c=raw.get("min_temp_c"),
        max_temp_c=raw.get("max_temp_c"),
    )


def _audience(raw: Mapping[str, Any] | None) -> Audience | None:
    if raw is None:
        return None
    tiers = raw.get("tiers")
    tags = raw.get("tags")
    return Audience(
        tiers=None if tiers is None else frozenset(tiers),
        min_points=raw.get("min_points"),
        max_points=raw.get("max_points"),
        tags=None if tags is None else frozenset(tags),
        exclude_tags=frozenset(raw.get("exclude_tags") or ()),
    )


def offer_from_row(row: Any) -> OfferRecord:
    coupon = row["coupon"]
    offer = Offer(
        id=row["id"],
        merchant_id=row["merchant_id"],
        name=row["name"],
        title=row["title"],
        body=row["body"],
        image_url=row["image_url"],
        channels=tuple(row["channels"]),
        trigger=row["trigger"],
        status=row["status"],
        geofence_ids=frozenset(row["geofence_ids"]),
        store_ids=frozenset(row["store_ids"]),
        scope_store_ids=frozenset(row["scope_store_ids"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        schedule=row["schedule"],
        weather=_weather(row["weather"]),
        audience=_audience(row["audience"]),
        caps=tuple(Cap(max=c["max"], seconds=c["seconds"]) for c in row["caps"]),
        budget_issued=row["budget_issued"],
        budget_redeemed=row["budget_redeemed"],
        issued_count=row["issued_count"],
        redeemed_count=row["redeemed_count"],
        priority=row["priority"],
        holdout_pct=row["holdout_pct"],
        fire_when_closed=row["fire_when_closed"],
        coupon=CouponSpec(
            discount=coupon["discount"],
            valid_minutes=coupon["valid_minutes"],
            barcode_format=coupon.get("barcode_format", "qr"),
            discount_pct=coupon.get("discount_pct"),
            discount_amount=coupon.get("discount_amount"),
        ),
    )
    return OfferRecord(
        offer=offer,
        scope_store_ids=frozenset(row["scope_store_ids"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# The columns an offer write sets, in the order of insert_offer's $2 onwards.
OFFER_FIELDS = (
    "name",
    "title",
    "body",
    "image_url",
    "channels",
    "trigger",
    "status",
    "geofence_ids",
    "store_ids",
    "scope_store_ids",
    "starts_at",
    "ends_at",
    "schedule",
    "weather",
    "audience",
    "caps",
    "budget_issued",
    "budget_redeemed",
    "priority",
    "holdout_pct",
    "coupon",
    "fire_when_closed",
)


async def resolve_scope(
    conn: asyncpg.Connection,
    merchant_id: int,
    geofence_ids: Sequence[int],
    store_ids: Sequence[int],
) -> frozenset[int]:
    """Every store the offer touches; raises UnknownPlace naming what does not exist."""
    fence_rows = await conn.fetch(_Q["fence_stores"], merchant_id, list(geofence_ids))
    found_fences = {r["id"]: r["store_id"] for r in fence_rows}
    missing = [i for i in geofence_ids if i not in found_fences]
    if missing:
        raise errors.UnknownPlace("geofence_ids", missing)
    store_rows = await conn.fetch(_Q["existing_stores"], merchant_id, list(store_ids))
    found_stores = {r["id"] for r in store_rows}
    missing = [i for i in store_ids if i not in found_stores]
    if missing:
        raise errors.UnknownPlace("store_ids", missing)
    return frozenset(found_fences.values()) | found_stores


async def insert_offer(
    conn: asyncpg.Connection, merchant_id: int, values: Mapping[str, Any]
) -> OfferRecord:
    row = await conn.fetchrow(_Q["insert_offer"], merchant_id, *[values[f] for f in OFFER_FIELDS])
    assert row is not None
    return offer_from_row(row)


async def get_offer(
    conn: asyncpg.Connection, merchant_id: int, offer_id: int, *, lock: bool = False
) -> OfferRecord | None:
    row = await conn.fetchrow(_Q["lock_offer" if lock else "get_offer"], merchant_id, offer_id)
    return None if row is None else offer_from_row(row)


async def list_offers(
    conn: asyncpg.Connection,
    merchant_id: int,
    store_ids: frozenset[int] | None,
    *,
    status: str | None,
    after: int,
    limit: int,
) -> list[OfferRecord]:
    rows = await conn.fetch(
        _Q["list_offers"],
        merchant_id,
        None if store_ids is None else sorted(store_ids),
        status,
        after,
        limit,
    )
    return [offer_from_row(r) for r in rows]


async def update_offer(
    conn: asyncpg.Connection, merchant_id: int, offer_id: int, changes: Mapping[str, Any]
) -> OfferRecord | None:
    """Apply the changed columns; the rest keep their stored values."""
    unknown = set(changes) - set(OFFER_FIELDS)
    if unknown:
        raise ValueError(f"not offer fields: {sorted(unknown)}")
    row = await conn.fetchrow(_Q["lock_offer"], merchant_id, offer_id)
    if row is None:
        return None
    values = {f: changes[f] if f in changes else row[f] for f in OFFER_FIELDS}
    updated = await conn.fetchrow(
        _Q["update_offer"], merchant_id, offer_id, *[values[f] for f in OFFER_FIELDS]
    )
    return None if updated is None else offer_from_row(updated)


async def archive_offer(conn: asyncpg.Connection, merchant_id: int, offer_id: int) -> bool:
    return await conn.fetchval(_Q["archive_offer"], merchant_id, offer_id) is not None


async def active_offers(conn: asyncpg.Connection, merchant_id: int) -> list[Offer]:
    return [offer_from_row(r).offer for r in await conn.fetch(_Q["active_offers"], merchant_id)]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreHours:
    """What decisions need of a store: its time zone and weekly opening hours."""

    timezone: str
    opening_hours: Mapping[str, Sequence[str]] | None


async def store_hours(conn: asyncpg.Connection, merchant_id: int) -> dict[int, StoreHours]:
    return {
        r["id"]: StoreHours(timezone=r["timezone"], opening_hours=r["opening_hours"])
        for r in await conn.fetch(_Q["store_hours"], merchant_id)
    }


# --- program ------------------------------------------------------------------------------


def _program(row: Any) -> Program:
    return Program(
        daily_cap=row["daily_offer_cap"],
        quiet_start=row["quiet_start"],
        quiet_end=row["quiet_end"],
    )


async def get_program(conn: asyncpg.Connection, merchant_id: int) -> Program:
    row = await conn.fetchrow(_Q["get_program"], merchant_id)
    return Program() if row is None else _program(row)


async def set_program(conn: asyncpg.Connection, merchant_id: int, program: Program) -> Program:
    row = await conn.fetchrow(
        _Q["set_program"], merchant_id, program.daily_cap, program.quiet_start, program.quiet_end
    )
    assert row is not None
    return _program(row)


# --- decisions ----------------------------------------------------------------------------


async def shopper_state(
    conn: asyncpg.Connection, shopper_id: int, since: dt.datetime
) -> ShopperState | None:
    row = await conn.fetchrow(_Q["shopper_offer_state"], shopper_id, since)
    if row is None:
        return None
    history = tuple(
        Exposure(offer_id=o, at=a, held_out=h)
        for o, a, h in zip(row["offer_ids"], row["decided_ats"], row["held_outs"], strict=True)
    )
    return ShopperState(
        shopper_id=shopper_id,
        marketing_consent=row["marketing_consent"],
        timezone=row["timezone"],
        tier=row["tier"],
        points=row["points"],
        tags=frozenset(row["tags"]),
        history=history,
    )


async def reserve_issue(conn: asyncpg.Connection, offer: Offer) -> bool:
    """Take one coupon from the offer's budget, or say it is gone (or the offer stopped)."""
    if offer.budget_issued is None:
        return await conn.fetchval(_Q["offer_is_live"], offer.id) is not None
    return await conn.fetchval(_Q["reserve_issue"], offer.id) is not None


async def live_counts(
    conn: asyncpg.Connection, offer_ids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """Issued and redeemed counts of the offers still live, by id, read without a lock."""
    rows = await conn.fetch(_Q["live_counts"], list(offer_ids))
    return {r["id"]: (r["issued_count"], r["redeemed_count"]) for r in rows}


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRow:
    offer_id: int
    store_id: int
    # None for a journey's decision, which happens at no geofence.
    fence_id: int | None
    trigger: str
    reason: str | None
    attributable_until: dt.datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewCoupon:
    """The coupon of a send; `delivery_id` and `channels` only pass through to its `Send`."""

    code: str
    store_ids: frozenset[int]
    expires_at: dt.datetime
    delivery_id: uuid.UUID
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """A coupon just issued that must now be delivered, on `channels`, until `expires_at`.

    Whoever delivers it enqueues it in the transaction that issued it (the gateway's
    outbox), so a coupon is delivered if and only if it exists.
    """

    delivery_id: uuid.UUID
    merchant_id: int
    shopper_id: int
    offer_id: int
    coupon_id: int
    # None for a coupon the program granted without a decision (offers.rewards).
    decision_id: int | None
    store_id: int | None
    channels: tuple[str, ...]
    at: dt.datetime
    expires_at: dt.datetime


async def record_decisions(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    at: dt.datetime,
    rows: Sequence[DecisionRow],
    coupon: NewCoupon | None,
) -> Send | None:
    """Log one ping's decisions; with a coupon, issue it to the send and return what to send."""
    row = await conn.fetchrow(
        _Q["record_decisions"],
        merchant_id,
        shopper_id,
        at,
        [r.offer_id for r in rows],
        [r.store_id for r in rows],
        [r.fence_id for r in rows],
        [r.trigger for r in rows],
        [r.reason for r in rows],
        [r.attributable_until for r in rows],
        coupon.code if coupon else None,
        sorted(coupon.store_ids) if coupon else None,
        coupon.expires_at if coupon else None,
    )
    if row is None or coupon is None:
        return None
    return Send(
        delivery_id=coupon.delivery_id,
        merchant_id=merchant_id,
        shopper_id=shopper_id,
        offer_id=row["offer_id"],
        coupon_id=row["coupon_id"],
        decision_id=row["decision_id"],
        store_id=row["store_id"],
        channels=coupon.channels,
        at=at,
        expires_at=coupon.expires_at,
    )


# --- redemptions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Redemption:
    id: int
    coupon_id: int
    offer_id: int
    shopper_id: int
    store_id: int
    code: str
    order_ref: str | None
    amount: Decimal | None
    key_id: int
    redeemed_at: dt.datetime
    voided_at: dt.datetime | None
    voided_by: int | None
    void_reason: str | None
    request_hash: bytes

    @classmethod
    def from_row(cls, row: Any) -> Redemption:
        return cls(**{k: row[k] for k in cls.__slots__})


async def redeem_coupon(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    code: str,
    store_id: int,
    order_ref: str | None,
    amount: Decimal | None,
    key_id: int,
    idempotency_key: str,
    request_hash: bytes,
    at: dt.datetime,
) -> tuple[str, Redemption | None]:
    """The outcome of one attempt, and the redemption it made or replayed."""
    try:
        row = await conn.fetchrow(
            _Q["redeem_coupon"],
            merchant_id,
            code,
            store_id,
            order_ref,
            amount,
            key_id,
            idempotency_key,
            request_hash,
            at,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "uq__redemptions__coupon_id_live":
            raise errors.AlreadyRedeemed() from None
        # Two first attempts with one key for different coupons, at the same moment.
        raise errors.IdempotencyKeyRace() from None
    assert row is not None
    if row["redemption_id"] is None:
        return row["outcome"], None
    found = await conn.fetchrow(_Q["get_redemption"], row["redemption_id"])
    assert found is not None
    return row["outcome"], Redemption.from_row(found)


async def coupon_expires_at(
    conn: asyncpg.Connection, merchant_id: int, code: str
) -> dt.datetime | None:
    expires_at: dt.datetime | None = await conn.fetchval(_Q["coupon_expires_at"], merchant_id, code)
    return expires_at


async def record_conversion(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    store_id: int,
    source: str,
    amount: Decimal | None,
    at: dt.datetime,
) -> None:
    await conn.execute(
        _Q["record_conversion"], merchant_id, shopper_id, store_id, source, amount, at
    )


async def lock_redemption(
    conn: asyncpg.Connection, merchant_id: int, redemption_id: int
) -> Redemption | None:
    row = await conn.fetchrow(_Q["lock_redemption"], merchant_id, redemption_id)
    return None if row is None else Redemption.from_row(row)


async def void_redemption(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    redemption_id: int,
    key_id: int,
    reason: str | None,
    window_minutes: int,
    at: dt.datetime,
) -> tuple[str, Redemption | None]:
    """The outcome of one void (one round trip), and the redemption as it stands after it."""
    row = await conn.fetchrow(
        _Q["void_redemption"], merchant_id, redemption_id, key_id, reason, window_minutes, at
    )
    return (
        ("unknown_redemption", None) if row is None else (row["outcome"], Redemption.from_row(row))
    )


# --- reports and logs ---------------------------------------------------------------------


async def funnel_rows(
    conn: asyncpg.Connection, offer_id: int, first: dt.date, last: dt.date
) -> list[asyncpg.Record]:
    return list(await conn.fetch(_Q["funnel"], offer_id, first, last))


async def compact_stats(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(_Q["compact_stats"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class LogFilter:
    merchant_id: int
    offer_id: int | None = None
    store_id: int | None = None
    store_ids: frozenset[int] | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    outcome: str | None = None
    reason: str | None = None
    # Redemptions only: "active" or "voided".
    status: str | None = None


def _log_params(f: LogFilter, after: int, limit: int | None) -> list[Any]:
    """The parameters both logs' queries start with, in their order ($1 to $8)."""
    scope = None if f.store_ids is None else sorted(f.store_ids)
    return [f.merchant_id, f.offer_id, f.store_id, scope, f.since, f.until, after, limit]


def redemption_log_query(f: LogFilter, after: int, limit: int | None) -> tuple[str, list[Any]]:
    return _Q["redemption_log"], [*_log_params(f, after, limit), f.status]


def decision_log_query(f: LogFilter, after: int, limit: int | None) -> tuple[str, list[Any]]:
    return _Q["decision_log"], [*_log_params(f, after, limit), f.outcome, f.reason]
