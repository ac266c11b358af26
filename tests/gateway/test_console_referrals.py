"""The reviewer console's referral screen in a real browser, at desktop and phone widths:
its figures equal the API's report, refusals are given by reason in words, and the page
does not scroll sideways. Screenshots land in tests/artefacts/."""

from __future__ import annotations

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
async def console(
    database_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> AsyncIterator[Shop]:
    browser_mod.require()
    tenant = await make_tenant(conn, "Referral Roasters")
    gateway = LiveGateway(make_settings(tmp_path), database_url)
    gateway.start()
    try:
        yield Shop(url=gateway.url, api=Api(gateway.url), tenant=tenant)
    finally:
        gateway.stop()


def _referrals(shop: Shop) -> dict[str, object]:
    """Three friends of the tenant's shopper: two buy (rewarded, then capped), one waits;
    the shopper's own e-mail comes back with its own code (refused)."""
    api, t = shop.api, shop.tenant
    api.ok(
        "PUT",
        "/v1/referrals/rules",
        token=t.tokens["manager"],
        json={
            "qualify": "first_purchase",
            "referrer_points": 150,
            "referee_points": 50,
            "cap_limit": 1,
            "cap_days": 30,
        },
    )
    referrer = api.ok(
        "POST",
        "/v1/shoppers",
        token=t.tokens["app"],
        json={"marketing_consent": True, "email": "ref@example.com"},
    )
    code = api.ok("GET", "/v1/me/referral", token=referrer["token"])["code"]
    friends = [
        api.ok(
            "POST",
            "/v1/shoppers",
            token=t.tokens["app"],
            json={"marketing_consent": True, "referral_code": code},
        )
        for _ in range(3)
    ]
    for i, friend in enumerate(friends[:2]):
        api.ok(
            "POST",
            "/v1/purchases",
            token=t.tokens["pos"],
            json={"shopper_id": friend["id"], "store_id": str(t.store_ids[0]), "amount": 9},
            headers={"Idempotency-Key": f"console-{i}"},
        )
    own = api.request(
        "POST",
        "/v1/shoppers",
        token=t.tokens["app"],
        json={"marketing_consent": True, "email": "ref@example.com", "referral_code": code},
    )
    assert own.status == 422
    report: dict[str, object] = api.ok("GET", "/v1/reports/referrals", token=t.tokens["reviewer"])
    return report


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_the_referral_screen_shows_the_reports_figures(console: Shop, size: str) -> None:
    report = _referrals(console)
    assert (report["invitations_used"], report["rewarded"], report["pending"]) == (3, 1, 1)
    with browser_mod.launch(console.url, size) as b:
        b.signed_in(console.token("reviewer"), route="#/referrals")
        b.wait(lambda: b.testids("referral-figure"), what="the referral figures")
        shown = {
            e.get_attribute("data-key"): int(
                e.find_element("css selector", "dd").get_attribute("data-value") or -1
            )
            for e in b.testids("referral-figure")
        }
        assert shown == {k: v for k, v in report.items() if k in shown}
        assert set(shown) >= {"invitations_used", "qualified", "rewarded", "points_paid"}
        refused = {
            e.get_attribute("data-reason"): (
                e.find_element("css selector", "dt").text,
                e.find_element("css selector", "dd").get_attribute("data-value"),
            )
            for e in b.testids("referral-refusal")
        }
        assert {k: v[1] for k, v in refused.items()} == {
            "self_referral": "1",
            "shared_device": "0",
            "cap_reached": "1",
        }
        assert all("_" not in words for words, _ in refused.values())  # words, not codes
        rules = b.testid("referral-rules").text
        assert "first purchase" in rules and "150 points" in rules and "30 days" in rules
        nav = [a.text for a in b.visible("nav a")] if size == "desktop" else []
        assert size != "desktop" or "Referrals" in nav
        scroll, client = b.driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert scroll <= client, f"{scroll - client} px of sideways scrolling at {size} width"
        b.settle()
        b.screenshot(f"reviewer-referrals-{size}", full=True)
        assert not b.console_errors()
