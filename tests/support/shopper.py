"""The shopper app (/app/) in chromium: what the browser tests do to it through the DevTools
protocol (where the phone is, permissions, the network cut off, a push message), and a
copy of the app served from a retailer's own origin."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium.common.exceptions import WebDriverException

from gateway.http import assets
from tests.support.browser import Browser


def origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0]}"


def grant(b: Browser, url: str, *permissions: str) -> None:
    b.driver.execute_cdp_cmd(
        "Browser.grantPermissions", {"origin": origin(url), "permissions": list(permissions)}
    )


def place(b: Browser, lat: float, lon: float, accuracy: float = 8) -> None:
    """Where the Geolocation API says the phone is."""
    b.driver.execute_cdp_cmd(
        "Emulation.setGeolocationOverride",
        {"latitude": lat, "longitude": lon, "accuracy": accuracy},
    )


def network(b: Browser, *, online: bool) -> None:
    b.driver.execute_cdp_cmd("Network.enable", {})
    b.driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": not online, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )


def enrol(b: Browser, *, consent: bool = True, name: str = "Ada") -> str:
    """Fill the app's enrolment form; the shopper token the page then keeps."""
    b.testid("enrol-form")
    b.one("#name").send_keys(name)
    box = b.testid("consent")
    if box.is_selected() != consent:
        box.click()
    b.testid("enrol").click()
    b.testid("send-location", timeout=15)
    token = b.driver.execute_script("return localStorage.getItem('gw.shopper')")
    assert token, "the page keeps no shopper token after enrolling"
    return str(token)


def worker_active(b: Browser, timeout: float = 15) -> None:
    b.wait(
        lambda: b.driver.execute_async_script(
            "const done = arguments[0];"
            "navigator.serviceWorker.getRegistration().then(r => done(!!(r && r.active)))"
        ),
        timeout,
        what="an active service worker",
    )


def push_to_worker(b: Browser, url: str, data: str) -> str:
    """Deliver ``data`` as a push message to the page's service worker; its registration id.

    DevTools names registrations only in events, which selenium's CDP calls do not return;
    ids count up from 0 in a fresh profile, and a wrong one is refused, so the worker's is
    the first that is taken.
    """
    worker_active(b)
    b.driver.execute_cdp_cmd("ServiceWorker.enable", {})
    refused = []
    before = len(notifications(b))
    # An id may be taken without reaching the worker (chromium keeps ids of registrations
    # it has replaced): the worker's is the one after which a notification shows.
    for _ in range(3):
        for candidate in range(8):
            try:
                b.driver.execute_cdp_cmd(
                    "ServiceWorker.deliverPushMessage",
                    {"origin": origin(url), "registrationId": str(candidate), "data": data},
                )
            except WebDriverException as exc:
                refused.append(exc.msg)
                continue
            try:
                b.wait(lambda: len(notifications(b)) > before or None, timeout=3)
            except AssertionError:
                continue
            return str(candidate)
    raise AssertionError(f"no service worker registration showed the message: {refused}")


def deliver(b: Browser, url: str, registration: str, data: str) -> None:
    """Deliver ``data`` as a push message to a known service worker registration."""
    b.driver.execute_cdp_cmd(
        "ServiceWorker.deliverPushMessage",
        {"origin": origin(url), "registrationId": registration, "data": data},
    )


def notifications(b: Browser) -> list[dict[str, Any]]:
    """What the service worker is showing: title, body, tag and data of each notification."""
    return list(
        b.driver.execute_async_script(
            """
            const done = arguments[0];
            navigator.serviceWorker.ready
              .then(r => r.getNotifications())
              .then(ns => done(ns.map(n => ({title: n.title, body: n.body, tag: n.tag,
                                             image: n.image, data: n.data}))),
                    e => done([{error: String(e)}]));
            """
        )
    )


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".webmanifest": "application/manifest+json",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def retailer_site(gateway_url: str, folder: Path) -> Iterator[str]:
    """The app copied to a retailer's site (another origin: localhost, not 127.0.0.1), its
    meta tag naming the gateway, served by a plain static file server; yields its URL."""
    shutil.copytree(assets.APP_ROOT, folder)
    index = folder / "index.html"
    text = index.read_text().replace("{{v}}", "copy")
    text = text.replace(
        '<meta name="gateway-api" content="">', f'<meta name="gateway-api" content="{gateway_url}">'
    )
    index.write_text(text)
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="retailer-site", daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
