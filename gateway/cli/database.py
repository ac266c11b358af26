"""``gateway migrate`` and ``gateway db``: the schema, and the embedded server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from gateway import db, migrate, secret
from gateway.cli import common


def cmd_migrate(args: argparse.Namespace) -> int:
    cfg = common.load_settings(args)
    applied = asyncio.run(common.migrate_url(db.resolve_direct_url(cfg)))
    common.print_json(
        {
            "applied": [f"{m.version:04d}_{m.name}" for m in applied],
            "schema_version": migrate.latest_version(),
        }
    )
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    cfg = common.load_settings(args)
    if cfg.database_url is None:
        # Keep the embedded server up after we exit, so the URL stays usable.
        server = db.EmbeddedServer(cfg.data_dir, keep_running=True)
        sys.stdout.write(server.url() + "\n")
    else:
        sys.stdout.write(secret.mask_url(cfg.database_url.reveal()) + "\n")
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    cfg = common.load_settings(args)
    if cfg.database_url is not None:
        sys.stderr.write("gateway: DATABASE_URL is set; there is no embedded server to stop\n")
        return 2
    db.EmbeddedServer(cfg.data_dir).unpin_and_stop()
    sys.stderr.write("embedded PostgreSQL stopped\n")
    return 0


def add_migrate_parser(sub: Any) -> None:
    mig = sub.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply pending migrations under an advisory lock, then the "
        "packages' function and trigger files if one changed; safe to run from several "
        "replicas at once.",
    )
    mig.set_defaults(func=cmd_migrate)


def add_db_parser(sub: Any) -> None:
    dbp = sub.add_parser("db", help="database helpers", description="Database helpers.")
    dsub = dbp.add_subparsers(dest="action", required=True, metavar="ACTION")
    du = dsub.add_parser(
        "url",
        help="print the database URL (starts the embedded server)",
        description="Print the database URL, for psql. With the embedded "
        "server, it is started and left running.",
    )
    du.set_defaults(func=cmd_db_url)
    ds = dsub.add_parser(
        "stop",
        help="stop the embedded server (undoes `db url`)",
        description="Stop the embedded PostgreSQL now, even if `gateway db url` left it up.",
    )
    ds.set_defaults(func=cmd_db_stop)
