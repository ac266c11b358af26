"""``gateway outbox``: the delivery outbox's dead letters."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg

from gateway.cli import common


def cmd_outbox_dead(args: argparse.Namespace) -> int:
    from geo import sql

    queries = sql.load("gateway.delivery")

    async def work(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        rows = await conn.fetch(queries["dead_letters"], args.merchant, 0, args.limit)
        return [{k: (str(v) if k.endswith("id") else v) for k, v in dict(r).items()} for r in rows]

    common.print_json(asyncio.run(common.with_db(common.load_settings(args), work)))
    return 0


def add_parser(sub: Any) -> None:
    ob = sub.add_parser("outbox", help="delivery outbox", description="The delivery outbox.")
    osub = ob.add_subparsers(dest="action", required=True, metavar="ACTION")
    od = osub.add_parser(
        "dead",
        help="list dead-lettered deliveries and why they gave up",
        description="List deliveries that gave up (dead letters) as JSON.",
    )
    od.add_argument("--merchant", type=common.positive_id, required=True, help="merchant id")
    od.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    od.set_defaults(func=cmd_outbox_dead)
