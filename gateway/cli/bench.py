"""`gateway bench`: every headline figure in one run, each next to a baseline measured in
the same run, as a table and as JSON.

It runs the benchmark scripts of a source checkout (tests/benchmarks/, which an installed
package does not carry: --source names the checkout, and without one it says so), one after
the other, each in its own processes: each starts its own gateway processes on a fresh
database (DATABASE_URL's server, else an embedded PostgreSQL) and drives them from a
separate load process (wrk for ping throughput, asyncio clients that keep their
connections open elsewhere). The scripts can be run alone too; their docstrings say how.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.http import errors

# Where this package was loaded from: a source checkout's root, or site-packages.
ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path("tests", "benchmarks")
REMOTE_SKIPS = ("metrics", "push", "offers", "apns")


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    script: str
    args: tuple[str, ...]
    what: str


def suite(
    *,
    quick: bool,
    fences: int,
    shoppers: int,
    events: int,
    duration: int,
    remote: tuple[str, str, str] | None = None,
) -> list[Step]:
    if quick:  # a smoke run: every script, small sizes
        fences, shoppers, events, duration = 2_000, 200, 20_000, 2
    d = str(duration)
    return [
        Step(
            "matching",
            "bench_geo.py",
            ("--fences", str(fences), "--pings", "2000" if quick else "10000", "--merchants", "1"),
            f"geofence matching per ping, {fences:,} fences of one merchant",
        ),
        Step(
            "pings",
            "bench_pings.py",
            ("--fences", str(fences), "--shoppers", str(shoppers), "--duration", d)
            + (
                ("--url", remote[0], "--manager-token", remote[1], "--app-token", remote[2])
                if remote
                else ()
            ),
            f"POST /v1/pings with {fences:,} geofences and {shoppers:,} shoppers, and warm; "
            "its floor part by part; serve --workers 2 against 1; vs bare aiohttp"
            + (f" (the gateway at {remote[0]})" if remote else ""),
        ),
        Step(
            "metrics",
            "bench_metrics.py",
            (
                ("--fences", "2000", "--shoppers", "200", "--duration", "2", "--rounds", "2")
                if quick
                else ("--fences", "10000", "--shoppers", "1000", "--duration", d, "--rounds", "4")
            ),
            "what the metrics cost on POST /v1/pings: on vs off, best of alternated rounds",
        ),
        Step(
            "push",
            "bench_push.py",
            (
                "--pushes",
                "300" if quick else "6000",
                "--naive",
                "50" if quick else "300",
                "--pings",
                "100" if quick else "3000",
                "--rate",
                "100" if quick else "500",
                "--rounds",
                "1" if quick else "3",
            ),
            "Web Push: the parts of a push, the push service alone, fan-out from 1 and 2 "
            "worker processes vs a naive pywebpush loop, and ping-to-push latency",
        ),
        *_wallet_steps(quick),
        Step(
            "google",
            "bench_google_links.py",
            ("--links", "200" if quick else "2000", "--fresh", "10" if quick else "100")
            + (("--rounds", "2") if quick else ()),
            "Save to Google Wallet links vs google.auth.jwt.encode with a fresh signer",
        ),
        Step(
            "offers",
            "bench_offers.py",
            ("--events", str(events), "--duration", d, "--coupons", "8000" if quick else "40000"),
            f"redemptions under concurrency, and the funnel report over {events:,} events",
        ),
    ]


def _wallet_steps(quick: bool) -> list[Step]:
    """Apple Wallet: pass building, and the APNs fan-out with the pass fetches after it."""
    return [
        Step(
            "passes",
            "bench_passes.py",
            (
                *("--passes", "100" if quick else "300", "--plain", "10" if quick else "60"),
                *("--rounds", "3" if quick else "10"),
            ),
            "signed Apple Wallet passes vs the raw PKCS#7 signature and plain py-pkpass",
        ),
        Step(
            "apns",
            "bench_apns.py",
            (
                *("--registrations", "2000" if quick else "10000"),
                *("--rounds", "2" if quick else "4"),
                *("--baseline", "200" if quick else "1000", "--fetch", "200" if quick else "2000"),
            ),
            "APNs pass-update fan-out through the queue to the HTTP/2 stand-in, and pass "
            "fetches while it runs",
        ),
    ]


def run_step(step: Step, out: Path, source: Path = ROOT) -> list[dict[str, Any]]:
    cmd = [sys.executable, str(source / SCRIPTS / step.script), *step.args, "--json", str(out)]
    started = time.monotonic()
    sys.stderr.write(f"\n== {step.name}: {step.what}\n   {' '.join(cmd[1:])}\n")
    sys.stderr.flush()
    with subprocess.Popen(  # noqa: S603 - our own scripts, with our own arguments
        cmd, cwd=source, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write(f"   [{step.name} {time.monotonic() - started:5.0f}s] {line}")
            sys.stderr.flush()
    if proc.returncode != 0:
        raise RuntimeError(f"{step.script} failed with exit code {proc.returncode}")
    rows: list[dict[str, Any]] = json.loads(out.read_text())["rows"]
    for row in rows:
        row["step"] = step.name
    return rows


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"{'figure':<70}{'value':>10} {'unit':<9}{'baseline':>10} {'ratio':>8}  baseline",
        "-" * 136,
    ]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"{r['figure'][:69]:<70}{_num(r['value']):>10} {r['unit']:<9}"
            f"{_num(r['baseline']):>10} {ratio:>8}  {r['baseline_name'] or ''}"
        )
    lines.append("ratio: how many times better the figure is than its baseline (>1: better)")
    return "\n".join(lines)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The table as Markdown, for a README."""
    lines = [
        "| figure | value | baseline, same run | ratio |",
        "|---|---|---|---|",
    ]
    for r in rows:
        base = "" if r["baseline"] is None else f"{_num(r['baseline'])} {r['unit']}"
        if r["baseline_name"]:
            base += f" ({r['baseline_name']})"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(f"| {r['figure']} | {_num(r['value'])} {r['unit']} | {base} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(
    *,
    quick: bool,
    only: Sequence[str] | None,
    out: Path,
    fences: int,
    shoppers: int,
    events: int,
    duration: int,
    remote: tuple[str, str, str] | None = None,
    source: Path = ROOT,
) -> int:
    if not (source / SCRIPTS).is_dir():
        sys.stderr.write(
            "gateway bench needs a source checkout: it runs the benchmark scripts in "
            f"tests/benchmarks/, and there are none under {source}. Clone the repository "
            "and run it there, or name the checkout with --source DIR.\n"
        )
        return 2
    steps = suite(
        quick=quick,
        fences=fences,
        shoppers=shoppers,
        events=events,
        duration=duration,
        remote=remote,
    )
    if only:
        unknown = set(only) - {s.name for s in steps}
        if unknown:
            sys.stderr.write(f"gateway bench: no step {', '.join(sorted(unknown))}\n")
            return 2
        steps = [s for s in steps if s.name in only]
    if remote:
        # Fan-out and redemptions need the gateway's database and worker processes.
        skipped = [s.name for s in steps if s.name in REMOTE_SKIPS]
        if skipped:
            sys.stderr.write(
                f"gateway bench --url: measuring {remote[0]}; {', '.join(skipped)} need a "
                "local database and are left out (run without --url for them)\n"
            )
        steps = [s for s in steps if s.name not in REMOTE_SKIPS]
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        for step in steps:
            try:
                rows += run_step(step, Path(tmp, f"{step.name}.json"), source)
            except RuntimeError as exc:
                sys.stderr.write(f"gateway bench: {exc}; its output is above\n")
                return 1
    seconds = time.monotonic() - started
    result = {
        "gateway": remote[0] if remote else "started here",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "quick": quick,
        "seconds": round(seconds, 1),
        "rows": rows,
    }
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(rows))
    sys.stdout.write("\n" + table(rows) + "\n")
    sys.stdout.write(
        f"\n{len(rows)} figures in {seconds:.0f} s; written to {out.resolve()} "
        f"(and as a Markdown table to {out.with_suffix('.md').resolve()})\n"
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    return main(
        quick=args.quick,
        only=args.only,
        out=Path(args.out),
        fences=args.fences,
        shoppers=args.shoppers,
        events=args.events,
        duration=args.duration,
        remote=_remote(args),
        source=Path(args.source),
    )


def _remote(args: argparse.Namespace) -> tuple[str, str, str] | None:
    if not args.url:
        return None
    if not (args.manager_token and args.app_token):
        raise errors.ValidationFailed("--url needs --manager-token and --app-token")
    return (args.url, args.manager_token, args.app_token)


def add_parser(sub: Any) -> None:
    bn = sub.add_parser(
        "bench",
        help="measure every headline figure next to a baseline from the same run",
        description="Run the benchmark scripts of the source tree (tests/benchmarks/) one "
        "after another: geofence matching, POST /v1/pings throughput and latency (wrk "
        "against a gateway and a bare aiohttp handler it starts), Web Push fan-out and "
        "ping-to-push latency, what the metrics cost on a ping, signed passes, APNs pass-update "
        "fan-out and pass fetches, Google Wallet "
        "save links, redemptions under "
        "concurrency and the funnel report. Each starts its own gateway on a fresh database "
        "(DATABASE_URL's server, else embedded). Shows progress, prints a table and writes "
        "JSON. Needs wrk (apt-get install wrk) and a source checkout.",
    )
    bn.add_argument("--out", default="bench.json", help="JSON results (./bench.json)")
    bn.add_argument(
        "--only",
        nargs="+",
        metavar="STEP",
        help="matching pings metrics push passes apns google offers",
    )
    bn.add_argument("--quick", action="store_true", help="small sizes: a smoke run in ~2 min")
    bn.add_argument("--fences", type=int, default=100_000, help="geofences (100,000)")
    bn.add_argument("--shoppers", type=int, default=100_000, help="shoppers pinging (100,000)")
    bn.add_argument("--events", type=int, default=10_000_000, help="decision events (10M)")
    bn.add_argument("--duration", type=int, default=10, help="seconds per load phase (10)")
    bn.add_argument(
        "--url",
        help="measure a running gateway's pings instead of starting one; give a merchant "
        "set aside for benchmarking (its geofences are replaced, --shoppers are enrolled)",
    )
    bn.add_argument("--manager-token", help="with --url: a manager key of that merchant")
    bn.add_argument("--app-token", help="with --url: an app key of that merchant")
    bn.add_argument(
        "--source",
        default=str(ROOT),
        metavar="DIR",
        help="the source checkout whose tests/benchmarks/ to run (the one this gateway "
        "was loaded from)",
    )
    bn.set_defaults(func=cmd_bench)
