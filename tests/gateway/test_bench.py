"""`gateway bench`: one step end to end (each figure with its baseline and ratio, in a
table and in JSON), and a clear refusal of an unknown step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import proc


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
    (row,) = result["rows"]
    assert row["figure"] == "signed passes per second" and row["step"] == "passes"
    assert row["value"] > 0 and row["baseline"] > 0
    assert row["baseline_name"] == "plain py-pkpass create()"
    assert row["ratio"] == pytest.approx(row["value"] / row["baseline"])
    assert "signed passes per second" in stdout and "ratio" in stdout


async def test_bench_refuses_an_unknown_step(tmp_path: Path) -> None:
    code, _, stderr = await proc.run("bench", "--only", "nosuch", environ=proc.env(None, tmp_path))
    assert code == 2 and "no step nosuch" in stderr
