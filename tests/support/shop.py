"""A coffee shop for the gateway tests: the app with a fixed clock, a 100 m geofence of the
tenant's first store, and shortcuts to walk in and out, ping, make offers and redeem."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from gateway import clock
from gateway.accounts import tenancy
from gateway.settings import Settings
from tests.support.client import ApiClient, Reply
from tests.support.fences import offset
from tests.support.tenants import Tenant

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
