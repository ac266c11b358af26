"""``gateway wallet``: Apple Wallet helpers: development certificates, a merchant's
certificates and APNs key, and one upkeep pass; the Google Wallet commands are added from
gateway/cli/google_wallet.py."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

import asyncpg

from gateway import clock, db
from gateway.accounts import tenancy
from gateway.cli import common, google_wallet
from gateway.http import errors
from gateway.jobs import upkeep


def cmd_wallet_dev_certs(args: argparse.Namespace) -> int:
    from wallet import passes

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    made = passes.dev_certificates(args.pass_type_id, args.team_id)
    files = {
        "wwdr-dev-ca.pem": made.ca_pem,
        "pass-certificate.pem": made.cert_pem,
        "pass-key.pem": made.key_pem,
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    (out / "pass-key.pem").chmod(0o600)
    (out / "README.txt").write_text(
        f"{passes.DEV_LABEL}\n\nA throwaway CA (standing in for Apple's WWDR certificate) and a "
        f"pass certificate for {args.pass_type_id} it signed. Passes signed with them verify "
        "against the CA with `openssl cms -verify -binary`, but Apple devices refuse them.\n"
    )
    common.print_json(
        {
            "warning": passes.DEV_LABEL,
            "files": sorted(str(out / n) for n in [*files, "README.txt"]),
        }
    )
    return 0


def cmd_wallet_configure(args: argparse.Namespace) -> int:
    from wallet import apns, passes
    from wallet.store import passes as pass_store

    def read(path: str, what: str) -> str:
        try:
            return Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise errors.ValidationFailed(f"cannot read the {what} at {path}: {exc}") from None

    cert, key, wwdr = read(args.cert, "certificate"), read(args.key, "key"), read(args.wwdr, "WWDR")
    try:
        signer = passes.Signer.from_pem(cert.encode(), key.encode(), wwdr.encode())
        signer.check()
        signer.sign(b"{}")
    except (ValueError, TypeError) as exc:
        raise errors.ValidationFailed(f"the certificate, key or WWDR is unusable: {exc}") from None
    apns_key = read(args.apns_key, "APNs key") if args.apns_key else None
    if apns_key is not None:
        if not args.apns_key_id:
            raise errors.ValidationFailed("--apns-key needs --apns-key-id")
        try:
            apns.TokenAuth(apns_key.encode(), args.apns_key_id, args.team_id).header()
        except (ValueError, TypeError) as exc:
            raise errors.ValidationFailed(f"the APNs key is unusable: {exc}") from None

    async def work(conn: asyncpg.Connection) -> None:
        if await tenancy.get_merchant(conn, args.merchant) is None:
            raise errors.NotFound(f"no merchant {args.merchant}")
        await pass_store.put_wallet_config(
            conn,
            merchant_id=args.merchant,
            pass_type_id=args.pass_type_id,
            team_id=args.team_id,
            organization=args.organization,
            cert_pem=cert,
            key_pem=key,
            wwdr_pem=wwdr,
            apns_key_pem=apns_key,
            apns_key_id=args.apns_key_id if apns_key else None,
        )

    asyncio.run(common.with_db(common.load_settings(args), work))
    common.print_json(
        {
            "merchant": str(args.merchant),
            "pass_type_id": args.pass_type_id,
            "team_id": args.team_id,
            "apns": "token" if apns_key else "certificate",
        }
    )
    return 0


def cmd_wallet_upkeep(args: argparse.Namespace) -> int:
    cfg = common.load_settings(args)

    def progress(what: str, count: int) -> None:
        sys.stderr.write(f"\r{what}: {count}\x1b[K")
        if what == "coupon passes expired":
            sys.stderr.write("\n")
        sys.stderr.flush()

    async def work(conn: asyncpg.Connection) -> upkeep.Summary | None:
        pool = await db.create_pool(db.resolve_direct_url(cfg), min_size=1, max_size=2)
        try:
            return await upkeep.run(pool, now=clock.SystemClock().now(), progress=progress)
        finally:
            await pool.close()

    summary = asyncio.run(common.with_db(cfg, work))
    if summary is None:
        sys.stderr.write("gateway: another process is running upkeep; try again later\n")
        return 1
    common.print_json(dataclasses.asdict(summary))
    return 0


def add_parser(sub: Any) -> None:
    wal = sub.add_parser(
        "wallet",
        help="Apple and Google Wallet helpers",
        description="Apple and Google Wallet helpers.",
    )
    wsub = wal.add_subparsers(dest="action", required=True, metavar="ACTION")
    dc = wsub.add_parser(
        "dev-certs",
        help="make a local test CA and pass certificate (not valid on Apple devices)",
        description="Write a throwaway CA (standing in for Apple's WWDR certificate), a pass "
        "certificate and its key to --out. They are labelled as not valid on Apple devices.",
    )
    dc.add_argument("--out", default="wallet-dev-certs", help="directory (./wallet-dev-certs)")
    dc.add_argument("--pass-type-id", default="pass.dev.gateway", help="pass type identifier")
    dc.add_argument("--team-id", default="DEVTEAM000", help="team identifier")
    dc.set_defaults(func=cmd_wallet_dev_certs)
    _add_configure(wsub)
    google_wallet.add_parsers(wsub)
    up = wsub.add_parser(
        "upkeep",
        help="expire points, recompute tiers, refresh expired coupon passes",
        description="One wallet upkeep pass (serve runs it every GATEWAY_WALLET_UPKEEP_SECONDS): "
        "points older than the merchant's points_expire_days expire, oldest first; tiers are "
        "recomputed from the points earned in the tier window (so they can fall); coupon "
        "passes whose coupon expired unredeemed are marked. Every change queues an APNs pass "
        "update. Prints a JSON summary.",
    )
    up.set_defaults(func=cmd_wallet_upkeep)


def _add_configure(wsub: Any) -> None:
    cf = wsub.add_parser(
        "configure",
        help="set a merchant's pass certificates and APNs key (files, e.g. mounted secrets)",
        description="Store the merchant's Pass Type ID certificate, its private key and "
        "Apple's WWDR certificate (PEM files), and optionally an APNs auth key (.p8) for "
        "token-based pass-update pushes; without one, the pass certificate is used. The "
        "files are checked (the key must sign with the certificate) before anything is "
        "stored. Replaces the development certificates made on first use.",
    )
    cf.add_argument("--merchant", type=common.positive_id, required=True, help="merchant id")
    cf.add_argument("--pass-type-id", required=True, help="e.g. pass.com.example.loyalty")
    cf.add_argument("--team-id", required=True, help="the Apple developer team id")
    cf.add_argument("--organization", required=True, help="shown on the pass")
    cf.add_argument("--cert", required=True, help="pass certificate, PEM")
    cf.add_argument("--key", required=True, help="its private key, PEM (unencrypted)")
    cf.add_argument("--wwdr", required=True, help="Apple WWDR intermediate certificate, PEM")
    cf.add_argument("--apns-key", help="APNs auth key (.p8), PEM")
    cf.add_argument("--apns-key-id", help="the APNs key's id (10 characters)")
    cf.set_defaults(func=cmd_wallet_configure)
