"""`gateway bench`: one step end to end (each figure with its baseline and ratio, in a
table and in JSON), and a clear refusal of an unknown step."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.support import proc
from tests.support.tenants import Tenant


async def test_bench_runs_a_step_and_writes_figures_with_baselines(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code, stdout, stderr = await proc.run(
        "bench",
        "--quick",
        "--only",
        "passes",
        "--out",
        str(out),
        environ=proc.env(None, tmp_path),
        timeout=300,
    )
    assert code == 0, stderr
    assert "== passes" in stderr  # progress
    result = json.loads(out.read_text())
    row, against_signature = result["rows"]
    assert row["figure"] == "signed passes per second" and row["step"] == "passes"
    assert row["value"] > 0 and row["baseline"] > 0
    assert row["baseline_name"] == "plain py-pkpass create()"
    assert row["ratio"] == pytest.approx(row["value"] / row["baseline"])
    # The same builds next to the raw PKCS#7 signature, the limit they approach.
    assert against_signature["value"] == row["value"] and against_signature["baseline"] > 0
    assert against_signature["baseline_name"].startswith("the raw PKCS#7 detached signature")
    assert "signed passes per second" in stdout and "ratio" in stdout
    assert "| signed passes per second |" in out.with_suffix(".md").read_text()


async def test_bench_measures_google_save_links_against_a_fresh_signer(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code, stdout, stderr = await proc.run(
        "bench", "--quick", "--only", "google", "--out", str(out),
        environ=proc.env(None, tmp_path), timeout=300,
    )  # fmt: skip
    assert code == 0, stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert row["figure"] == "Google Wallet save links per second" and row["step"] == "google"
    assert row["value"] > 0 and row["baseline"] > 0
    assert "fresh RSASigner" in row["baseline_name"]
    assert "save links per second" in stdout


async def test_bench_refuses_an_unknown_step(tmp_path: Path) -> None:
    code, _, stderr = await proc.run("bench", "--only", "nosuch", environ=proc.env(None, tmp_path))
    assert code == 2 and "no step nosuch" in stderr


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
async def test_bench_measures_a_running_gateway_given_by_url(
    database_url: str, tenant_a: Tenant, tmp_path: Path
) -> None:
    # WARNING: per-request log lines would fill the unread stderr pipe under load.
    environ = proc.env(
        database_url,
        tmp_path,
        GATEWAY_PING_RATE="100000",
        GATEWAY_PING_BURST="100000",
        GATEWAY_LOG_LEVEL="WARNING",
    )
    served = proc.Served(proc.free_port(), environ)
    await served.start()
    out = tmp_path / "remote.json"
    try:
        await served.wait_ready()
        code, _, stderr = await proc.run(
            "bench",
            "--quick",
            "--only",
            "pings",
            "push",
            "--url",
            served.url,
            "--manager-token",
            tenant_a.tokens["manager"],
            "--app-token",
            tenant_a.tokens["app"],
            "--out",
            str(out),
            environ=proc.env(None, tmp_path),
            timeout=300,
        )
    finally:
        await served.stop()
    assert code == 0, stderr
    assert "push need a local database and are left out" in stderr.replace("\n", " ")
    result = json.loads(out.read_text())
    assert result["gateway"] == served.url
    throughput = next(r for r in result["rows"] if r["figure"].startswith("ping throughput"))
    assert served.url in throughput["figure"]
    assert throughput["value"] > 0 and throughput["baseline"] > 0
    assert "bare aiohttp" in throughput["baseline_name"]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
async def test_bench_pings_measures_the_gateway_its_floor_and_the_bare_handler(
    database_url: str, tmp_path: Path
) -> None:
    # DATABASE_URL names the server: the bench makes and drops its own database there.
    out = tmp_path / "pings.json"
    code, stdout, stderr = await proc.run(
        "bench",
        "--quick",
        "--only",
        "pings",
        "--out",
        str(out),
        environ=proc.env(database_url, tmp_path),
        timeout=600,
    )
    assert code == 0, stderr
    rows = {r["figure"]: r for r in json.loads(out.read_text())["rows"]}
    throughput = next(r for f, r in rows.items() if f.startswith("ping throughput"))
    floor = rows["ping floor: auth, rate limit and body only (wrk -c64)"]
    for row in (throughput, floor, rows["server CPU per ping floor"]):
        assert row["value"] > 0 and row["baseline"] > 0
        assert row["baseline_name"] == "bare aiohttp handler"
    # The floor answered every request with 200 (the bench refuses a floor with errors),
    # and so did the gateway.
    # The script's own table comes through with the progress, on stderr.
    assert "floor: gateway without the ping pipeline" in stderr
    gateway_errors = next(
        line for line in stderr.splitlines() if "non-2xx answers during max throughput" in line
    )
    assert gateway_errors.split()[-2:] == ["0", "0"], gateway_errors
    assert "ping floor" in stdout  # and the summary has the row


def test_bench_outside_a_source_checkout_says_it_needs_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway import cli

    assert cli.main(["bench", "--quick", "--source", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "needs a source checkout" in err and str(tmp_path) in err


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
async def test_bench_measures_what_the_metrics_cost_on_a_ping(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "metrics.json"
    code, stdout, stderr = await proc.run(
        "bench", "--quick", "--only", "metrics", "--out", str(out),
        environ=proc.env(database_url, tmp_path), timeout=600,
    )  # fmt: skip
    assert code == 0, stderr
    rows = {r["figure"]: r for r in json.loads(out.read_text())["rows"]}
    throughput = next(r for f, r in rows.items() if f.startswith("ping throughput with metrics"))
    cpu = rows["server CPU per ping with metrics on (best round)"]
    for row in (throughput, cpu):
        assert row["value"] > 0 and row["baseline"] > 0
        assert row["baseline_name"] == "metrics off (GATEWAY_METRICS=0)"
    added = rows["metrics per ping, timed in-process (middleware and ping counters)"]
    assert added["value"] > 0 and "% of the CPU per ping" in added["note"]
    # Rounds alternate: each side ran as often, neither always first.
    order = re.findall(r"round \d+, metrics (on |off):", stderr)
    assert order == ["on ", "off", "off", "on "], order
    assert "throughput cost of the metrics" in stderr and "metrics on" in stdout
