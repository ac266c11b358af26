"""What every command shares: settings from the environment and flags, JSON output,
database work on a migrated database, and id arguments."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from gateway import db, migrate, settings
from gateway.http import api

Command = Callable[[argparse.Namespace], int]


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def add_setting_flags(
    parser: argparse.ArgumentParser, *names: str, help: str | None = None
) -> None:
    """Add the flags of these settings, each parsed as its environment variable is.

    A flag's value lands on the namespace under the setting's name, None when unset, so
    :func:`load_settings` can lay every flag given over the environment.
    """
    for name in names:
        decl = settings.BY_NAME[name]
        assert decl.flag is not None, f"setting {name} has no flag"
        text = help or (
            f"{decl.meaning.replace('`', '')} (env {decl.env}, default {decl.default_text()})"
        )
        if decl.kind is bool:
            parser.add_argument(
                decl.flag, dest=name, action=argparse.BooleanOptionalAction, help=text
            )
        else:
            parser.add_argument(
                decl.flag, dest=name, type=_flag_parser(decl), choices=decl.choices(), help=text
            )


def _flag_parser(decl: settings.Declared) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            return decl.parse(raw, decl.flag)
        except settings.SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = decl.name
    return parse


def load_settings(args: argparse.Namespace) -> settings.Settings:
    """The environment's settings with the flags given on the command line laid over."""
    flags = {d.name: getattr(args, d.name, None) for d in settings.DECLARED if d.flag}
    return settings.Settings.from_env().replace(**flags)


async def with_db(
    cfg: settings.Settings, work: Callable[[asyncpg.Connection], Awaitable[Any]]
) -> Any:
    """Run one piece of CLI work on a migrated database (past any pooler: migrations
    hold a session advisory lock)."""
    url = db.resolve_direct_url(cfg)
    conn = await db.connect(url)
    try:
        await migrate.migrate(conn)
        return await work(conn)
    finally:
        await conn.close()


async def migrate_url(url: str) -> list[migrate.Migration]:
    conn = await db.connect(url)
    try:
        return await migrate.migrate(conn)
    finally:
        await conn.close()


def positive_id(text: str) -> int:
    value = api.as_id(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (digits only)")
    return value


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it roughly halves the per-request cost), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
