"""Fixtures shared by the gateway tests: a coffee shop with a geofence, its app and clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp import test_utils, web

from gateway import app as app_mod
from gateway import clock
from gateway.accounts import tenancy
from gateway.settings import Settings
from tests.conftest import Tenant
from tests.gateway.test_pings import LAT, LON, add_fence, circle_feature, offset
from tests.support.client import ApiClient, Reply
from tests.support.openapi_check import SpecChecker

# Monday 12 January 2026, 08:30 in Paris (the stores' zone): after the default quiet hours.
T0 = dt.datetime(2026, 1, 12, 7, 30, tzinfo=dt.UTC)
COLD = {"condition": "clouds", "temp_c": 4.0}


def offer_body(where: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Cold mornings",
        "title": "20% off a hot coffee",
        "body": "Warm up with us",
        "trigger": "enter",
        "channels": ["inbox", "webpush"],
        "coupon": {"discount": "20% off", "valid_minutes": 60, "discount_pct": 20},
        **where,
    }
    body.update(extra)
    return body


def make_settings(tmp_path: Any, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp_path,
        "db_pool_min": 1,
        "db_pool_max": 8,
        "ping_rate": 1000,
        "ping_burst": 1000,
        "redeem_rate": 1000,
        "redeem_burst": 1000,
        "max_ping_age_seconds": 3600,
        "stats_compact_seconds": 3600,
        # The local push service of the tests speaks plain http on loopback.
        "webpush_allow_http": True,
        # No APNs here unless a test brings its stand-in.
        "pass_pusher": False,
    }
    base.update(kw)
    return Settings(**base)


@dataclass
class Shop:
    api: ApiClient
    app: web.Application
    clock: clock.FixedClock
    tenant: Tenant
    fence: int  # a 100 m circle of store 0 at (LAT, LON)

    def token(self, role: str) -> str:
        return self.tenant.tokens[role]

    async def offer(self, **extra: Any) -> str:
        body = offer_body({"geofence_ids": [str(self.fence)]}, **extra)
        r = await self.api.post("/v1/offers", token=self.token("manager"), json=body)
        assert r.status == 201, r.body
        return str(r.json["id"])

    async def ping(
        self, dx: float, dy: float, *, token: str | None = None, weather: Any = COLD
    ) -> Reply:
        lat, lon = offset(dx, dy)
        body: dict[str, Any] = {
            "lat": lat,
            "lon": lon,
            "accuracy_m": 10,
            "ts": self.clock.now().isoformat(),
        }
        if weather is not None:
            body["weather"] = weather
        r = await self.api.post("/v1/pings", token=token or self.token("shopper"), json=body)
        assert r.status == 200, r.body
        return r

    async def walk_in(self, *, token: str | None = None, weather: Any = COLD) -> Reply:
        """From outside to inside the circle: the second ping enters."""
        await self.ping(-400, 0, token=token, weather=weather)
        self.clock.advance(seconds=20)
        return await self.ping(0, 0, token=token, weather=weather)

    async def walk_out(self, *, token: str | None = None) -> None:
        for _ in range(2):
            self.clock.advance(seconds=20)
            await self.ping(-400, 0, token=token)

    async def redeem(
        self, code: str, *, key: str, store: int = 0, token: str = "pos", **extra: Any
    ) -> Reply:
        return await self.api.post(
            "/v1/redemptions",
            token=self.token(token),
            json={"code": code, "store_id": str(self.tenant.store_ids[store]), **extra},
            headers={"Idempotency-Key": key},
        )


@pytest.fixture
async def shop(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Any, spec: SpecChecker
) -> AsyncIterator[Shop]:
    fence = await add_fence(conn, tenant_a, circle_feature(LAT, LON, 100))
    # The tenant's own offer covers store 0 too; these tests make their own.
    await conn.execute("UPDATE offers SET status = 'paused' WHERE id = $1", tenant_a.offer_id)
    await conn.execute("DELETE FROM deliveries")  # keep the shopper's inbox empty
    await conn.execute("DELETE FROM push_subscriptions")  # tests subscribe for real
    # The fixture's coupons were issued at the real now, after this shop's clock: move
    # them out of every cap window so they do not count against the shopper.
    await conn.execute("UPDATE decisions SET decided_at = decided_at - interval '2 years'")
    fixed = clock.FixedClock(T0)
    application = app_mod.create_app(make_settings(tmp_path), db_url=database_url, clock_=fixed)
    async with test_utils.TestClient(test_utils.TestServer(application)) as client:
        yield Shop(
            api=ApiClient(client, spec), app=application, clock=fixed, tenant=tenant_a, fence=fence
        )


async def enrol(conn: asyncpg.Connection, tenant: Tenant, name: str) -> str:
    _, token = await tenancy.enrol_shopper(
        conn,
        merchant_id=tenant.merchant_id,
        name=name,
        email=None,
        marketing_consent=True,
        timezone=None,
    )
    return token
