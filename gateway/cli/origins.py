"""``gateway origins``: the web origins a merchant's pages may call the API from (CORS)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg

from gateway.accounts import origins
from gateway.cli import common
from gateway.http import errors


def cmd_origins_add(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> tuple[origins.AllowedOrigin, bool]:
        return await origins.add(conn, args.merchant, args.origin)

    row, created = asyncio.run(common.with_db(common.load_settings(args), work))
    common.print_json(
        {"id": str(row.id), "origin": row.origin, "merchant_id": str(args.merchant), "new": created}
    )
    return 0


def cmd_origins_list(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[origins.AllowedOrigin]:
        return await origins.list_for(conn, args.merchant)

    rows = asyncio.run(common.with_db(common.load_settings(args), work))
    common.print_json([{"id": str(o.id), "origin": o.origin} for o in rows])
    return 0


def cmd_origins_remove(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> bool:
        return await origins.remove_named(conn, args.merchant, args.origin)

    if not asyncio.run(common.with_db(common.load_settings(args), work)):
        raise errors.NotFound(f"merchant {args.merchant} does not allow {args.origin}")
    common.print_json({"origin": origins.normalise(args.origin), "removed": True})
    return 0


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "origins",
        help="web origins allowed to call the API from a browser (CORS)",
        description="The web origins (scheme://host[:port]) whose pages may call the shopper "
        "and app endpoints with a merchant's tokens. Every running gateway follows a change "
        "at once.",
    )
    osub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, func, help_ in (
        ("add", cmd_origins_add, "allow an origin, e.g. https://shop.example.com"),
        ("list", cmd_origins_list, "list a merchant's allowed origins"),
        ("remove", cmd_origins_remove, "stop allowing an origin"),
    ):
        p = osub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".")
        p.add_argument("--merchant", required=True, type=common.positive_id, help="merchant id")
        if name != "list":
            p.add_argument("origin", help="scheme://host[:port]")
        p.set_defaults(func=func)
