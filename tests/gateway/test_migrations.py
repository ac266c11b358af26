"""Migrations: all of them apply to an empty database, exactly once, even when raced."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
from pathlib import Path

import asyncpg
import pytest

from gateway import db, migrate
from tests.support import proc
from tests.support.pg import PgServer


async def test_all_migrations_apply_to_an_empty_database(pg: PgServer) -> None:
    name, url = await pg.create(empty=True)
    try:
        conn = await db.connect(url)
        try:
            assert await migrate.current_version(conn) == 0
            applied = await migrate.migrate(conn)
            assert [m.version for m in applied] == list(range(1, migrate.latest_version() + 1))
            assert await migrate.current_version(conn) == migrate.latest_version()
            assert await migrate.migrate(conn) == []
            rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
            assert len(rows) == migrate.latest_version()
        finally:
            await conn.close()
    finally:
        await pg.drop(name)


async def test_concurrent_migrations_apply_each_file_once(pg: PgServer) -> None:
    name, url = await pg.create(empty=True)
    try:
        conns = [await db.connect(url) for _ in range(6)]
        try:
            results = await asyncio.gather(*(migrate.migrate(c) for c in conns))
            versions = sorted(m.version for applied in results for m in applied)
            assert versions == list(range(1, migrate.latest_version() + 1))
            # exactly one of the racers did the work
            assert sum(1 for applied in results if applied) == 1
        finally:
            for c in conns:
                await c.close()
    finally:
        await pg.drop(name)


async def test_a_changed_migration_is_refused(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
    with pytest.raises(migrate.MigrationError, match="forward-only"):
        await migrate.migrate(conn)


def test_migration_files_are_numbered_without_gaps() -> None:
    found = migrate.available()
    assert found, "no migrations shipped"
    assert [m.version for m in found] == list(range(1, len(found) + 1))


_PREFIX = {"p": "pk__", "f": "fk__", "u": "uq__", "c": "ck__"}


async def test_constraint_and_index_names_follow_the_convention(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        """
        SELECT c.conname, c.contype::text AS contype, t.relname
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = 'public' AND c.contype IN ('p', 'f', 'u', 'c')
          -- A partition's keys and indexes are named by PostgreSQL after its parent's.
          AND NOT t.relispartition
        """
    )
    bad = [
        (r["relname"], r["conname"])
        for r in rows
        if not r["conname"].startswith(_PREFIX[r["contype"]])
    ]
    assert not bad, f"constraints not named by the convention: {bad}"
    indexes = await conn.fetch(
        """
        SELECT i.relname AS index, t.relname AS tbl
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = 'public' AND NOT t.relispartition
        """
    )
    bad = [r["index"] for r in indexes if not re.match(r"^(pk|uq|ix)__", r["index"])]
    assert not bad, f"indexes not named by the convention: {bad}"


# --- functions and triggers -----------------------------------------------------------------

# Functions and triggers the function files define or redefine since the last numbered
# migration that touched them. Everything else must come out of the files exactly as the
# numbered migrations left it; add a name here when you change it in its file.
_CHANGED_SINCE_MIGRATIONS = {
    "function void_redemption",
    "function pass_updates_google",
    "trigger pass_updates_google",
    "trigger offers_changed",
    "trigger stores_changed_offers",
}

_DEFINITIONS = """
SELECT 'function ' || p.proname AS name, pg_get_functiondef(p.oid) AS def
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public'
UNION ALL
SELECT 'trigger ' || t.tgname, pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND NOT t.tgisinternal
"""


async def _definitions(conn: asyncpg.Connection) -> dict[str, str]:
    return {r["name"]: r["def"] for r in await conn.fetch(_DEFINITIONS)}


def _named_in_function_files() -> set[str]:
    created = re.compile(r"^CREATE OR REPLACE (FUNCTION|TRIGGER) (\w+)", re.MULTILINE)
    return {
        f"{kind.lower()} {name}"
        for package in migrate.FUNCTION_FILES
        for kind, name in created.findall(migrate.functions_sql(package))
    }


async def test_function_files_define_what_the_migrations_did(pg: PgServer) -> None:
    """The files hold every function and trigger, as the numbered migrations made them."""
    history_name, history_url = await pg.create(empty=True)
    name, url = await pg.create(empty=True)
    try:
        history = await db.connect(history_url)
        conn = await db.connect(url)
        try:
            for migration in migrate.available():
                await history.execute(migration.sql)
            before = await _definitions(history)
            await migrate.migrate(conn)
            after = await _definitions(conn)
        finally:
            await history.close()
            await conn.close()
    finally:
        await pg.drop(history_name)
        await pg.drop(name)
    assert set(after) == _named_in_function_files()
    assert set(after) - set(before) <= _CHANGED_SINCE_MIGRATIONS
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed <= _CHANGED_SINCE_MIGRATIONS


async def test_migrating_again_changes_no_function(conn: asyncpg.Connection) -> None:
    before = await _definitions(conn)
    assert await migrate.migrate(conn) == []
    assert await _definitions(conn) == before


async def test_an_edited_function_file_takes_effect_on_the_next_migrate(
    database_url: str, tmp_path: Path
) -> None:
    # A copy of the packages with one function edited, migrated by the real command.
    root = Path(__file__).resolve().parents[2]
    for package in ("gateway", "geo", "offers", "wallet"):
        shutil.copytree(root / package, tmp_path / "src" / package)
    edited = tmp_path / "src" / "offers" / "functions.sql"
    text = edited.read_text(encoding="utf-8")
    old = (
        "    SELECT (at AT TIME ZONE coalesce((SELECT timezone FROM stores WHERE id = store), "
        "'UTC'))::date\n"
    )
    assert old in text
    edited.write_text(text.replace(old, "    SELECT DATE '2001-02-03'\n"), encoding="utf-8")
    # PYTHONSAFEPATH: python -m must not import this checkout from the working directory.
    environ = proc.env(database_url, tmp_path, PYTHONPATH=str(tmp_path / "src"), PYTHONSAFEPATH="1")
    code, _, err = await proc.run("migrate", environ=environ)
    assert code == 0, err
    conn = await db.connect(database_url)
    try:
        assert str(await conn.fetchval("SELECT store_day(1, now())")) == "2001-02-03"
        # and the files of this checkout put it back
        await migrate.migrate(conn)
        assert await conn.fetchval("SELECT store_day(NULL, '2024-05-06T12:00Z')") == dt.date(
            2024, 5, 6
        )
    finally:
        await conn.close()


async def test_functions_are_left_alone_on_a_database_newer_than_the_code(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'newer', 'x')"
    )
    await conn.execute(
        "CREATE OR REPLACE FUNCTION store_day(store bigint, at timestamptz) RETURNS date "
        "LANGUAGE sql STABLE AS $$ SELECT DATE '2001-02-03' $$"
    )
    assert await migrate.migrate(conn) == []
    assert str(await conn.fetchval("SELECT store_day(1, now())")) == "2001-02-03"


async def test_unchanged_function_files_are_not_applied_again(conn: asyncpg.Connection) -> None:
    # Replacing a trigger locks its table: a replica starting under load must not do it for
    # nothing. A function changed behind migrate's back stays as it is while the files
    # migrate last applied are unchanged.
    await conn.execute(
        "CREATE OR REPLACE FUNCTION store_day(store bigint, at timestamptz) RETURNS date "
        "LANGUAGE sql STABLE AS $$ SELECT DATE '2001-02-03' $$"
    )
    assert await migrate.migrate(conn) == []
    assert str(await conn.fetchval("SELECT store_day(1, now())")) == "2001-02-03"
    await conn.execute("UPDATE schema_functions SET checksum = 'changed' WHERE package = 'offers'")
    await migrate.migrate(conn)
    assert await conn.fetchval("SELECT store_day(NULL, '2024-05-06T12:00Z')") == dt.date(2024, 5, 6)
