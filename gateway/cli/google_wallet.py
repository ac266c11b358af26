"""``gateway wallet google-configure`` and ``google-dev-account``: a merchant's Google Wallet
issuer (checked before it is stored), and a development service account for offline use."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path
from typing import Any

import asyncpg

from gateway.accounts import tenancy
from gateway.cli import common
from gateway.http import errors

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def cmd_google_dev_account(args: argparse.Namespace) -> int:
    from wallet.google import account

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = account.dev_service_account()
    out.touch(mode=0o600)
    out.write_text(json.dumps(info, indent=2) + "\n")
    common.print_json(
        {"warning": account.DEV_LABEL, "file": str(out), "client_email": info["client_email"]}
    )
    return 0


def cmd_google_configure(args: argparse.Namespace) -> int:
    from wallet import errors as wallet_errors
    from wallet.google import account, objects
    from wallet.store import google as google_store

    cfg = common.load_settings(args)
    try:
        text = Path(args.service_account).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.ValidationFailed(
            f"cannot read the service account at {args.service_account}: {exc}"
        ) from None
    try:
        sa = account.parse(text)
    except wallet_errors.ServiceAccountInvalid as exc:
        raise errors.ValidationFailed(f"the service account is unusable: {exc.message}") from None
    if not re.fullmatch(r"[0-9]{1,30}", args.issuer_id):
        raise errors.ValidationFailed(
            "--issuer-id is the number Google's Pay & Wallet Console shows"
        )
    if args.background_color and not _COLOR.fullmatch(args.background_color):
        raise errors.ValidationFailed("--background-color is a hex colour such as #6f4e37")

    async def work(conn: asyncpg.Connection) -> objects.Program:
        merchant = await tenancy.get_merchant(conn, args.merchant)
        if merchant is None:
            raise errors.NotFound(f"no merchant {args.merchant}")
        program = objects.Program(
            issuer_id=args.issuer_id,
            merchant_id=args.merchant,
            issuer_name=args.issuer_name or merchant.name,
            program_name=args.program_name or merchant.name,
            logo_url=args.logo_url or f"{cfg.base_url}/console/favicon.svg",
            background_color=args.background_color,
        )
        await google_store.put_config(conn, program, sa)
        return program

    program = asyncio.run(common.with_db(cfg, work))
    out: dict[str, Any] = {
        "merchant": str(args.merchant),
        "issuer_id": program.issuer_id,
        "client_email": sa.client_email,
        "program_name": program.program_name,
        "loyalty_class_id": objects.loyalty_class_id(program),
    }
    if sa.dev:
        out["warning"] = account.DEV_LABEL
    common.print_json(out)
    return 0


def add_parsers(wsub: Any) -> None:
    dev = wsub.add_parser(
        "google-dev-account",
        help="write a test Google service account (not valid at Google)",
        description="Write a service-account key file of Google's shape (type, client_email, "
        "private_key_id, private_key, token_uri) with a fresh RSA key and an address in the "
        "reserved .invalid domain. Save links signed with it verify with its key, so "
        "everything runs offline; Google refuses it. Its updates are not sent to Google's "
        "real API (GATEWAY_GOOGLE_WALLET_URL must point at a local stand-in).",
    )
    dev.add_argument(
        "--out", default="google-dev-service-account.json", help="file to write (mode 0600)"
    )
    dev.set_defaults(func=cmd_google_dev_account)
    cf = wsub.add_parser(
        "google-configure",
        help="set a merchant's Google Wallet issuer, service account and branding",
        description="Store the merchant's Google Wallet issuer id, the issuer's service-account "
        "key file (JSON, as Google's Cloud console downloads it) and the program's branding. "
        "The file is checked first: its shape, and that its RSA key signs and verifies. "
        "Replaces any earlier configuration.",
    )
    cf.add_argument("--merchant", type=common.positive_id, required=True, help="merchant id")
    cf.add_argument("--issuer-id", required=True, help="the issuer id (digits)")
    cf.add_argument("--service-account", required=True, help="service-account key file, JSON")
    cf.add_argument("--program-name", help="the loyalty program's name (the merchant's name)")
    cf.add_argument("--issuer-name", help="the issuer shown on passes (the merchant's name)")
    cf.add_argument(
        "--logo-url",
        help="public URL of the program logo Google shows (a PNG; default: the console's icon)",
    )
    cf.add_argument("--background-color", help="the cards' colour, e.g. #6f4e37")
    cf.set_defaults(func=cmd_google_configure)
