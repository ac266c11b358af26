"""The reference shopper app (/app/) in a real browser (Debian's chromium through
chromedriver), at a phone's width: enrol with consent, send a ping from the page with the
geolocation overridden, see the coupon in the inbox and in the live feed, open it and see
"opened" in the reviewer's report; a push message delivered to the service worker through
DevTools; pings taken offline uploaded once back online; and the same app copied to a
retailer's own origin, talking to the gateway through CORS. Screenshots of each screen
land in tests/artefacts/.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import browser as browser_mod
from tests.support import shopper
from tests.support.browser import Browser
from tests.support.console import LAT, LON, Shop, offset
from tests.support.live import Api, LiveGateway
from tests.support.shop import make_settings
from tests.support.tenants import make_tenant

# Offer text is the merchant's: it must reach the shopper as text, never as markup.
TITLE = "<b>20%</b> off a hot coffee"


@pytest.fixture
async def shop(database_url: str, conn: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[Shop]:
    browser_mod.require()
    tenant = await make_tenant(conn, "Alpha Coffee")
    # The fixture's own offer would compete for the same door; these tests make their own.
    await conn.execute("UPDATE offers SET status = 'paused' WHERE id = $1", tenant.offer_id)
    gateway = LiveGateway(make_settings(tmp_path), database_url)
    gateway.start()
    try:
        s = Shop(url=gateway.url, api=Api(gateway.url), tenant=tenant)
        s.no_quiet_hours()
        yield s
    finally:
        gateway.stop()


@pytest.fixture
def b(shop: Shop) -> Iterator[Browser]:
    with browser_mod.launch(shop.url, "phone") as browser:
        shopper.grant(browser, shop.url, "geolocation", "notifications")
        yield browser


def _open_app(b: Browser, shop: Shop) -> str:
    b.open(f"/app/#app={shop.token('app')}")
    return shopper.enrol(b)


def _report(shop: Shop, offer_id: str) -> dict[str, Any]:
    answer = shop.api.ok("GET", f"/v1/reports/offers/{offer_id}", token=shop.token("reviewer"))
    return dict(answer["funnel"])


def _pings_of(token: str, shop: Shop) -> list[dict[str, Any]]:
    export = shop.api.ok("GET", "/v1/me/export", token=token)
    return list(export["location"]["pings"])


async def test_enrol_walk_in_and_open_the_coupon(shop: Shop, b: Browser) -> None:
    offer_id = shop.offer(title=TITLE, channels=["inbox"])
    b.open(f"/app/#app={shop.token('app')}")
    b.testid("enrol-form")
    assert shop.token("app") not in b.driver.current_url, "the app key stays out of the URL"
    b.screenshot("app-enrol-phone")
    token = shopper.enrol(b)
    me = shop.api.ok("GET", "/v1/me", token=token)
    assert (me["name"], me["marketing_consent"]) == ("Ada", True)
    b.wait(lambda: b.testids("inbox-empty"), what="the empty inbox")

    shopper.place(b, LAT, LON)  # at the door of the first store
    b.testid("send-location").click()
    coupon = b.wait(lambda: b.testids("coupon"), timeout=20, what="the coupon in the inbox")[0]
    delivery_id = coupon.get_attribute("data-id")
    assert TITLE in coupon.text, coupon.text
    assert not b.css(".coupon b"), "the offer's title was rendered as HTML"
    # The live feed (Server-Sent Events over fetch) brought it too.
    b.wait(
        lambda: [f for f in b.testids("feed-item") if f.get_attribute("data-id") == delivery_id],
        what="the coupon in the live feed",
    )
    b.wait(
        lambda: b.testid("announce").get_attribute("textContent") == f"New offer: {TITLE}",
        what="the new offer read out",
    )
    b.settle(0.5)
    b.screenshot("app-inbox-phone")
    assert _report(shop, offer_id)["opened"] == 0

    _show_coupon(b)
    view = b.testid("coupon-view")
    code = b.testid("coupon-code").text.replace("Code", "").strip()
    inbox = shop.api.ok("GET", "/v1/inbox", token=token)["items"]
    assert code == inbox[0]["coupon"]["code"]
    bars = b.one('[data-testid="barcode"] svg').get_attribute("data-code128")
    assert (
        bars and sum(int(w) for w in bars) == 11 * (len(code) + 2) + 13
    )  # start, code, check; stop
    assert view.get_attribute("data-id") == delivery_id
    b.wait(
        lambda: _report(shop, offer_id)["opened"] == 1, timeout=20, what='"opened" in the report'
    )
    b.settle(0.5)
    b.screenshot("app-coupon-phone")
    # The one refusal expected: no Google Wallet issuer here, so no save link (409).
    errors = [e for e in b.console_errors() if "/v1/passes/google/" not in e]
    assert not errors, errors
    # No horizontal scrolling at a phone's width.
    assert b.driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )


async def test_a_push_message_shows_the_offers_notification(shop: Shop, b: Browser) -> None:
    offer_id = shop.offer(title=TITLE, channels=["inbox"])
    token = _open_app(b, shop)
    shop.ping(0, 0, token=token)
    [item] = shop.api.ok("GET", "/v1/inbox", token=token)["items"]
    # The gateway's Web Push payload for that coupon (gateway/delivery/outbox.py).
    payload = {
        "delivery_id": item["delivery_id"],
        "offer_id": offer_id,
        "title": item["title"],
        "body": "Warm up with us",
        "image_url": None,
        "coupon": item["coupon"],
        "open_url": f"{shop.url}/v1/inbox/{item['delivery_id']}/open",
    }
    registration = shopper.push_to_worker(b, shop.url + "/app/", json.dumps(payload))
    shown = b.wait(lambda: shopper.notifications(b), what="the notification")
    [note] = shown
    assert note["title"] == TITLE
    assert item["coupon"]["code"] in note["body"]
    assert note["tag"] == item["delivery_id"]
    # The same message again (push is at least once) replaces it instead of adding one.
    shopper.deliver(b, shop.url + "/app/", registration, json.dumps(payload))
    b.settle(1)
    assert len(shopper.notifications(b)) == 1
    # A click opens the app's screen of the coupon (headless chromium cannot click a
    # notification: the test opens the address the worker's click handler opens).
    b.open(f"/app/#/coupon/{item['delivery_id']}")
    b.wait(lambda: b.testid("coupon-title").text == TITLE, what="the coupon's screen")
    b.wait(lambda: _report(shop, offer_id)["opened"] == 1, timeout=20, what='"opened"')


async def test_pings_taken_offline_are_uploaded_once_when_back_online(
    shop: Shop, b: Browser
) -> None:
    token = _open_app(b, shop)
    shopper.network(b, online=False)
    b.wait(lambda: "Offline" in b.testid("network").text, what="the offline notice")
    for dx in (-300, -200, -100):
        lat, lon = offset(dx, 0)
        shopper.place(b, lat, lon)
        b.testid("send-location").click()
        b.wait(lambda: "kept" in b.testid("location-status").text.lower(), what="kept offline")
        b.driver.execute_script(
            "document.querySelector('[data-testid=location-status]').textContent = ''"
        )
    b.wait(lambda: b.testid("pending").text.startswith("3 locations"), what="three waiting")
    b.screenshot("app-offline-phone")
    queued = b.driver.execute_script("return JSON.parse(localStorage.getItem('gw.pings'))")
    assert len({p["id"] for p in queued}) == 3 and all(uuid.UUID(p["id"]) for p in queued)
    assert _pings_of(token, shop) == []

    shopper.network(b, online=True)
    b.wait(
        lambda: not b.visible('[data-testid="pending"]') or not b.testid("pending").text,
        timeout=20,
        what="the queue to empty",
    )
    # Answered pings reach the table in the ping log's next batch.
    stored = b.wait(
        lambda: _pings_of(token, shop) if len(_pings_of(token, shop)) >= 3 else None,
        what="the three pings in the database",
    )
    assert len(stored) == 3, stored
    assert sorted(round(p["lon"], 6) for p in stored) == sorted(round(p["lon"], 6) for p in queued)
    # Back online, nothing is sent twice: another upload finds an empty queue.
    b.driver.execute_async_script(
        "const done = arguments[0];"
        "import('/app/pings.js').then(m => m.flush()).then(() => done(), () => done())"
    )
    assert len(_pings_of(token, shop)) == 3


async def test_the_app_on_a_retailers_origin_works_through_cors(
    shop: Shop, b: Browser, tmp_path: Path
) -> None:
    offer_id = shop.offer(title=TITLE, channels=["inbox"])
    with shopper.retailer_site(shop.url, tmp_path / "site") as site:
        shopper.grant(b, site, "geolocation", "notifications")
        b.driver.get(f"{site}/index.html#app={shop.token('app')}")
        b.testid("enrol-form")
        b.testid("enrol").click()
        # Not yet allowed: the browser refuses to let the page read the answer.
        b.wait(lambda: b.testid("enrol-status").text not in ("", "Joining…"), what="a refusal")
        assert not b.driver.execute_script("return localStorage.getItem('gw.shopper')")
        assert any("Access-Control-Allow-Origin" in e for e in b.console_errors())
        shop.api.ok("POST", "/v1/origins", token=shop.token("admin"), json={"origin": site})
        b.wait(lambda: _allowed(shop, site), what="the origin to be allowed")
        token = shopper.enrol(b, consent=True)
        shopper.place(b, LAT, LON)
        b.testid("send-location").click()
        b.wait(lambda: b.testids("coupon"), timeout=20, what="the coupon")
        b.wait(lambda: b.testids("feed-item"), what="the live feed across origins")
        _show_coupon(b)
        b.testid("coupon-view")
        b.wait(lambda: _report(shop, offer_id)["opened"] == 1, timeout=20, what='"opened"')
        # The page's own call to subscribe a push endpoint crosses origins too.
        answer = b.driver.execute_async_script(
            """
            const [base, token, done] = arguments;
            fetch(base + '/v1/push-subscriptions', {method: 'POST', headers: {
                Authorization: 'Bearer ' + token, 'Content-Type': 'application/json'},
              body: JSON.stringify({endpoint: 'https://push.example.net/app-copy', keys: {
                p256dh: 'BJethcsWfXhO2VsUpCXltz9p_r7TvpacqWo1X3Du2QpVebDEozCDtZajldeMsc'
                  + 'sSJn0P5sdbZCy62Vadw_qjLjY', auth: 'BTBZMqHH6r4Tts7J_aSIgg'}})})
              .then(r => done(r.status), e => done(String(e)));
            """,
            shop.url,
            token,
        )
        assert answer == 201
        assert not [e for e in b.console_errors() if "CORS" in e], b.console_errors()


def _show_coupon(b: Browser) -> None:
    """Tap "Show coupon" (the list may redraw under the finger as the feed brings it too)."""
    b.wait(
        lambda: b.one('[data-testid="coupon"] [data-testid="open"]').click() or True,
        what='a tap on "Show coupon"',
    )


def _allowed(shop: Shop, site: str) -> bool:
    answer = shop.api.request(
        "OPTIONS",
        "/v1/shoppers",
        headers={"Origin": site, "Access-Control-Request-Method": "POST"},
    )
    return answer.headers.get("Access-Control-Allow-Origin") == site
