"""``gateway pings``: raw ping log maintenance."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from typing import Any

import asyncpg

from gateway import clock
from gateway.cli import common
from gateway.jobs import retention


def cmd_pings_purge(args: argparse.Namespace) -> int:
    cfg = common.load_settings(args)
    days = args.older_than_days if args.older_than_days is not None else cfg.ping_retention_days
    cutoff = clock.SystemClock().now() - dt.timedelta(days=days)

    def progress(total: int) -> None:
        sys.stderr.write(f"\rdeleted {total} pings...")
        sys.stderr.flush()

    async def work(conn: asyncpg.Connection) -> retention.Purged | None:
        return await retention.purge(conn, older_than=cutoff, progress=progress)

    purged = asyncio.run(common.with_db(cfg, work))
    sys.stderr.write("\n")
    if purged is None:
        sys.stderr.write("gateway: another process is purging right now; try again later\n")
        return 1
    common.print_json(
        {
            "deleted": purged.deleted,
            "partitions_dropped": purged.dropped,
            "cutoff": cutoff.isoformat(),
        }
    )
    return 0


def add_parser(sub: Any) -> None:
    pings = sub.add_parser(
        "pings", help="raw ping log maintenance", description="Raw ping log maintenance."
    )
    psub = pings.add_subparsers(dest="action", required=True, metavar="ACTION")
    pp = psub.add_parser(
        "purge",
        help="delete raw pings older than the retention period",
        description="Delete raw pings received before the retention period "
        "(GATEWAY_PING_RETENTION_DAYS, default 30). serve also does this hourly.",
    )
    pp.add_argument("--older-than-days", type=float, help="override the retention period")
    pp.set_defaults(func=cmd_pings_purge)
