"""A merchant with two stores, a door geofence each, one token per role, a shopper, an
offer with a live coupon and a redemption: what most API tests start from."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from gateway.accounts import auth, tenancy
from geo import geojson
from geo import store as geo_store
from tests.support import offers as test_offers


@dataclass
class Tenant:
    """A merchant with one token per role (and a store-scoped manager and pos)."""

    merchant_id: int
    store_ids: list[int]
    tokens: dict[str, str] = field(default_factory=dict)
    shopper_id: int | None = None
    geofence_ids: list[int] = field(default_factory=list)
    # An offer on store 0, a live coupon of it, and a redemption of another one.
    offer_id: int = 0
    coupon_code: str = ""
    redemption_id: int = 0
    delivery_id: str = ""
    coupon_id: int = 0
    push_endpoint: str = "https://push.example.net/fixture"
    # A web origin the merchant allows (CORS).
    origin_id: int = 0
    # Set by tests.support.rewards.stock: a reward on sale, the shopper's member barcode,
    # and a points payment at the till.
    reward_id: int = 0
    member: str = ""
    payment_id: int = 0
    # A survey with a live invitation of the shopper, when a test asks for one
    # (tests/support/surveys.py add_survey).
    survey_id: int = 0
    # A win-back journey and a journey offer no journey sends yet (add_journey).
    journey_id: int = 0
    journey_offer_id: int = 0


async def make_tenant(conn: asyncpg.Connection, name: str, stores: int = 2) -> Tenant:
    merchant = await tenancy.create_merchant(conn, name)
    store_ids = [
        await conn.fetchval(
            "INSERT INTO stores (merchant_id, name, lat, lon, timezone) "
            "VALUES ($1, $2, $3, $4, 'Europe/Paris') RETURNING id",
            merchant.id,
            f"{name} store {i}",
            48.8566 + 0.01 * i,
            2.3522 + 0.01 * i,
        )
        for i in range(stores)
    ]
    tenant = Tenant(merchant_id=merchant.id, store_ids=store_ids)
    tenant.origin_id = await conn.fetchval(
        "INSERT INTO merchant_origins (merchant_id, origin) VALUES ($1, $2) RETURNING id",
        merchant.id,
        f"https://shop-{merchant.id}.example",
    )
    for i, store_id in enumerate(store_ids):
        feature = geojson.parse_feature(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [2.3522 + 0.01 * i, 48.8566 + 0.01 * i],
                },
                "properties": {"name": f"door {i}", "radius_m": 50},
            }
        )
        rec = await geo_store.insert_geofence(
            conn, merchant_id=merchant.id, store_id=store_id, feature=feature
        )
        tenant.geofence_ids.append(rec.id)
    for role in auth.Role:
        if role is auth.Role.SHOPPER:
            continue
        _, tenant.tokens[role.value] = await tenancy.create_key(
            conn, merchant_id=merchant.id, role=role
        )
    for role in (auth.Role.ADMIN, auth.Role.MANAGER, auth.Role.POS):
        _, tenant.tokens[f"{role.value}@store0"] = await tenancy.create_key(
            conn, merchant_id=merchant.id, role=role, store_ids=frozenset({store_ids[0]})
        )
    shopper, tenant.tokens["shopper"] = await tenancy.enrol_shopper(
        conn, merchant_id=merchant.id, name="Ada", email=None, marketing_consent=True, timezone=None
    )
    tenant.shopper_id = shopper.id
    tenant.offer_id = await test_offers.create_offer(conn, merchant.id, [store_ids[0]])
    issued = {
        "merchant_id": merchant.id,
        "shopper_id": shopper.id,
        "offer_id": tenant.offer_id,
        "store_id": store_ids[0],
        "fence_id": tenant.geofence_ids[0],
    }
    coupon_id, tenant.coupon_code = await test_offers.issue_coupon(conn, **issued)
    tenant.coupon_id = coupon_id
    tenant.delivery_id = str(
        await conn.fetchval("SELECT id FROM deliveries WHERE coupon_id = $1", coupon_id)
    )
    await conn.execute(
        "INSERT INTO push_subscriptions (merchant_id, shopper_id, endpoint, p256dh, auth) "
        "VALUES ($1, $2, $3, 'fixture', 'fixture')",
        merchant.id,
        shopper.id,
        tenant.push_endpoint,
    )
    redeemed, _ = await test_offers.issue_coupon(conn, **issued)
    tenant.redemption_id = await conn.fetchval(
        "INSERT INTO redemptions (merchant_id, coupon_id, offer_id, shopper_id, store_id, key_id, "
        "idempotency_key, request_hash, redeemed_at) "
        "VALUES ($1, $2, $3, $4, $5, 0, 'fixture', '\\x00', now()) RETURNING id",
        merchant.id,
        redeemed,
        tenant.offer_id,
        shopper.id,
        store_ids[0],
    )
    return tenant


async def add_journey(conn: asyncpg.Connection, tenant: Tenant) -> None:
    """Give the tenant a win-back journey, and a spare journey offer for a new one."""
    offers = [
        await conn.fetchval(
            "INSERT INTO offers (merchant_id, name, title, body, channels, trigger, store_ids,"
            " scope_store_ids, coupon) VALUES ($1, $2, 'Come back', 'A treat', '{inbox}',"
            ' \'journey\', $3, $3, \'{"discount": "treat", "valid_minutes": 60}\')'
            " RETURNING id",
            tenant.merchant_id,
            f"journey offer {i}",
            [tenant.store_ids[0]],
        )
        for i in range(2)
    ]
    tenant.journey_id = await conn.fetchval(
        "INSERT INTO journeys (merchant_id, name, kind, offer_id, inactive_days, scanned_until)"
        " VALUES ($1, 'Win back', 'winback', $2, 30, now()) RETURNING id",
        tenant.merchant_id,
        offers[0],
    )
    tenant.journey_offer_id = offers[1]
