"""The console in a real browser (Debian's chromium through chromedriver), driven as a
person would: sign in, draw on the map, fill the forms, read the reports; every result is
checked through the public API. Screenshots of the main screens land in tests/artefacts/.

The hooks used are the console's contract (issue 16): ``input[name=token]`` in a form with
a submit button, the ``#/...`` routes and the ``data-testid`` attributes; Leaflet-Geoman's
toolbar for drawing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import Select

from tests.support import browser as browser_mod
from tests.support.browser import Browser
from tests.support.console import (
    Shop,
    draw_circle,
    draw_polygon,
    live_shop,
    map_element,
    near,
    offset,
    pixel_of,
)

XSS = "<img src=x onerror=alert(1)>"
# What an editing manager has and a reviewer must not: buttons and links by their text.
EDIT_WORDS = ("New offer", "Save", "Pause", "Resume", "Delete", "Import", "Draw")


@pytest.fixture
async def shop(database_url: str, conn: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[Shop]:
    async with live_shop(database_url, conn, tmp_path) as live:
        yield live


@pytest.fixture
def b(shop: Shop) -> Iterator[Browser]:
    with browser_mod.launch(shop.url, "desktop") as browser:
        yield browser


# -- signing in -------------------------------------------------------------------------


async def test_a_manager_signs_in_and_a_wrong_token_stays_on_the_form(
    shop: Shop, b: Browser
) -> None:
    b.sign_in("gw_not_a_real_token")
    b.wait(
        lambda: any(w in b.text().lower() for w in ("invalid", "wrong", "not valid", "rejected")),
        what="an error message on the sign-in form",
    )
    assert b.visible('input[name="token"]'), "a wrong token must leave the sign-in form"
    assert b.driver.execute_script("return sessionStorage.getItem('gw.token')") is None
    b.screenshot("sign-in-error-desktop")

    b.signed_in(shop.token("manager"))
    assert b.driver.execute_script("return sessionStorage.getItem('gw.token')") == shop.token(
        "manager"
    )
    assert shop.token("manager") not in b.driver.current_url
    # A reload keeps the session (sessionStorage) and the screen (the fragment).
    b.go("#/geofences")
    b.wait(lambda: len(b.testids("geofence-row")) == 2, what="the geofence list")
    b.driver.refresh()
    b.wait(lambda: len(b.testids("geofence-row")) == 2, what="the geofence list after a reload")
    assert b.driver.current_url.endswith("#/geofences")
    assert not b.visible('input[name="token"]')


# -- the map ----------------------------------------------------------------------------


async def test_a_manager_draws_a_circle_and_a_polygon(shop: Shop, b: Browser) -> None:
    b.signed_in(shop.token("manager"), route="#/geofences")
    before = {f["id"] for f in shop.fences()}
    b.wait(lambda: len(b.testids("geofence-row")) == len(before), what="one row per fence")
    b.screenshot("geofences-desktop")

    draw_circle(b, (-150, 0), 60)
    circle = _new_fence(b, shop, before)
    assert circle["geometry"]["type"] == "Point", circle
    assert circle["properties"]["radius_m"] > 0, circle

    before.add(circle["id"])
    draw_polygon(b, [(60, -60), (180, -60), (180, 60), (60, 60)])
    polygon = _new_fence(b, shop, before)
    assert polygon["geometry"]["type"] == "Polygon", polygon
    assert len(polygon["geometry"]["coordinates"][0]) == 5, polygon  # closed ring of 4
    b.wait(
        lambda: (
            {r.get_attribute("data-id") for r in b.testids("geofence-row")}
            >= {circle["id"], polygon["id"]}
        ),
        what="rows for the new fences",
    )
    b.screenshot("geofences-drawn-desktop")


async def test_a_bowtie_shows_the_error_at_its_crossing_and_stores_nothing(
    shop: Shop, b: Browser
) -> None:
    b.signed_in(shop.token("manager"), route="#/geofences")
    before = shop.fences()
    m = map_element(b)
    # Two triangles meeting at the point 150 px right of the map's centre.
    marks = (
        "[data-testid=map] .leaflet-marker-icon, [data-testid=map] .leaflet-tooltip, "
        "[data-testid=map] .leaflet-popup"
    )
    crossing = pixel_of(b, m, (150, 0))
    there_before = near(b, marks, crossing, 30)
    draw_polygon(b, [(50, -100), (250, 100), (250, -100), (50, 100)])
    _save_if_asked(b)
    b.wait(lambda: "intersect" in b.text().lower(), what="the self-intersection error")
    b.wait(
        lambda: [d for d in near(b, marks, crossing, 30) if d not in there_before],
        what="a mark on the map at the crossing point",
    )
    b.screenshot("geofences-bowtie-desktop")
    assert shop.fences() == before, "an invalid polygon must not be stored"


async def test_geojson_import_and_export(shop: Shop, b: Browser, tmp_path: Path) -> None:
    b.signed_in(shop.token("manager"), route="#/geofences")
    exported = shop.api.ok("GET", "/v1/geofences?format=geojson", token=shop.token("manager"))
    store = str(shop.tenant.store_ids[1])
    exported["features"].append(
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [2.3622, 48.8666]},
            "properties": {"store_id": store, "name": "imported terrace", "radius_m": 35},
        }
    )
    path = tmp_path / "fences.geojson"
    path.write_text(json.dumps(exported))
    b.wait(lambda: b.css('input[type="file"]'), what="a file input").pop().send_keys(str(path))
    _confirm_if_asked(b)
    b.wait(
        lambda: any(f["properties"]["name"] == "imported terrace" for f in shop.fences()),
        what="the imported fence in the API",
    )
    b.wait(lambda: len(b.testids("geofence-row")) == 3, what="the imported fence's row")

    # A broken file changes nothing (all or nothing) and says why.
    broken = tmp_path / "broken.geojson"
    exported["features"].append({"type": "Feature", "geometry": None, "properties": {}})
    broken.write_text(json.dumps(exported))
    before = shop.fences()
    b.css('input[type="file"]').pop().send_keys(str(broken))
    _confirm_if_asked(b)
    b.wait(lambda: b.visible('[role="alert"], .error'), what="the import error")
    assert shop.fences() == before

    export = [e for e in b.visible("button, a") if e.text.strip().lower().startswith("export")]
    assert export, "no Export button"
    got = json.loads(b.download(export[0]))
    api = shop.api.ok("GET", "/v1/geofences?format=geojson", token=shop.token("manager"))
    assert got == api


async def test_the_fence_list_pages_the_view_and_renames_and_moves_a_fence(
    shop: Shop, b: Browser
) -> None:
    store0, store1 = (str(s) for s in shop.tenant.store_ids)
    token = shop.token("manager")

    def circle(lat: float, lon: float, name: str) -> dict[str, Any]:
        return {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"store_id": store0, "name": name, "radius_m": 20},
        }

    for i in range(30):
        lat, lon = offset(40 * (i % 6) - 100, 40 * (i // 6) - 100)
        shop.api.ok("POST", "/v1/geofences", token=token, json=circle(lat, lon, f"bay {i:02d}"))
    far = shop.api.ok("POST", "/v1/geofences", token=token, json=circle(*offset(0, 8000), "far"))
    b.signed_in(token, route="#/geofences")
    # 32 in view (the two fixture doors and the 30 bays), 10 a page; the far one not at all.
    b.wait(lambda: len(b.testids("geofence-row")) == 10, what="a first page of 10 rows")
    pager = b.one('nav[aria-label="Pages of geofences"]')
    assert "1\u201310 of 32" in pager.text, pager.text
    first_page = {e.get_attribute("data-id") for e in b.testids("geofence-row")}
    next(e for e in b.css("button", pager) if "Next" in e.text).click()
    b.wait(lambda: "11\u201320 of 32" in pager.text, what="the second page")
    second_page = {e.get_attribute("data-id") for e in b.testids("geofence-row")}
    assert len(second_page) == 10 and not first_page & second_page
    listed = {f["id"] for f in shop.fences()} - {far["id"]}
    assert first_page | second_page < listed

    fence_id = sorted(second_page, key=int)[-1]
    row = b.one(f'[data-testid="geofence-row"][data-id="{fence_id}"]')
    next(e for e in b.css("button", row) if e.text == "Rename").click()
    name = b.one('form.fence-edit input[name="name"]')
    name.clear()
    name.send_keys("terrace, moved")
    Select(b.one('form.fence-edit select[name="store_id"]')).select_by_value(store1)
    b.one("form.fence-edit button[type=submit]").click()

    def saved() -> dict[str, Any] | None:
        f = next(f for f in shop.fences() if f["id"] == fence_id)
        return f if f["properties"]["name"] == "terrace, moved" else None

    props = b.wait(saved, what="the renamed fence in the API")["properties"]
    assert props["store_id"] == store1
    b.wait_text("terrace, moved")
    b.screenshot("geofences-paged-desktop", full=True)


async def test_a_manager_creates_a_store_on_the_map_with_its_hours(shop: Shop, b: Browser) -> None:
    b.signed_in(shop.token("admin"), route="#/stores")
    form = b.one("form[aria-labelledby=store-form-title]")
    b.one('input[name="name"]').send_keys("Canal kiosk")
    area = map_element(b)
    ActionChains(b.driver).move_to_element_with_offset(area, 40, -30).click().perform()
    b.wait(lambda: b.one('input[name="lat"]').get_attribute("value"), what="the clicked position")
    tz = b.one('input[name="timezone"]')
    tz.clear()
    tz.send_keys("Europe/Paris")
    b.one('input[name="opening_hours.mon"]').send_keys("07:00-12:00, 14:00-19:00")
    b.one('input[name="opening_hours.sat"]').send_keys("22:00-02:00")
    lat = float(b.one('input[name="lat"]').get_attribute("value") or "nan")
    lon = float(b.one('input[name="lon"]').get_attribute("value") or "nan")
    b.css("button[type=submit]", form)[0].click()

    def created() -> dict[str, Any] | None:
        stores = shop.api.items("/v1/stores?limit=100", token=shop.token("admin"))
        return next((s for s in stores if s["name"] == "Canal kiosk"), None)

    store = b.wait(created, what="the new store in the API")
    assert (store["lat"], store["lon"]) == (lat, lon)
    assert abs(lat - 48.8616) < 0.02 and abs(lon - 2.3572) < 0.03  # on the map's view
    assert store["timezone"] == "Europe/Paris"
    assert store["opening_hours"] == {"mon": ["07:00-12:00", "14:00-19:00"], "sat": ["22:00-02:00"]}
    b.wait(lambda: b.testids("store-row"), what="the store list")
    assert "Canal kiosk" in b.text()


def _new_fence(b: Browser, shop: Shop, before: set[str]) -> dict[str, Any]:
    _save_if_asked(b)
    return b.wait(
        lambda: next((f for f in shop.fences() if f["id"] not in before), None),
        what="the drawn fence in the API",
    )


def _save_if_asked(b: Browser) -> None:
    """When the console asks for a name (and store) before saving a drawn shape, give them."""
    try:
        name = b.one('input[name="name"]', timeout=2)
    except AssertionError:
        return
    if not name.get_attribute("value"):
        name.send_keys("drawn in the browser")
    form = name.find_element("xpath", "./ancestor::form")
    b.css('button[type="submit"], button:not([type])', form)[0].click()


def _confirm_if_asked(b: Browser) -> None:
    """Click the import's confirmation button when the console asks for one."""

    def confirm() -> Any:
        for button in b.visible("button"):
            if button.text.strip().lower().startswith(("import", "replace", "confirm")):
                return button
        return None

    try:
        b.wait(confirm, timeout=3, what="a confirmation").click()
    except AssertionError:
        return


# -- offers -----------------------------------------------------------------------------


async def test_a_manager_creates_an_offer_through_the_form_and_pauses_it(
    shop: Shop, b: Browser
) -> None:
    b.signed_in(shop.token("manager"), route="#/offers/new")
    form = b.one("form")
    b.screenshot("offer-form-desktop")
    for name, value in (
        ("name", "Rainy afternoons"),
        ("title", "A free pastry with your tea"),
        ("body", "Dry off with us"),
        ("discount", "free pastry"),
    ):
        fields = b.css(f'[name="{name}"]', form) + b.css(f'[name="coupon.{name}"]', form)
        assert fields, f"the offer form has no field named {name}"
        fields[0].clear()
        fields[0].send_keys(value)
    # Where: the first geofence (or store) offered.
    places = b.css(
        'input[type="checkbox"][name*="geofence"], input[type="checkbox"][name*="store"]'
    )
    if places and not any(p.is_selected() for p in places):
        places[0].click()
    # Waiting for the store's opening hours is the default; the opt-out says why in words.
    [when_closed] = b.css('input[type="checkbox"][name="fire_when_closed"]', form)
    assert not when_closed.is_selected()
    explained = b.css('[data-field="fire_when_closed"]', form)[0].text
    assert "closed" in explained and "opening hours" in explained, explained
    when_closed.click()
    b.css('button[type="submit"]', form)[0].click()
    created = b.wait(
        lambda: next((o for o in shop.offers() if o["name"] == "Rainy afternoons"), None),
        what="the offer in the API",
    )
    assert created["title"] == "A free pastry with your tea"
    assert created["fire_when_closed"] is True
    assert created["status"] == "active"

    b.go("#/offers")
    row = b.one(f'[data-testid="offer-row"][data-id="{created["id"]}"]')
    b.screenshot("offers-desktop")
    pause = [e for e in b.css("button", row) if e.text.strip().lower() == "pause"]
    assert pause, f"no Pause button in the offer's row: {row.text!r}"
    pause[0].click()
    b.wait(
        lambda: (
            shop.api.ok("GET", f"/v1/offers/{created['id']}", token=shop.token("manager"))["status"]
            == "paused"
        ),
        what="the offer paused in the API",
    )
    b.wait(
        lambda: (
            "resume" in b.one(f'[data-testid="offer-row"][data-id="{created["id"]}"]').text.lower()
        ),
        what="a Resume button in its place",
    )


async def test_an_offer_title_with_html_renders_as_text(shop: Shop, b: Browser) -> None:
    offer_id = shop.offer(name=XSS, title=XSS)
    b.signed_in(shop.token("manager"), route="#/offers")
    row = b.one(f'[data-testid="offer-row"][data-id="{offer_id}"]')
    assert XSS in row.text, row.text
    assert not b.css("img[src='x']"), "the title became an element"
    assert b.driver.execute_script("return window.__xss === undefined")
    b.go(f"#/offers/{offer_id}/report")
    b.wait_text(XSS)
    assert not b.css("img[src='x']")
    alerts = b.driver.execute_script("return typeof window.alert")
    assert alerts == "function"
    # No alert dialog opened (an open alert makes every command fail).
    assert b.driver.title is not None


# -- decision preview -------------------------------------------------------------------


async def test_the_preview_gives_the_same_reasons_as_a_real_ping(shop: Shop, b: Browser) -> None:
    shop.no_quiet_hours()
    shop.api.ok("POST", f"/v1/offers/{shop.tenant.offer_id}/pause", token=shop.token("manager"))
    fires = shop.offer(name="Fires", priority=10)
    lower = shop.offer(name="Loses on priority", priority=1)
    weather = shop.offer(name="Needs snow", weather={"conditions": ["snow"]}, priority=20)

    b.signed_in(shop.token("manager"), route="#/preview")
    m = map_element(b)
    fence = b.wait(
        lambda: next(iter(b.visible("[data-testid=map] path.leaflet-interactive")), None),
        what="the door fence on the preview map",
    )
    # Pick the fence's centre on the map, as a manager would.
    b.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", m)
    ActionChains(b.driver).move_to_element(fence).click().perform()
    submit = [e for e in b.visible("button") if "preview" in e.text.lower()]
    if submit:
        submit[0].click()
    b.wait(lambda: "Fires" in b.text() and "Needs snow" in b.text(), what="the preview's offers")
    b.screenshot("preview-desktop")
    # The console marks each previewed offer (data-testid="preview-offer", with
    # data-offer-id and data-reason: a hook beyond the list, see gateway/README.md).
    previewed = {
        e.get_attribute("data-offer-id"): e.get_attribute("data-reason") or None
        for e in b.testids("preview-offer")
    }
    shown = b.text()

    shop.walk_in()
    decisions = {
        d["offer_id"]: d["reason"]
        for d in shop.api.items("/v1/logs/decisions?limit=100", token=shop.token("manager"))
        if d["offer_id"] in (fires, lower, weather)  # not the tenant fixture's old decisions
    }
    assert decisions == {fires: None, lower: "lower_priority", weather: "weather_mismatch"}
    assert previewed == decisions
    for reason in ("lower_priority", "weather_mismatch"):
        assert reason in shown, (reason, shown)  # the code itself is on the screen


# -- reviewers --------------------------------------------------------------------------


def _activity(shop: Shop) -> str:
    """A shopper walks in (the offer is sent), opens nothing, and redeems the coupon."""
    shop.no_quiet_hours()
    offer_id = shop.offer(name="Cold mornings", priority=10)
    answer = shop.walk_in()
    sent = [o for o in answer["offers"] if o["offer_id"] == offer_id]
    assert sent, answer
    shop.redeem(sent[0]["coupon"]["code"])
    return offer_id


async def test_a_reviewers_funnel_equals_the_api_report(shop: Shop, b: Browser) -> None:
    offer_id = _activity(shop)
    report = shop.api.ok("GET", f"/v1/reports/offers/{offer_id}", token=shop.token("reviewer"))
    b.signed_in(shop.token("reviewer"), route=f"#/offers/{offer_id}/report")
    funnel = b.testid("funnel")
    metrics = ("eligible", "sent", "delivered", "opened", "redeemed")

    def shown() -> dict[str, int] | None:
        got = {}
        for m in metrics:
            cells = b.css(f'[data-metric="{m}"]', funnel)
            if not cells or not cells[0].text.strip():
                return None
            got[m] = int(cells[0].text.strip().replace(",", "").replace("\u202f", ""))
        return got

    numbers = b.wait(shown, what="the funnel's numbers")
    assert numbers == {m: report["funnel"][m] for m in metrics}
    assert numbers["sent"] >= 1 and numbers["redeemed"] >= 1
    # Saved to wallet: the total, and under its share the figures by wallet.
    saved = report["funnel"]["saved"]
    assert b.css('[data-metric="saved"]', funnel)[0].text.strip() == str(saved["total"])
    by_wallet = ", ".join(f"{w.title()} {n}" for w, n in saved["by_wallet"].items())
    assert b.testid("saved-by-wallet").text.strip() == by_wallet
    b.screenshot("report-desktop")


# The drawn bars of every Chart.js bar chart on the page: per chart, per dataset, the
# figure and the bar's length in pixels along the value axis.
_BARS = """
return [...document.querySelectorAll('canvas')].map((c) => Chart.getChart(c))
  .filter((ch) => ch && ch.config.type === 'bar')
  .map((ch) => ch.data.datasets.map((ds, i) => ch.getDatasetMeta(i).data.map((bar, j) => {
    const p = bar.getProps(['x', 'y', 'base', 'width', 'height'], true);
    const length = ch.options.indexAxis === 'y' ? Math.abs(p.x - p.base) : Math.abs(p.y - p.base);
    return [ds.label, ds.data[j], length];
  })));
"""


@pytest.mark.parametrize("by", ["store", "day"])
async def test_the_breakdown_chart_draws_bars_in_proportion(
    shop: Shop, b: Browser, by: str
) -> None:
    offer_id = _activity(shop)
    report = shop.api.ok(
        "GET", f"/v1/reports/offers/{offer_id}?by={by}", token=shop.token("reviewer")
    )
    assert report["breakdown"] and report["breakdown"][0]["sent"] >= 1
    b.signed_in(shop.token("reviewer"), route=f"#/offers/{offer_id}/report?by={by}")
    b.wait_text(f"By {by}")
    b.settle()  # Chart.js animates the bars in
    charts = b.driver.execute_script(_BARS)
    breakdown = charts[-1]  # the funnel is drawn first, the breakdown after it
    bars = [bar for dataset in breakdown for bar in dataset]
    assert {name for name, _, _ in bars} == {"sent", "opened", "redeemed"}
    scale = [length / value for _, value, length in bars if value]
    assert scale and min(scale) > 5, bars  # a bar for one coupon is visible
    assert max(scale) / min(scale) < 1.05, bars  # lengths in proportion to the figures
    assert all(length < 1 for _, value, length in bars if not value), bars
    b.screenshot(f"report-by-{by}-desktop", full=True)


async def test_the_csv_download_equals_the_filtered_rows(shop: Shop, b: Browser) -> None:
    offer_id = _activity(shop)
    b.signed_in(shop.token("reviewer"), route="#/redemptions")
    b.wait(lambda: len(b.testids("redemption-row")) == 2, what="both redemptions listed")
    b.screenshot("redemptions-desktop")
    offer_filter = b.one('select[name="offer_id"], input[name="offer_id"]')
    if offer_filter.tag_name == "select":
        Select(offer_filter).select_by_value(offer_id)
    else:
        offer_filter.send_keys(offer_id)
    applied = [e for e in b.visible("button") if e.text.strip().lower().startswith("apply")]
    if applied:
        applied[0].click()
    b.wait(lambda: len(b.testids("redemption-row")) == 1, what="the filtered row")
    answer = shop.api.request(
        "GET", f"/v1/logs/redemptions?offer_id={offer_id}&format=csv", token=shop.token("reviewer")
    )
    want = list(csv.reader(io.StringIO(answer.text)))

    def offered() -> list[list[str]] | None:
        """The CSV the link gives, once it holds the filtered rows (it is re-fetched)."""
        link = b.testid("csv-download")
        if not (link.get_attribute("href") or "").startswith("blob:"):
            return None
        rows = list(csv.reader(io.StringIO(b.download(link))))
        return rows if len(rows) == len(want) else None

    got = b.wait(offered, what="the CSV download of the filtered rows")
    assert len(want) == 2, want  # the header and the one redemption of the offer
    assert got == want


async def test_the_status_filter_separates_voided_redemptions(shop: Shop, b: Browser) -> None:
    _activity(shop)
    rows = shop.api.ok("GET", "/v1/logs/redemptions", token=shop.token("reviewer"))["items"]
    voided = rows[0]["id"]
    shop.api.ok("POST", f"/v1/redemptions/{voided}/void", token=shop.token("pos"), json={})
    b.signed_in(shop.token("reviewer"), route="#/redemptions")
    b.wait(lambda: len(b.testids("redemption-row")) == 2, what="both redemptions listed")
    for status, want in (("voided", voided), ("active", rows[1]["id"])):
        Select(b.one('select[name="status"]')).select_by_value(status)
        b.one("form.rv-filters button[type=submit]").click()

        def only(want: str = want) -> bool:
            shown = b.testids("redemption-row")
            return len(shown) == 1 and shown[0].text.split()[0] == want

        b.wait(only, what=f"the {status} redemption alone")
        assert ("voided" in b.testids("redemption-row")[0].text) == (status == "voided")


async def test_a_reviewer_sees_no_edit_controls_and_a_forged_write_is_refused(
    shop: Shop, b: Browser
) -> None:
    b.signed_in(shop.token("reviewer"), route="#/offers")
    b.wait(lambda: b.testids("offer-row"), what="the offer list")
    b.screenshot("offers-reviewer-desktop")
    for route in ("#/offers", "#/geofences"):
        b.go(route)
        b.wait(lambda: b.testids("offer-row") or b.testids("geofence-row") or b.testids("map"))
        controls = [
            e.text
            for e in b.visible("button, a, input[type=submit]")
            if any(w.lower() in e.text.lower() for w in EDIT_WORDS)
        ]
        assert not controls, f"{route}: a reviewer sees {controls}"
        assert not b.visible(".leaflet-pm-toolbar"), f"{route}: the drawing toolbar"
    forged = b.fetch(
        f"/v1/offers/{shop.tenant.offer_id}/pause",
        method="POST",
        body={},
        token=shop.token("reviewer"),
    )
    assert forged["status"] == 403, forged
    offer = shop.api.ok("GET", f"/v1/offers/{shop.tenant.offer_id}", token=shop.token("manager"))
    assert offer["status"] == "active"


# -- also served ------------------------------------------------------------------------


async def test_docs_render_swagger_ui_and_the_root_is_a_landing_page(
    shop: Shop, b: Browser
) -> None:
    b.open("/docs")
    b.one(".swagger-ui .info .title", timeout=20)
    b.wait(lambda: b.visible(".opblock"), what="the operations")
    assert "/v1/geofences" in b.text()
    b.screenshot("docs-desktop")
    b.open("/")
    links = {a.get_attribute("href") for a in b.visible("a")}
    assert any(h and h.endswith("/console/") for h in links), links
    assert any(h and h.endswith("/docs") for h in links), links
    b.screenshot("landing-desktop")
    assert not b.console_errors()


# -- screenshots ------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["desktop", "phone", "tablet"])
async def test_screenshots_of_the_main_screens(shop: Shop, size: str) -> None:
    offer_id = _activity(shop)
    screens = {
        "manager": [
            "#/geofences",
            "#/offers",
            "#/offers/new",
            f"#/offers/{offer_id}",
            "#/preview",
            "#/stores",
            "#/live",
        ],
        "reviewer": [f"#/offers/{offer_id}/report?by=store", "#/redemptions", "#/decisions"],
    }
    with browser_mod.launch(shop.url, size) as b:
        b.open("/console/")
        b.one('input[name="token"]')
        b.screenshot(f"sign-in-{size}")
        for role, routes in screens.items():
            b.driver.execute_script("sessionStorage.clear()")
            b.signed_in(shop.token(role))
            for route in routes:
                b.go(route)
                b.wait(lambda: "loading" not in b.text().lower(), what=f"{route} to finish loading")
                b.settle()
                name = route.strip("#/").split("?")[0].replace("/", "-").replace(offer_id, "id")
                b.screenshot(f"{role}-{name}-{size}", full=True)
        errors = b.console_errors()
    assert not errors, errors
