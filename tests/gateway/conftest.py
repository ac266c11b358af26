"""Fixtures shared by the gateway tests: a coffee shop with a geofence, its app and clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import test_utils

from gateway import app as app_mod
from gateway import clock
from tests.support.client import ApiClient
from tests.support.fences import LAT, LON, add_fence, circle_feature
from tests.support.openapi_check import SpecChecker
from tests.support.shop import T0, Shop, make_settings
from tests.support.tenants import Tenant


@pytest.fixture
def shop_settings() -> dict[str, Any]:
    """Settings of the shop's app beyond the tests' defaults; a test module may override it."""
    return {}


@pytest.fixture
async def shop(
    database_url: str,
    conn: asyncpg.Connection,
    tenant_a: Tenant,
    tmp_path: Any,
    spec: SpecChecker,
    shop_settings: dict[str, Any],
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
    settings = make_settings(tmp_path, **shop_settings)
    application = app_mod.create_app(settings, db_url=database_url, clock_=fixed)
    async with test_utils.TestClient(test_utils.TestServer(application)) as client:
        yield Shop(
            api=ApiClient(client, spec), app=application, clock=fixed, tenant=tenant_a, fence=fence
        )
