"""`gateway soak`: three replicas behind nginx under half their measured capacity for half
an hour, with replicas killed, PostgreSQL restarted and the push service failing, then a
reconciliation of everything against the database.

Like `gateway bench`, it runs a script of a source checkout (tests/benchmarks/soak.py,
which an installed package does not carry), in its own process, with its own PostgreSQL.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.cli import bench

SCRIPT = bench.SCRIPTS / "soak.py"


def cmd_soak(args: argparse.Namespace) -> int:
    source = Path(args.source)
    if not (source / SCRIPT).is_file():
        sys.stderr.write(
            f"gateway soak needs a source checkout: it runs {SCRIPT}, and there is none "
            f"under {source}. Clone the repository and run it there, or name the checkout "
            "with --source DIR.\n"
        )
        return 2
    cmd = [sys.executable, str(source / SCRIPT), "--minutes", str(args.minutes)]
    cmd += ["--share", str(args.share)]
    if args.out:
        cmd += ["--out", args.out]
    extra = [a for a in args.extra if a != "--"]
    # Progress goes to stderr, the table and the JSON to stdout, as the script writes them.
    return subprocess.call([*cmd, *extra], cwd=source)  # noqa: S603 - our own script


def add_parser(sub: Any) -> None:
    sk = sub.add_parser(
        "soak",
        help="half an hour of load under faults, then reconcile everything (not for CI)",
        description="Start a PostgreSQL of its own, three `gateway serve` replicas behind "
        "nginx and a local Web Push service; build the demo city; measure capacity, then "
        "drive the city's shoppers at --share of it for --minutes while killing replicas "
        "(kill -9, then restart), restarting PostgreSQL and making the push service answer "
        "429, 503 or hang. Then drain, and reconcile against the database: every answered "
        "ping logged once, every decision in one inbox, every coupon redeemed at most once, "
        "no budget or cap exceeded, every push delivered or dead-lettered, no outbox row "
        "pending. Prints progress, a table and JSON; exits 1 if anything was lost. Needs "
        "nginx (apt-get install nginx-light) and a source checkout. Further options of "
        "tests/benchmarks/soak.py go after `--`.",
    )
    sk.add_argument("--minutes", type=float, default=30.0, help="the whole run (30)")
    sk.add_argument("--share", type=float, default=0.5, help="of measured capacity (0.5)")
    sk.add_argument("--out", default="soak.json", help="JSON results (./soak.json)")
    sk.add_argument(
        "--source",
        default=str(bench.ROOT),
        metavar="DIR",
        help="the source checkout whose tests/benchmarks/soak.py to run",
    )
    sk.add_argument("extra", nargs=argparse.REMAINDER, help="-- then options of soak.py")
    sk.set_defaults(func=cmd_soak)
