"""``gateway demo``: a simulated morning through the API. The demo package is imported
only when this command runs, so that ``serve`` never loads it."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import Any

from gateway import db
from gateway.cli import common


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway import demo

    cfg = common.load_settings(args)
    if "GATEWAY_LOG_LEVEL" not in os.environ:
        # The counters and the summary are the demo's output; INFO lines would bury them.
        logging.getLogger().setLevel(logging.WARNING)
    options = demo.Options(
        seed=args.seed,
        shoppers=args.shoppers,
        stores=args.stores,
        hours=args.hours,
        out=Path(args.out),
    )
    # Straight to PostgreSQL, past any pooler: the demo drops and creates its own database
    # and is one process.
    server_url = db.resolve_direct_url(cfg)
    sys.stderr.write(
        f"gateway demo: {options.stores} shops, {options.shoppers} shoppers, "
        f"{options.hours:g} simulated hours, seed {options.seed}, database "
        f"{demo.DB_NAME!r} on {db.describe(server_url)}\n"
    )

    def progress(summary: demo.Summary, now: dt.datetime) -> None:
        sys.stderr.write(demo.progress_line(summary, now))
        sys.stderr.flush()

    async def play() -> demo.Summary:
        return await demo.run(
            options,
            server_url=server_url,
            cfg=cfg,
            port=cfg.port if args.serve else 0,
            progress=progress,
            serve=args.serve,
        )

    try:
        summary = asyncio.run(play())
    except KeyboardInterrupt:
        sys.stderr.write("\nstopped\n")
        return 0
    sys.stderr.write("\n")
    sys.stdout.write(demo.render_summary(summary) + "\n")
    return 0


def add_parser(sub: Any) -> None:
    dm = sub.add_parser(
        "demo",
        help="play a simulated morning of a coffee chain through the API, with a report",
        description="Make a fresh database 'gateway_demo' (on the embedded PostgreSQL "
        "unless DATABASE_URL is set), start the gateway and a local Web Push service in "
        "this process, and simulate one weekday morning in Paris: shops, geofences, ten "
        "offers, and shoppers walking with GPS noise who ping, get pushes, open coupons, "
        "redeem them and buy. Prints live counters, then the funnel per offer, "
        "suppressions by reason and the uplift against the holdout; writes an HTML report.",
    )
    dm.add_argument("--seed", type=int, default=7, help="random seed (7); same seed, same run")
    dm.add_argument("--shoppers", type=int, default=300, help="simulated shoppers (300)")
    dm.add_argument("--stores", type=int, default=36, help="coffee shops (36)")
    dm.add_argument("--hours", type=float, default=8.0, help="simulated hours from 06:00 (8)")
    dm.add_argument("--out", default="demo-report.html", help="the HTML report's path")
    dm.add_argument(
        "--serve",
        action="store_true",
        help="keep the gateway running on --port afterwards and print tokens to explore it",
    )
    common.add_setting_flags(dm, "port", help="port for --serve (8080)")
    dm.set_defaults(func=cmd_demo)
