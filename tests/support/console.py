"""A coffee shop behind a live gateway for the console's browser tests: the tenant fixture,
its pings and redemptions made through the API, and the UI gestures the tests share
(drawing on the Leaflet-Geoman map)."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.remote.webelement import WebElement

from tests.support import browser as browser_mod
from tests.support.browser import Browser
from tests.support.live import Api, LiveGateway
from tests.support.shop import make_settings
from tests.support.tenants import Tenant, make_tenant

# The tenant fixture's first store and its 50 m door fence (tests/support/tenants.py).
LAT, LON = 48.8566, 2.3522
M_PER_DEG = 111_320.0


def offset(dx_m: float, dy_m: float) -> tuple[float, float]:
    """(lat, lon) moved dx metres east and dy metres north of the first store."""
    return LAT + dy_m / M_PER_DEG, LON + dx_m / (M_PER_DEG * math.cos(math.radians(LAT)))


@dataclass
class Shop:
    """The live gateway's URL, a blocking API client and the tenant with its tokens."""

    url: str
    api: Api
    tenant: Tenant

    def token(self, role: str) -> str:
        return self.tenant.tokens[role]

    def fences(self) -> list[dict[str, Any]]:
        return list(self.api.items("/v1/geofences?limit=100", token=self.token("manager")))

    def offers(self) -> list[dict[str, Any]]:
        return list(self.api.items("/v1/offers?limit=100", token=self.token("manager")))

    def offer(self, **extra: Any) -> str:
        body: dict[str, Any] = {
            "name": "Cold mornings",
            "title": "20% off a hot coffee",
            "body": "Warm up with us",
            "trigger": "enter",
            "channels": ["inbox"],
            "geofence_ids": [str(self.tenant.geofence_ids[0])],
            "coupon": {"discount": "20% off", "valid_minutes": 60},
            **extra,
        }
        return str(self.api.ok("POST", "/v1/offers", token=self.token("manager"), json=body)["id"])

    def no_quiet_hours(self) -> None:
        """Offers fire at any hour of the real clock (the tests run at night too)."""
        self.api.ok(
            "PUT",
            "/v1/program",
            token=self.token("manager"),
            json={"daily_offer_cap": None, "quiet_hours": None},
        )

    def ping(
        self, dx: float, dy: float, *, token: str | None = None, ago_s: float = 0, **extra: Any
    ) -> Any:
        lat, lon = offset(dx, dy)
        at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago_s)
        body = {"lat": lat, "lon": lon, "accuracy_m": 10, "ts": at.isoformat(), **extra}
        return self.api.ok("POST", "/v1/pings", token=token or self.token("shopper"), json=body)

    def walk_in(self, *, token: str | None = None, **extra: Any) -> Any:
        """From 400 m west into the door fence (a walk of five minutes): the second ping
        enters."""
        self.ping(-400, 0, token=token, ago_s=300, **extra)
        return self.ping(0, 0, token=token, **extra)

    def redeem(self, code: str) -> Any:
        return self.api.ok(
            "POST",
            "/v1/redemptions",
            token=self.token("pos"),
            json={"code": code, "store_id": str(self.tenant.store_ids[0])},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )


@contextlib.asynccontextmanager
async def live_shop(
    database_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> AsyncIterator[Shop]:
    """A tenant behind a live gateway on a real port, for a browser (skips without one)."""
    browser_mod.require()  # before starting anything: skip (or fail in CI) at once
    tenant = await make_tenant(conn, "Alpha Coffee")
    gateway = LiveGateway(make_settings(tmp_path), database_url)
    gateway.start()
    try:
        yield Shop(url=gateway.url, api=Api(gateway.url), tenant=tenant)
    finally:
        gateway.stop()


# -- the map ------------------------------------------------------------------------------


def map_element(b: Browser) -> WebElement:
    """The map container, once Leaflet has laid it out."""
    element = b.testid("map", timeout=15)
    b.wait(
        lambda: b.css(".leaflet-container", element) or "leaflet-container" in _classes(element),
        what="Leaflet in the map container",
    )
    return element


def _classes(element: WebElement) -> str:
    return element.get_attribute("class") or ""


def toolbar(b: Browser, shape: str) -> None:
    """Click a Leaflet-Geoman toolbar button: shape is circle, polygon, edit, drag, remove."""
    icon = b.one(f".leaflet-pm-toolbar .leaflet-pm-icon-{shape}")
    icon.click()


def click_at(b: Browser, element: WebElement, points: list[tuple[int, int]]) -> None:
    """Click at pixel offsets from the element's centre, one after the other."""
    for x, y in points:
        actions = ActionChains(b.driver)
        actions.move_to_element_with_offset(element, x, y).pause(0.05).click().perform()


def draw_circle(b: Browser, centre: tuple[int, int], radius_px: int) -> None:
    m = map_element(b)
    toolbar(b, "circle")
    x, y = centre
    actions = ActionChains(b.driver)
    actions.move_to_element_with_offset(m, x, y).click().pause(0.1)
    actions.move_to_element_with_offset(m, x + radius_px // 2, y).pause(0.1)
    actions.move_to_element_with_offset(m, x + radius_px, y).pause(0.1).click().perform()


def draw_polygon(b: Browser, vertices: list[tuple[int, int]]) -> None:
    """Click the vertices, then the first one again to close the ring."""
    m = map_element(b)
    toolbar(b, "polygon")
    click_at(b, m, [*vertices, vertices[0]])


def pixel_of(b: Browser, element: WebElement, offset_xy: tuple[int, int]) -> tuple[float, float]:
    """The page coordinates of an offset from the element's centre."""
    r = element.rect
    return r["x"] + r["width"] / 2 + offset_xy[0], r["y"] + r["height"] / 2 + offset_xy[1]


def near(b: Browser, selector: str, point: tuple[float, float], within_px: float) -> list[str]:
    """Descriptions of the visible elements matching ``selector`` whose box comes within
    ``within_px`` of a page point."""
    script = """
        const [selector, x, y, d] = arguments;
        const out = [];
        for (const e of document.querySelectorAll(selector)) {
          const r = e.getBoundingClientRect();
          if (!r.width && !r.height) continue;
          const dx = Math.max(r.left - x, 0, x - r.right);
          const dy = Math.max(r.top - y, 0, y - r.bottom);
          if (Math.hypot(dx, dy) <= d) out.push(e.className + ': ' + e.textContent);
        }
        return out;
    """
    scroll = b.driver.execute_script("return [window.scrollX, window.scrollY]")
    x, y = point[0] - scroll[0], point[1] - scroll[1]
    return list(b.driver.execute_script(script, selector, x, y, within_px))
