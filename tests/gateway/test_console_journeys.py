"""The console's journeys screen in a real browser: a reviewer reads each journey's sends,
holdout and uplift as the API reports them, a manager creates a journey through the form
and pauses it; screenshots at desktop and phone widths."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from selenium.webdriver.support.ui import Select

from gateway.jobs import journeys as scheduler
from tests.support import browser as browser_mod
from tests.support.console import Shop, live_shop


@pytest.fixture
async def shop(database_url: str, conn: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[Shop]:
    async with live_shop(database_url, conn, tmp_path) as live:
        yield live


def _journey_offer(shop: Shop, name: str) -> str:
    body: dict[str, Any] = {
        "name": name,
        "title": "A treat",
        "body": "On us",
        "trigger": "journey",
        "store_ids": [str(shop.tenant.store_ids[0])],
        "channels": ["inbox"],
        "holdout_pct": 30,
        "coupon": {"discount": "treat", "valid_minutes": 1440},
    }
    return str(shop.api.ok("POST", "/v1/offers", token=shop.token("manager"), json=body)["id"])


async def test_journeys_screen_shows_the_reports_and_a_manager_creates_and_pauses_one(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    manager = shop.token("manager")
    shop.no_quiet_hours()
    welcome = _journey_offer(shop, "Welcome offer")
    made = shop.api.ok(
        "POST",
        "/v1/journeys",
        token=manager,
        json={"name": "Welcome", "kind": "welcome", "offer_id": welcome, "delay_minutes": 0},
    )
    now = dt.datetime.now(dt.UTC)
    await conn.execute(
        "INSERT INTO shoppers (merchant_id, marketing_consent, created_at) "
        "SELECT $1, true, $2::timestamptz + g * interval '1 second' FROM generate_series(1, 30) g",
        shop.tenant.merchant_id,
        now,
    )
    await scheduler.run(conn, now + dt.timedelta(minutes=1))
    report = shop.api.ok("GET", f"/v1/reports/journeys/{made['id']}", token=shop.token("reviewer"))
    sent, held = report["funnel"]["sent"], report["funnel"]["holdout"]["holdout"]["decisions"]
    assert sent + held == 30 and sent and held
    spare = _journey_offer(shop, "Birthday offer")

    for size in ("desktop", "phone"):
        with browser_mod.launch(shop.url, size) as b:
            b.signed_in(shop.token("reviewer"), route="#/journeys")
            row = b.wait(lambda: b.testids("journey-row"), what="the journey list")[0]
            cells = {c.get_attribute("data-metric"): c.text for c in b.css("[data-metric]", row)}
            assert (cells["sent"], cells["held_out"]) == (str(sent), str(held)), cells
            assert "95 % interval" in cells["uplift"] or "not" in cells["uplift"], cells
            assert not b.visible("form[data-testid=journey-form]")  # a reviewer cannot edit
            b.settle()
            b.screenshot(f"reviewer-journeys-{size}", full=True)
            assert not b.console_errors()

    with browser_mod.launch(shop.url, "desktop") as b:
        b.signed_in(manager, route="#/journeys")
        form = b.testid("journey-form")
        b.css("input[name=name]", form)[0].send_keys("Happy birthday")
        Select(b.css("select[name=kind]", form)[0]).select_by_value("birthday")
        Select(b.css("select[name=offer_id]", form)[0]).select_by_value(spare)
        b.css("button[type=submit]", form)[0].click()
        b.wait(lambda: len(b.testids("journey-row")) == 2, what="the new journey's row")
        listed = shop.api.ok("GET", "/v1/journeys", token=manager)["items"]
        birthday = next(j for j in listed if j["kind"] == "birthday")
        assert (birthday["name"], birthday["offer_id"], birthday["days_before"]) == (
            "Happy birthday",
            spare,
            0,
        )
        row = next(r for r in b.testids("journey-row") if r.get_attribute("data-id") == made["id"])
        b.css("button[data-action=pause]", row)[0].click()
        b.wait(
            lambda: any(
                r.get_attribute("data-status") == "paused" for r in b.testids("journey-row")
            ),
            what="the paused journey",
        )
        got = shop.api.ok("GET", f"/v1/journeys/{made['id']}", token=manager)
        assert got["status"] == "paused"
        b.settle()
        b.screenshot("manager-journeys-desktop", full=True)
        assert not b.console_errors()
