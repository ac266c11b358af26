"""A real browser for the console tests: Debian's chromium driven by its chromedriver
(selenium), headless, at a chosen window size, with screenshots saved as test artefacts.

Nothing here downloads a browser: when /usr/bin/chromium or /usr/bin/chromedriver is
missing the tests skip with the reason, except in CI (``CI`` set), where a skip is a
failure. Screenshots go to ``tests/artefacts/`` (ignored by git).
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTEFACTS = Path(__file__).resolve().parents[1] / "artefacts"

# Window sizes, CSS pixels: a desktop, a phone (iPhone 12-14) and a tablet held upright.
SIZES: dict[str, tuple[int, int]] = {
    "desktop": (1280, 900),
    "phone": (390, 844),
    "tablet": (768, 1024),
}

# The preamble's flags: no sandbox in a container, nothing that phones home (there is no
# internet here: tiles and CDNs never load, and a browser waiting on them would hang).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

T = TypeVar("T")


def missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install {package})"
    return None


def require() -> None:
    """Skip the test when there is no browser; in CI (``CI`` set) fail instead."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"in CI a skip is a failure: {reason}", pytrace=False)
    pytest.skip(reason)


class Browser:
    """One chromium session pointed at a gateway; helpers speak the console's contract."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, profile: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self._profile = profile
        # Downloads (an export button that clicks a transient Blob link) land here.
        self.downloads = profile / "downloads"
        self.downloads.mkdir()
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(self.downloads)},
        )

    # -- navigation -------------------------------------------------------------------

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def size(self, name: str) -> None:
        """Resize the viewport to one of SIZES (the window is made to fit it)."""
        width, height = SIZES[name]
        self.driver.set_window_size(width, height)
        inner = self.driver.execute_script("return [window.innerWidth, window.innerHeight]")
        # Headless chromium may count window chrome: grow the window until the viewport fits.
        dw, dh = width - int(inner[0]), height - int(inner[1])
        if dw or dh:
            self.driver.set_window_size(width + dw, height + dh)

    # -- waiting and finding ----------------------------------------------------------

    def wait(self, check: Callable[[], T | None], timeout: float = 10, what: str = "") -> T:
        """Poll ``check`` until it returns something truthy; fail saying ``what`` was awaited."""
        last: BaseException | None = None

        def probe(_: Any) -> Any:
            nonlocal last
            try:
                return check()
            except WebDriverException as exc:  # stale elements while the page redraws
                last = exc
                return None

        try:
            return cast(T, WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(probe))
        except TimeoutException:
            detail = f" (last error: {last.msg})" if isinstance(last, WebDriverException) else ""
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or check}{detail}; "
                f"at {self.driver.current_url}; page text: {self.text()[:600]!r}; "
                f"console: {self.console_errors()[-5:]}"
            ) from None

    def css(self, selector: str, within: WebElement | None = None) -> list[WebElement]:
        root: Any = within or self.driver
        return list(root.find_elements(By.CSS_SELECTOR, selector))

    def visible(self, selector: str, within: WebElement | None = None) -> list[WebElement]:
        return [e for e in self.css(selector, within) if e.is_displayed()]

    def one(self, selector: str, timeout: float = 10) -> WebElement:
        """The first visible element matching ``selector``, waiting for it."""
        return self.wait(
            lambda: next(iter(self.visible(selector)), None), timeout, what=f"'{selector}'"
        )

    def testid(self, name: str, timeout: float = 10) -> WebElement:
        return self.one(f'[data-testid="{name}"]', timeout)

    def testids(self, name: str) -> list[WebElement]:
        return self.visible(f'[data-testid="{name}"]')

    def text(self) -> str:
        try:
            return str(self.driver.find_element(By.TAG_NAME, "body").text)
        except WebDriverException:
            return ""

    def wait_text(self, needle: str, timeout: float = 10) -> None:
        self.wait(lambda: needle in self.text(), timeout, what=f"the text {needle!r}")

    # -- the console's contract -------------------------------------------------------

    def sign_in(self, token: str, *, route: str = "") -> None:
        """Open the console, type the token into the sign-in form and submit it."""
        self.open("/console/" + route)
        field = self.one('input[name="token"]')
        field.clear()
        field.send_keys(token)
        form = field.find_element(By.XPATH, "./ancestor::form")
        submit = self.css('button[type="submit"], input[type="submit"], button:not([type])', form)
        assert submit, "the sign-in form has no submit button"
        submit[0].click()

    def signed_in(self, token: str, *, route: str = "", timeout: float = 10) -> None:
        """Sign in and wait until the form is gone (the console has taken the token)."""
        self.sign_in(token, route=route)
        self.wait(
            lambda: not self.visible('input[name="token"]'), timeout, what="the sign-in to finish"
        )
        if route:
            self.go(route)

    def go(self, route: str) -> None:
        """Navigate the signed-in console to a fragment route such as ``#/offers``."""
        self.driver.execute_script("window.location.hash = arguments[0]", route.lstrip("/"))

    def fetch(self, path: str, *, method: str = "GET", body: Any = None, token: str) -> Any:
        """A request made by the page itself (a forged call from the browser):
        returns {status, text}."""
        script = """
            const [path, method, body, token, done] = arguments;
            const init = {method, headers: {Authorization: 'Bearer ' + token}};
            if (body !== null) {
              init.body = JSON.stringify(body);
              init.headers['Content-Type'] = 'application/json';
            }
            fetch(path, init).then(
              async r => done({status: r.status, text: await r.text()}),
              e => done({status: 0, text: String(e)}));
        """
        return self.driver.execute_async_script(script, path, method, body, token)

    def download(self, link: WebElement, timeout: float = 10) -> str:
        """Click a download link (or button) as a person would; the downloaded file's text.

        The console's CSP (connect-src 'self') rightly stops the page from reading its own
        blob: URLs, so the file is read where the browser saved it."""
        for old in self.downloads.iterdir():
            old.unlink()
        link.click()
        self.wait(
            lambda: [p for p in self.downloads.iterdir() if not p.name.endswith(".crdownload")],
            timeout,
            what="a finished download",
        )
        (path,) = list(self.downloads.iterdir())
        return path.read_text()

    def console_errors(self) -> list[str]:
        """Severe browser log entries except failed loads of remote resources (no internet)."""
        try:
            entries = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        except WebDriverException:
            return []
        out = []
        for entry in entries:
            message = str(entry.get("message", ""))
            if entry.get("level") != "SEVERE" or "net::ERR_" in message or "favicon.ico" in message:
                continue
            out.append(message)
        return out

    # -- artefacts --------------------------------------------------------------------

    def settle(self, seconds: float = 1.0) -> None:
        """Let Leaflet's zoom and Chart.js's entry animations finish before a screenshot."""
        self.wait(lambda: not self.css(".leaflet-zoom-anim"), what="the map's zoom to end")
        time.sleep(seconds)

    def screenshot(self, name: str, *, full: bool = False) -> Path:
        """Save the viewport (or with ``full`` the whole page) as tests/artefacts/<name>.png."""
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTEFACTS / f"{name}.png"
        if full:
            size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {
                    "captureBeyondViewport": True,
                    "clip": {
                        "x": 0,
                        "y": 0,
                        "width": size["width"],
                        "height": min(size["height"], 6000),
                        "scale": 1,
                    },
                },
            )
            data = shot["data"]
        else:
            data = self.driver.get_screenshot_as_base64()
        path.write_bytes(base64.b64decode(data))
        return path

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)


@contextmanager
def launch(base_url: str, size: str = "desktop") -> Iterator[Browser]:
    """A fresh headless chromium (its own profile) at ``size``, quit afterwards."""
    require()
    profile = Path(tempfile.mkdtemp(prefix="chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    width, height = SIZES[size]
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER))
    started = time.monotonic()
    driver = None
    while driver is None:
        try:
            driver = webdriver.Chrome(options=options, service=service)
        except WebDriverException:
            # A loaded machine can make chromium miss chromedriver's start-up deadline.
            if time.monotonic() - started > 60:
                shutil.rmtree(profile, ignore_errors=True)
                raise
            service = Service(executable_path=str(CHROMEDRIVER))
    driver.set_script_timeout(20)
    driver.set_page_load_timeout(30)
    browser = Browser(driver, base_url, profile)
    try:
        browser.size(size)
        yield browser
    finally:
        browser.quit()
