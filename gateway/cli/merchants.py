"""``gateway merchants``: create and list merchants (tenants)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg

from gateway.accounts import tenancy
from gateway.cli import common


def cmd_merchants_create(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> tenancy.Merchant:
        return await tenancy.create_merchant(conn, args.name)

    merchant = asyncio.run(common.with_db(common.load_settings(args), work))
    common.print_json({"id": str(merchant.id), "name": merchant.name})
    return 0


def cmd_merchants_list(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[tenancy.Merchant]:
        return await tenancy.list_merchants(conn)

    merchants = asyncio.run(common.with_db(common.load_settings(args), work))
    common.print_json([{"id": str(m.id), "name": m.name} for m in merchants])
    return 0


def add_parser(sub: Any) -> None:
    merchants = sub.add_parser(
        "merchants", help="manage merchants (tenants)", description="Manage merchants (tenants)."
    )
    msub = merchants.add_subparsers(dest="action", required=True, metavar="ACTION")
    mc = msub.add_parser(
        "create",
        help='create a merchant; prints {"id": ...}',
        description="Create a merchant and print its id as JSON.",
    )
    mc.add_argument("--name", required=True, help="the merchant's display name")
    mc.set_defaults(func=cmd_merchants_create)
    ml = msub.add_parser("list", help="list merchants", description="List merchants as JSON.")
    ml.set_defaults(func=cmd_merchants_list)
