"""The ``gateway`` command: serve, migrate, and manage merchants and API keys.

Each command group has its module here with its parser function and its commands;
:func:`build_parser` puts them together. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg

from gateway import datadir, logs, settings
from gateway.cli import (
    bench,
    common,
    config,
    database,
    demo,
    keys,
    merchants,
    origins,
    outbox,
    pings,
    serve,
    soak,
    wallet,
    worker,
)
from gateway.http import errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Geo-triggered offer and mobile-wallet gateway. With DATABASE_URL unset, "
        "an embedded PostgreSQL is kept in the data directory: GATEWAY_DATA_DIR or --data-dir, "
        "else a per-user directory that is the same whatever the current directory "
        f"(here {datadir.default_data_dir()}).",
    )
    common.add_setting_flags(parser, "log_level", "log_format", "data_dir")
    # Not required: plain `gateway` lists the commands (see main).
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.add_parser(sub)
    worker.add_parser(sub)
    outbox.add_parser(sub)
    wallet.add_parser(sub)
    demo.add_parser(sub)
    bench.add_parser(sub)
    soak.add_parser(sub)
    database.add_migrate_parser(sub)
    merchants.add_parser(sub)
    keys.add_parser(sub)
    origins.add_parser(sub)
    pings.add_parser(sub)
    database.add_db_parser(sub)
    config.add_parser(sub)
    return parser


def command_list(parser: argparse.ArgumentParser) -> str:
    """Every command with its one-line help: what plain ``gateway`` prints."""
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    choices = sub._choices_actions
    width = max(len(c.dest) for c in choices) + 2
    lines = [f"  {c.dest:<{width}}{c.help}" for c in choices]
    return (
        f"{parser.format_usage()}\ncommands:\n"
        + "\n".join(lines)
        + f"\n\n`{parser.prog} COMMAND --help` shows a command's options, "
        f"`{parser.prog} --help` the global options.\n"
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _unwind_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind the command as Ctrl-C does, instead of ending the process
    on the spot: its ``finally`` blocks and exit hooks run, and the last process using the
    embedded PostgreSQL stops it. (``serve`` and ``worker`` handle SIGTERM themselves.)"""
    signums = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, _interrupt) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        sys.stdout.write(command_list(parser))
        return 0
    try:
        cfg = common.load_settings(args)
    except settings.SettingsError as exc:
        parser.error(str(exc))
    logs.configure(cfg.log_level, cfg.log_format)
    with _unwind_on_signals():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
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
