"""``gateway keys``: create, list and revoke a merchant's API keys."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg

from gateway.accounts import auth, tenancy
from gateway.cli import common
from gateway.http import errors


def cmd_keys_create(args: argparse.Namespace) -> int:
    role = auth.Role(args.role)
    stores = frozenset(args.store) if args.store else None

    async def work(conn: asyncpg.Connection) -> tuple[int, str]:
        return await tenancy.create_key(
            conn, merchant_id=args.merchant, role=role, store_ids=stores, label=args.label
        )

    key_id, token = asyncio.run(common.with_db(common.load_settings(args), work))
    common.print_json(
        {
            "id": str(key_id),
            "token": token,
            "role": role.value,
            "merchant_id": str(args.merchant),
            "store_ids": sorted(str(s) for s in stores) if stores else None,
        }
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[tenancy.KeyInfo]:
        return await tenancy.list_keys(conn, args.merchant)

    keys = asyncio.run(common.with_db(common.load_settings(args), work))
    common.print_json(
        [
            {
                "id": str(k.id),
                "role": k.role.value,
                "store_ids": [str(s) for s in k.store_ids] if k.store_ids is not None else None,
                "label": k.label,
                "revoked": k.revoked_at is not None,
            }
            for k in keys
        ]
    )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> str | None:
        return await tenancy.revoke_key(conn, args.key_id, args.merchant)

    if asyncio.run(common.with_db(common.load_settings(args), work)) is None:
        raise errors.NotFound(f"merchant {args.merchant} has no key {args.key_id}")
    common.print_json({"id": str(args.key_id), "revoked": True})
    return 0


def add_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="manage API keys", description="Manage API keys.")
    ksub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    kc = ksub.add_parser(
        "create",
        help='create an API key; prints {"token": ...} once',
        description="Create an API key and print its token once, as JSON. Only a hash is kept.",
    )
    kc.add_argument(
        "--role",
        required=True,
        choices=[r.value for r in auth.Role if r is not auth.Role.SHOPPER],
        help="what the key may do",
    )
    kc.add_argument("--merchant", required=True, type=common.positive_id, help="merchant id")
    kc.add_argument(
        "--store",
        action="append",
        type=common.positive_id,
        metavar="ID",
        help="scope the key to this store (repeat for several); default: all stores",
    )
    kc.add_argument("--label", help="a note to recognise the key by")
    kc.set_defaults(func=cmd_keys_create)
    kl = ksub.add_parser(
        "list",
        help="list a merchant's keys (never tokens)",
        description="List a merchant's operator keys as JSON.",
    )
    kl.add_argument("--merchant", required=True, type=common.positive_id, help="merchant id")
    kl.set_defaults(func=cmd_keys_list)
    kr = ksub.add_parser("revoke", help="revoke a key", description="Revoke a key at once.")
    kr.add_argument("--merchant", required=True, type=common.positive_id, help="merchant id")
    kr.add_argument("key_id", type=common.positive_id, help="the key's id")
    kr.set_defaults(func=cmd_keys_revoke)
