"""The machine-readable result of a benchmark script: rows of figure, value and the
baseline measured in the same run, written with --json for `gateway bench` to collect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def row(
    figure: str,
    value: float | None,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_name: str | None = None,
    higher_is_better: bool = True,
    note: str | None = None,
) -> dict[str, Any]:
    ratio = None
    if value is not None and baseline:
        ratio = value / baseline if higher_is_better else baseline / value if value else None
    return {
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio,
        "note": note,
    }


def write(path: str | None, rows: list[dict[str, Any]], **context: Any) -> None:
    if path:
        Path(path).write_text(json.dumps({"rows": rows, **context}, indent=2))
