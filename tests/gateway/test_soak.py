"""A short soak under every fault (`gateway soak`, tests/benchmarks/soak.py): three
replicas behind nginx on the soak's own PostgreSQL, the demo city's shoppers at half the
capacity it measures, a replica killed and restarted, PostgreSQL restarted, the push
service answering 429, then 503, then hanging; the reconciliation finds nothing lost.

It asserts what the reconciliation counts, never timings. The half-hour run and its
figures are in deploy/SCALING.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.benchmarks import soak
from tests.support import proc

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs Debian's nginx")

SMOKE = (
    "--capacity-seconds", "8", "--fault-every", "60", "--fault-seconds", "4",
    "--outage-seconds", "2", "--shoppers", "100", "--drain-seconds", "90",
)  # fmt: skip


async def test_a_short_soak_under_every_fault_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    code, stdout, stderr = await proc.run(
        "soak", "--minutes", "1.5", "--out", str(out), "--", *SMOKE,
        environ=proc.env(None, tmp_path), timeout=400,
    )  # fmt: skip
    assert out.exists(), stderr[-3000:]
    figures = json.loads(out.read_text())
    assert "nothing lost" in stdout  # the table, before the JSON
    assert figures["faults injected"] == {kind: 1 for kind in soak.KINDS}
    found, lost = figures["found"], figures["lost"]
    # The load did what the reconciliation checks: pings, offers, redemptions, pushes.
    assert found["pings answered"] > 0 and found["pings logged"] > 0
    assert found["decisions sent"] > 0 and found["coupons redeemed"] > 0
    assert found["pushes delivered"] > 0
    assert found["outbox rows retried"] > 0  # the push service's faults were felt
    # Nothing lost: an answered ping is logged even when its replica was killed after
    # the answer (its log row commits with its receipt).
    assert {k: v for k, v in lost.items() if v} == {}
    assert code == 0, stderr[-3000:]
