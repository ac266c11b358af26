"""Retake the README's console screenshots on the demo's data.

    python -m tests.support.readme_shots

Runs `gateway demo --serve` on a free port with a throwaway data directory, signs in as
the demo's manager and reviewer in headless chromium (Debian's, as the browser tests do)
and writes gateway/console/site/screenshots/{manager-map,reviewer-funnel,reviewer-uplift}.png.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import browser as browser_mod
from tests.support import proc

SHOTS = Path(__file__).resolve().parents[2] / "gateway" / "console" / "site" / "screenshots"
OFFER = "Latte test"  # the demo's offer with a holdout: it has an uplift to show


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def _tokens(demo: subprocess.Popen[str]) -> tuple[str, dict[str, str]]:
    """The URL and tokens the demo prints (on stderr) once it serves, echoing its progress;
    what it writes after that is drained in the background."""
    assert demo.stderr is not None
    url, tokens = "", {}
    for line in demo.stderr:
        sys.stderr.write(line)
        if found := re.search(r"keeps running at (\S+) ", line):
            url = found[1]
        if found := re.match(r"\s+(admin|manager|reviewer)\s+(gw_\S+)", line):
            tokens[found[1]] = found[2]
        if url and {"manager", "reviewer"} <= set(tokens):
            threading.Thread(target=demo.stderr.read, daemon=True).start()
            return url, tokens
    raise SystemExit("the demo ended before printing its URL and tokens")


def _take(url: str, tokens: dict[str, str]) -> None:
    offers = _get(f"{url}/v1/offers?limit=100", tokens["reviewer"])["items"]
    latte = next(o["id"] for o in offers if o["name"] == OFFER)
    with browser_mod.launch(url, "desktop") as b:
        b.signed_in(tokens["manager"], route="#/geofences")
        b.wait(lambda: b.testids("geofence-row"), timeout=20, what="the geofence list")
        b.settle(1.5)
        b.driver.save_screenshot(str(SHOTS / "manager-map.png"))
        b.driver.execute_script("sessionStorage.clear()")
        b.driver.set_window_size(1280, 2000)  # each report section whole in the viewport
        b.signed_in(tokens["reviewer"], route=f"#/offers/{latte}/report")
        funnel = b.testid("funnel", timeout=20)
        b.settle(1.5)  # the charts animate in
        for name, selector in (("funnel", "rv-funnel-h"), ("uplift", "rv-uplift-h")):
            section = b.one(f'section[aria-labelledby="{selector}"]')
            b.driver.execute_script("arguments[0].scrollIntoView()", section)
            (SHOTS / f"reviewer-{name}.png").write_bytes(section.screenshot_as_png)
        assert funnel.text


def main() -> None:
    browser_mod.require()
    with tempfile.TemporaryDirectory(prefix="gateway-shots-") as data:
        port = proc.free_port()
        environ = proc.env(None, Path(data), GATEWAY_LOG_LEVEL="WARNING")
        report = str(Path(data) / "demo-report.html")
        command = ["gateway", "demo", "--serve", "--port", str(port), "--out", report]
        demo = subprocess.Popen(
            command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            url, tokens = _tokens(demo)
            time.sleep(1)  # the console's first request after the demo's last
            _take(url, tokens)
        finally:
            demo.terminate()
            demo.wait(timeout=60)
    for path in sorted(SHOTS.glob("*.png")):
        print(path)


if __name__ == "__main__":
    main()
