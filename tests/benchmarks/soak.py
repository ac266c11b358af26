"""A soak under faults: three replicas behind nginx on one PostgreSQL, the demo city's
shoppers at half of the capacity measured at the start, and faults on a schedule.

Run: python tests/benchmarks/soak.py [--minutes 30] [--out soak.json]  (or `gateway soak`)

What it does, all on this machine and in this run:
1. starts a PostgreSQL of its own (the embedded pgserver, in a temporary directory, so it
   can stop and start it), migrates it, starts three `gateway serve` replicas on it behind
   nginx (Debian's package) and a local Web Push service (gateway/demo/localpush.py);
2. builds the demo city through the API (its shops, geofences and offers; no quiet hours,
   shops always open) and enrols shoppers, 40 % of them with a push subscription;
3. measures capacity: pings answered per second by a closed loop of --concurrency clients
   for --capacity-seconds;
4. drives pings on a fixed schedule at --share (50 %) of that capacity for the rest of the
   run (open loop: latency counts from each ping's scheduled time, retries included), with
   redemptions at the till and new shoppers replacing those whose caps are used up;
5. injects faults in turn, evenly spread: kill -9 of a replica then its restart, a
   PostgreSQL restart (stopped for --outage-seconds), the push service answering 429, 503,
   or not at all for --fault-seconds;
6. stops the load, lets retries finish and the outbox drain (--drain-seconds at most),
   stops the replicas (they write their spools), and reconciles (soak_check.py).

It prints progress on stderr, then the figures as a table and as JSON (also written to
--out): load held, each fault with the ping p99 through it and the recovery time, and what
was lost (the target is nothing). Exit status 0 only when nothing was lost. Not run in CI;
tests/gateway/test_soak.py runs a short one with every fault.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway import db, migrate  # noqa: E402
from gateway.demo.localpush import PushService  # noqa: E402
from tests.benchmarks import soak_check, soak_load  # noqa: E402
from tests.support import proc  # noqa: E402
from tests.support.replicas import Cluster, cluster  # noqa: E402

KINDS = ("kill -9 a replica", "restart PostgreSQL", "push 429", "push 503", "push hangs")


def log(msg: str) -> None:
    sys.stderr.write(f"[soak {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


class Postgres:
    """The soak's own embedded PostgreSQL, which it may stop and start."""

    def __init__(self, directory: Path) -> None:
        self.server = db.EmbeddedServer(directory)
        self.url = self.server.url()

    def _pg_ctl(self, *args: str) -> None:
        from pgserver import _commands

        s = self.server._server
        getattr(_commands, "pg_ctl")(list(args), pgdata=s.pgdata, user=s.system_user)  # noqa: B009

    def stop(self) -> None:
        self._pg_ctl("-w", "stop", "-m", "fast")

    def close(self) -> None:
        """Stop it for good (pgserver's own hook leaves a server it did not start last)."""
        self.server._server.cleanup_mode = None
        self.stop()

    def start(self) -> None:
        socket_dir = self.url.split("host=", 1)[1].split("&", 1)[0]
        log_file = str(self.server._server.log)
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", log_file, "start")


class Monitor:
    """Polls the outbox's pending rows twice a second: the push faults' recovery."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int]] = []

    async def run(self) -> None:
        conn = None
        while True:
            try:
                if conn is None or conn.is_closed():
                    conn = await db.connect(self.url)
                n = await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")
                self.samples.append((time.monotonic(), int(n)))
            except Exception:  # the database is being restarted: try again
                conn = None
            await asyncio.sleep(0.5)

    def level(self, start: float, end: float) -> int:
        window = [n for t, n in self.samples if start <= t <= end]
        return max(window) if window else 0


async def inject(kind: str, i: int, cl: Cluster, pg: Postgres, push: PushService, a: Any) -> None:
    if kind == "kill -9 a replica":
        victim = i % len(cl.replicas)
        cl.kill(victim)
        await asyncio.sleep(a.outage_seconds)
        await cl.restart(victim)
    elif kind == "restart PostgreSQL":
        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(a.outage_seconds)
        await asyncio.to_thread(pg.start)
    else:
        if kind == "push 429":
            push.fail(None, 429, retry_after=1)
        elif kind == "push 503":
            push.fail(None, 503)
        else:
            push.hang(None)
        await asyncio.sleep(a.fault_seconds)
        push.clear_faults()


async def recover(cl: Cluster, pg: Postgres, push: PushService) -> None:
    """After a fault that went wrong: the push service answers, PostgreSQL and every
    replica run (each restarted at most once more)."""
    push.clear_faults()
    if not db.is_running(pg.server._server.pgdata):
        await asyncio.to_thread(pg.start)
    for i, r in enumerate(cl.replicas):
        if r.proc is not None and r.proc.returncode is not None:
            try:
                await cl.restart(i)
            except Exception as exc:
                log(f"replica {i} did not come back: {exc!r}")


async def faults(
    a: Any, start: float, seconds: float, cl: Cluster, pg: Postgres, push: PushService
) -> list[dict[str, Any]]:
    n = max(len(KINDS), int(seconds // a.fault_every))
    gap = seconds / (n + 1)
    done: list[dict[str, Any]] = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        await asyncio.sleep(max(0.0, start + gap * (i + 1) - time.monotonic()))
        began = time.monotonic()
        log(f"fault {i + 1}/{n}: {kind}")
        error = None
        try:
            await inject(kind, i // len(KINDS), cl, pg, push, a)
        except Exception as exc:  # a fault that goes wrong is a figure, not the end of the run
            error = repr(exc)
            log(f"fault {i + 1}/{n}: {kind} went wrong: {error}")
            await recover(cl, pg, push)
        done.append({"kind": kind, "start": began, "end": time.monotonic(), "error": error})
        log(f"fault {i + 1}/{n}: {kind} over after {time.monotonic() - began:.1f} s")
    return done


def p99(latencies: list[float]) -> float | None:
    vals = [x for x in latencies if not math.isnan(x)]
    return round(float(np.percentile(vals, 99)) * 1000, 1) if vals else None


def figures(
    rec: soak_load.Record, done: list[dict[str, Any]], mon: Monitor, start: float, end: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    pings = [p for p in rec.pings if start <= p.scheduled < end]
    # Each fault's window: from its start to 5 s after its end, or to the next one's start.
    ends = [min(f["end"] + 5.0, g["start"]) for f, g in itertools.pairwise(done)]
    ends += [done[-1]["end"] + 5.0] if done else []
    windows = [(f["start"], e) for f, e in zip(done, ends, strict=True)]

    def quiet(t: float) -> bool:
        return not any(s <= t <= e for s, e in windows)

    answered = [p for p in pings if not math.isnan(p.latency)]
    load = {
        "seconds": round(end - start, 1),
        "pings scheduled": len(pings) + rec.skipped,
        "pings not sent (every shopper picked was waiting)": rec.skipped,
        "pings answered": len(answered),
        "held (pings/s)": round(len(answered) / (end - start), 1),
        "answered at first try (%)": round(
            100 * sum(1 for p in pings if p.failed == 0 and p.attempts) / max(1, len(pings)), 2
        ),
        "p50 without faults (ms)": _pct([p.latency for p in pings if quiet(p.scheduled)], 50),
        "p99 without faults (ms)": p99([p.latency for p in pings if quiet(p.scheduled)]),
        "p99 overall (ms)": p99([p.latency for p in pings]),
    }
    rows = []
    for f, (_, window_end) in zip(done, windows, strict=True):
        inside = [p for p in pings if f["start"] <= p.scheduled <= window_end]
        if f["kind"].startswith("push"):
            before = mon.level(f["start"] - 5.0, f["start"])
            after = [t for t, n in mon.samples if t >= f["end"] and n <= before]
            recovery = (after[0] - f["end"]) if after else None
        else:
            # The last error any client saw before the next fault (or a minute on).
            later = [g["start"] for g in done if g["start"] > f["start"]]
            until = min([f["end"] + 60, *later])
            seen = [t for t in rec.errors_at if f["start"] <= t < until]
            recovery = max(0.0, max(seen) - f["end"]) if seen else 0.0
        rows.append(
            {
                "fault": f["kind"],
                "at (s)": round(f["start"] - start, 1),
                "lasted (s)": round(f["end"] - f["start"], 1),
                "pings in it": len(inside),
                "failed attempts": sum(p.failed for p in inside),
                "ping p99 through it (ms)": p99([p.latency for p in inside]),
                "recovered after (s)": None if recovery is None else round(recovery, 1),
                **({"went wrong": f["error"]} if f["error"] else {}),
            }
        )
    return load, rows


def _pct(latencies: list[float], q: float) -> float | None:
    vals = [x for x in latencies if not math.isnan(x)]
    return round(float(np.percentile(vals, q)) * 1000, 1) if vals else None


async def progress(rec: soak_load.Record, start: float, seconds: float) -> None:
    seen = 0
    while True:
        await asyncio.sleep(10)
        recent = rec.pings[seen:]
        seen = len(rec.pings)
        failed = sum(p.failed for p in recent)
        elapsed = time.monotonic() - start
        log(
            f"{elapsed:5.0f}/{seconds:.0f} s: {len(recent) / 10:.0f} pings/s, "
            f"{failed} failed attempts, p99 {p99([p.latency for p in recent]) or 0:.0f} ms, "
            f"{len(rec.deliveries)} offers, {len(rec.redeemed)} redeemed"
        )


def environ(url: str, data_dir: Path) -> dict[str, str]:
    return proc.env(
        url,
        data_dir,
        # A shopper's pings and a till's redemptions come faster than any real one's.
        GATEWAY_PING_RATE="1000",
        GATEWAY_PING_BURST="1000",
        GATEWAY_REDEEM_RATE="100000",
        GATEWAY_REDEEM_BURST="100000",
        # The walkers jump 600 m between pings: not a spoofing test.
        GATEWAY_MAX_SPEED_MPS="1000000",
        GATEWAY_LOG_LEVEL="WARNING",
        GATEWAY_WEBPUSH_ALLOW_HTTP="1",
        GATEWAY_PASS_PUSHER="0",
        # A killed replica's claimed outbox rows go to the others soon.
        GATEWAY_OUTBOX_LEASE_SECONDS="5",
    )


async def run(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    pg = Postgres(work / "pg")
    conn = await db.connect(pg.url)
    try:
        await migrate.migrate(conn)
    finally:
        await conn.close()
    total = a.minutes * 60
    connector = aiohttp.TCPConnector(limit=a.concurrency * 4)
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        PushService() as push,
        cluster(environ(pg.url, work / "data"), work / "nginx", 3, log_files=True) as cl,
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
    ):
        log(f"3 replicas behind nginx at {cl.url}; logs in {work / 'nginx'}")
        town = await soak_load.City.build(http, cl.url, pg.url, a.seed)
        driver = soak_load.Driver(http, cl.url, town, push, seed=a.seed)
        await driver.populate(a.shoppers)
        log(f"city built, {len(driver.shoppers)} shoppers; measuring capacity")
        capacity = await driver.closed_loop(a.capacity_seconds, a.concurrency)
        rate = capacity * a.share
        # Each shopper pings every few seconds at most: enough of them for the rate.
        await driver.populate(max(0, int(rate * 4) - len(driver.shoppers)))
        started = time.monotonic()
        seconds = max(10.0, total - (started - a.began))
        log(f"capacity {capacity:.0f} pings/s; driving {rate:.0f}/s for {seconds:.0f} s")
        mon = Monitor(pg.url)
        side = [
            asyncio.create_task(mon.run()),
            asyncio.create_task(progress(driver.record, started, seconds)),
        ]
        try:
            done, _ = await asyncio.gather(
                faults(a, started, seconds, cl, pg, push), driver.open_loop(rate, seconds)
            )
            ended = time.monotonic()
            log("load stopped; waiting for retries, then for the outbox to drain")
            await driver.settle()
            deadline = time.monotonic() + a.drain_seconds
            while time.monotonic() < deadline:
                if (
                    mon.samples
                    and mon.samples[-1][1] == 0
                    and mon.samples[-1][0] > time.monotonic() - 1
                ):
                    break
                await asyncio.sleep(0.5)
            drained = round(time.monotonic() - ended, 1)
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
        log("stopping the replicas (they write what their spools hold)")
    conn = await db.connect(pg.url)
    try:
        merchant = await conn.fetchval("SELECT id FROM merchants ORDER BY id LIMIT 1")
        check = await soak_check.reconcile(conn, merchant, driver.record, push)
    finally:
        await conn.close()
        pg.close()
    load, rows = figures(driver.record, done, mon, started, ended)
    return {
        "command": " ".join(sys.argv),
        "minutes": a.minutes,
        "capacity (pings/s)": round(capacity, 1),
        "target (pings/s)": round(rate, 1),
        "load": load,
        "faults": rows,
        "faults injected": {k: sum(1 for r in rows if r["fault"] == k) for k in KINDS},
        "drained after (s)": drained,
        "answers by status": dict(sorted(driver.record.statuses.items())),
        **check,
    }


def table(out: dict[str, Any]) -> str:
    lines = [
        f"capacity {out['capacity (pings/s)']} pings/s (closed loop); target "
        f"{out['target (pings/s)']} pings/s",
        "",
        "load",
        *(f"  {k:<40} {v}" for k, v in out["load"].items()),
        "",
    ]
    cols = list(dict.fromkeys(c for r in out["faults"] for c in r))
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in out["faults"])) for c in cols]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in out["faults"]:
        cells = (str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths, strict=True))
        lines.append("  ".join(cells))
    lines += ["", "found", *(f"  {k:<50} {v}" for k, v in out["found"].items())]
    lines += ["", "lost (target: 0)", *(f"  {k:<50} {v}" for k, v in out["lost"].items())]
    lines.append(f"\nnothing lost: {out['nothing_lost']}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=30.0, help="the whole run (default 30)")
    p.add_argument("--share", type=float, default=0.5, help="of capacity to drive (0.5)")
    p.add_argument("--capacity-seconds", type=float, default=20.0, help="capacity phase (20)")
    p.add_argument("--concurrency", type=int, default=48, help="clients measuring capacity")
    p.add_argument("--shoppers", type=int, default=100, help="enrolled before capacity")
    p.add_argument("--fault-every", type=float, default=120.0, help="seconds between faults")
    p.add_argument("--fault-seconds", type=float, default=10.0, help="push fault length")
    p.add_argument("--outage-seconds", type=float, default=3.0, help="replica/database down")
    p.add_argument("--drain-seconds", type=float, default=180.0, help="outbox drain at most")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--keep",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the working directory (replica logs, database) when something was lost",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    a.began = time.monotonic()
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        log("needs nginx (Debian's nginx-light)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="gateway-soak-"))
    out: dict[str, Any] = {"nothing_lost": False}
    try:
        out = asyncio.run(run(a, work))
    finally:
        if out["nothing_lost"] or a.keep is False:
            shutil.rmtree(work, ignore_errors=True)
        else:  # the replicas' logs, to find what was lost
            log(f"kept {work}")
    sys.stdout.write(table(out) + "\n\n")
    text = json.dumps(out, indent=2, default=str)
    sys.stdout.write(text + "\n")
    if a.out is not None:
        a.out.write_text(text + "\n")
    return 0 if out["nothing_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
