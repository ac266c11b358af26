"""Offers and coupons for tests, made through the offers store (the same SQL the gateway uses)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from gateway.delivery import outbox
from offers import codes
from offers import store as offers_store


def offer_values(store_ids: list[int], **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Morning coffee",
        "title": "20% off your coffee",
        "body": "Cold out there. Warm up with us.",
        "image_url": None,
        "channels": ["inbox"],
        "trigger": "enter",
        "status": "active",
        "geofence_ids": [],
        "store_ids": store_ids,
        "scope_store_ids": store_ids,
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
        "coupon": {"discount": "20% off", "valid_minutes": 60, "barcode_format": "qr"},
        "fire_when_closed": False,
    }
    values.update(overrides)
    return values


async def create_offer(
    conn: asyncpg.Connection, merchant_id: int, store_ids: list[int], **overrides: Any
) -> int:
    rec = await offers_store.insert_offer(conn, merchant_id, offer_values(store_ids, **overrides))
    return rec.offer.id


async def issue_coupon(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    shopper_id: int,
    offer_id: int,
    store_id: int,
    fence_id: int,
    at: dt.datetime | None = None,
    valid_minutes: int = 60,
) -> tuple[int, str]:
    """A sent decision and its coupon, as the ping path records them; (coupon id, code).

    The delivery id is the coupon's ``deliveries`` row (look it up by coupon id).
    """
    at = at or dt.datetime.now(dt.UTC)
    expires = at + dt.timedelta(minutes=valid_minutes)
    store_ids = await conn.fetchval("SELECT scope_store_ids FROM offers WHERE id = $1", offer_id)
    code = codes.new_code()
    async with conn.transaction():
        send = await offers_store.record_decisions(
            conn,
            merchant_id=merchant_id,
            shopper_id=shopper_id,
            at=at,
            rows=[
                offers_store.DecisionRow(
                    offer_id=offer_id,
                    store_id=store_id,
                    fence_id=fence_id,
                    trigger="enter",
                    reason=None,
                    attributable_until=expires,
                )
            ],
            coupon=offers_store.NewCoupon(
                code=code,
                store_ids=frozenset(store_ids),
                expires_at=expires,
                delivery_id=uuid.uuid4(),
                channels=("inbox",),
            ),
        )
        assert send is not None
        await outbox.enqueue(conn, [send])
    return send.coupon_id, code
