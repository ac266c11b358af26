"""Every panel of the Grafana dashboard moves during a `gateway demo` run, as a real
Prometheus (Debian's package) sees it: the closest check of issue 20's "watch a demo run
move every panel" that runs here, where Grafana itself cannot (no container runtime).

Prometheus scrapes the demo's gateway twice a second while the morning plays; then each
panel's queries are evaluated over the run through Prometheus's HTTP API, exactly as
Grafana would send them. A panel moves when one of its series changes value during the
run or stands off zero (a stat panel: when it has a value). The demo cannot move the
wallet panel: it runs with no APNs or Google Wallet peer, so no pass update is sent.
That panel is named below, and the test checks it still does not move, so the list
cannot go stale.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gateway import demo
from tests.support.proc import free_port
from tests.support.shop import make_settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "gateway.json"
SCRAPE = "500ms"
# Panels the demo has nothing to show on, and why.
STILL = {
    "Wallet pass updates and dead letters": "the demo sends no pass updates (no wallet peer)",
}


def _prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        reason = "prometheus is missing (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"in CI a skip is a failure: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def _start_prometheus(work: Path, target_port: int) -> tuple[subprocess.Popen[bytes], str]:
    config = work / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE}\n  evaluation_interval: {SCRAPE}\n"
        "scrape_configs:\n  - job_name: gateway\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
    port = free_port()
    with (work / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                _prometheus(),
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    return proc, f"http://127.0.0.1:{port}"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError("prometheus exited")
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("prometheus never became ready")


def _wait_for_target(base: str) -> None:
    """Until Prometheus has its target: its discovery hands static targets to the scrape
    loop in batches every few seconds, which a short demo run could miss entirely."""
    for _ in range(600):
        if _get(f"{base}/api/v1/targets")["data"]["activeTargets"]:
            return
        time.sleep(0.1)
    raise RuntimeError("prometheus never took up its scrape target")


def _range(base: str, expr: str, start: float, end: float) -> list[list[float]]:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "0.5"})
    answer = _get(f"{base}/api/v1/query_range?{query}")
    assert answer["status"] == "success", (expr, answer)
    return [[float(v) for _, v in s["values"]] for s in answer["data"]["result"]]


def _moved(kind: str, series: list[list[float]]) -> bool:
    """A stat panel shows a value; a graph shows a line that is off zero or changes."""
    if kind == "stat":
        return any(values for values in series)
    return any(len(set(values)) > 1 or any(values) for values in series)


async def test_every_dashboard_panel_moves_during_a_demo_run(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    proc, base = _start_prometheus(tmp_path, port)
    try:
        _wait_ready(base, proc)
        _wait_for_target(base)
        started = time.time()
        options = demo.Options(
            seed=5, shoppers=60, stores=6, hours=8.0, out=tmp_path / "report.html"
        )
        # The jobs run every 2 s, so that their panel has rounds to show in a short run.
        cfg = make_settings(
            tmp_path, host="127.0.0.1", stats_compact_seconds=2, wallet_upkeep_seconds=2
        )
        await demo.run(options, server_url=database_url, cfg=cfg, port=port, fresh=False)
        ended = time.time()
        # The last scrape of the run, and the ones around it, are in.
        time.sleep(2.5)
        up = _get(f"{base}/api/v1/query?query=up")["data"]["result"]
        assert up, "prometheus scraped nothing"
        panels = json.loads(DASHBOARD.read_text())["panels"]
        moved: dict[str, bool] = {}
        for panel in panels:
            targets = [t["expr"] for t in panel.get("targets", [])]
            if not targets:
                continue  # a row
            moved[panel["title"]] = any(
                _moved(panel["type"], _range(base, expr, started, ended + 2)) for expr in targets
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert len(moved) >= 15
    still = {title for title, m in moved.items() if not m}
    assert still == set(STILL), still
