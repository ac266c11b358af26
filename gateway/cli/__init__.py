"""The ``gateway`` command: serve, migrate, and manage merchants and API keys.

Each command group has its module here with its parser function and its commands;
:func:`build_parser` puts them together. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import asyncpg

from gateway import logs, settings
from gateway.cli import (
    bench,
    common,
    config,
    database,
    demo,
    keys,
    merchants,
    outbox,
    pings,
    serve,
    wallet,
    worker,
)
from gateway.http import errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Geo-triggered offer and mobile-wallet gateway. With DATABASE_URL unset, "
        "an embedded PostgreSQL is kept under GATEWAY_DATA_DIR (default ./.gateway).",
    )
    common.add_setting_flags(parser, "log_level", "log_format")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parser(sub)
    worker.add_parser(sub)
    outbox.add_parser(sub)
    wallet.add_parser(sub)
    demo.add_parser(sub)
    bench.add_parser(sub)
    database.add_migrate_parser(sub)
    merchants.add_parser(sub)
    keys.add_parser(sub)
    pings.add_parser(sub)
    database.add_db_parser(sub)
    config.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = common.load_settings(args)
    except settings.SettingsError as exc:
        parser.error(str(exc))
    logs.configure(cfg.log_level, cfg.log_format)
    func: common.Command = args.func
    try:
        try:
            return func(args)
        except errors.DOMAIN_ERRORS as exc:
            raise errors.from_domain(exc) from exc
    except errors.ApiError as exc:
        sys.stderr.write(f"gateway: {exc.message}\n")
        for field, problem in exc.fields.items():
            sys.stderr.write(f"  {field}: {problem}\n")
        return 2
    except (OSError, asyncpg.PostgresError) as exc:
        sys.stderr.write(f"gateway: database error: {logs.scrub(str(exc))}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
