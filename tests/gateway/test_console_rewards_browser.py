"""The console's rewards view in a real browser: a reviewer reads the rewards catalog and
the points by month with the liability, and what the page shows equals the API's answers,
at desktop and phone width (screenshots in tests/artefacts/)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.support import browser as browser_mod
from tests.support.console import Shop
from tests.support.live import Api, LiveGateway
from tests.support.shop import make_settings
from tests.support.tenants import make_tenant


@pytest.fixture
async def shop(database_url: str, conn: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[Shop]:
    browser_mod.require()
    tenant = await make_tenant(conn, "Alpha Coffee")
    gateway = LiveGateway(make_settings(tmp_path), database_url)
    gateway.start()
    try:
        yield Shop(url=gateway.url, api=Api(gateway.url), tenant=tenant)
    finally:
        gateway.stop()


def _stock(shop: Shop) -> str:
    """A coffee and a gift card on the catalog, points earned, one coffee bought."""
    manager, store = shop.token("manager"), str(shop.tenant.store_ids[0])
    coffee = shop.api.ok(
        "POST",
        "/v1/catalog/rewards",
        token=manager,
        json={
            "kind": "free_item",
            "name": "Coffee on us",
            "title": "A coffee on us",
            "body": "Any size",
            "points": 150,
            "stock": 40,
            "per_shopper_limit": 2,
            "store_ids": [store],
            "coupon": {"discount": "Free coffee", "valid_minutes": 600},
        },
    )
    card = shop.api.ok(
        "POST",
        "/v1/catalog/rewards",
        token=manager,
        json={
            "kind": "gift_card",
            "name": "Cinema <b>night</b>",
            "title": "A cinema ticket",
            "body": "From our partner",
            "points": 900,
            "tiers": ["Gold", "Platinum"],
            "coupon": {"discount": "Cinema", "valid_minutes": 600},
        },
    )
    shop.api.ok(
        "POST",
        f"/v1/catalog/rewards/{card['id']}/codes",
        token=manager,
        json={"codes": ["C1", "C2", "C3"]},
    )
    shop.api.ok(
        "POST",
        "/v1/purchases",
        token=shop.token("pos"),
        json={"shopper_id": str(shop.tenant.shopper_id), "store_id": store, "amount": 420},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    shop.api.ok(
        "POST",
        f"/v1/rewards/{coffee['id']}/redeem",
        token=shop.token("shopper"),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    return str(coffee["id"])


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_a_reviewer_reads_rewards_and_the_points_liability(shop: Shop, size: str) -> None:
    coffee = _stock(shop)
    catalog = shop.api.ok("GET", "/v1/catalog/rewards", token=shop.token("reviewer"))
    points = shop.api.ok("GET", "/v1/reports/points", token=shop.token("reviewer"))
    with browser_mod.launch(shop.url, size) as b:
        b.open("/console/")
        b.signed_in(shop.token("reviewer"), route="#/rewards")
        rows = b.wait(lambda: b.testids("reward-row"), what="the rewards table")
        shown = {r.get_attribute("data-reward-id"): r.text for r in rows}
        assert list(shown) == [i["id"] for i in catalog["items"]]
        assert "1 / 40" in shown[coffee] and "39" in shown[coffee]
        # The name is text, not markup; the gift card's codes left show.
        assert "Cinema <b>night</b>" in " ".join(shown.values())
        months = b.testids("points-month")
        assert [m.get_attribute("data-month") for m in months] == [
            m["month"] for m in points["months"]
        ]
        liability = b.testid("points-liability").text
        assert f"{points['totals']['outstanding']} points" in liability
        assert points["totals"]["liability"] in liability
        b.settle(0.3)
        b.screenshot(f"reviewer-rewards-{size}", full=True)
        errors = b.console_errors()
    assert not errors, errors
