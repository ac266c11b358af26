"""A tenant's rewards side for tests: a reward on sale, points to spend, the shopper's
loyalty pass (whose serial is the member barcode the till scans) and a points payment;
made through the stores the gateway uses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import asyncpg

from offers import rewards
from tests.support.tenants import Tenant
from wallet.store import ledger, passes, till


async def stock(conn: asyncpg.Connection, tenant: Tenant, points: int = 1000) -> Tenant:
    """Give ``tenant`` a free-coffee reward (100 points), ``points`` for its shopper, its
    loyalty pass and a payment of 50 points at store 0; the tenant, filled in."""
    assert tenant.shopper_id is not None
    now = dt.datetime.now(dt.UTC)
    reward = await rewards.insert(
        conn,
        tenant.merchant_id,
        {
            "kind": "free_item",
            "name": "Coffee",
            "points": 100,
            "stock": None,
            "per_shopper_limit": None,
            "tiers": None,
            "status": "active",
            "title": "A coffee on us",
            "body": "Any size",
            "image_url": None,
            "channels": ["inbox"],
            "store_ids": [tenant.store_ids[0]],
            "coupon": {"discount": "Free coffee", "valid_minutes": 60, "barcode_format": "qr"},
        },
    )
    tenant.reward_id = reward.id
    await ledger.change_points(
        conn,
        merchant_id=tenant.merchant_id,
        shopper_id=tenant.shopper_id,
        kind="adjust",
        points=points,
        reason="fixture",
        at=now,
    )
    card = await passes.loyalty_pass(conn, tenant.merchant_id, tenant.shopper_id, now)
    tenant.member = card.serial
    paid = await till.pay_with_points(
        conn,
        till.PayRequest(
            merchant_id=tenant.merchant_id,
            shopper_id=tenant.shopper_id,
            store_id=tenant.store_ids[0],
            amount=Decimal("0.50"),
            partial=False,
            order_ref=None,
            key_id=0,
            idempotency_key="fixture",
            request_hash=b"\x00",
            at=now,
        ),
    )
    tenant.payment_id = paid.id
    return tenant
