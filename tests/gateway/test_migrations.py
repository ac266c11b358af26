"""Migrations: all of them apply to an empty database, exactly once, even when raced."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest

from gateway import db, migrate
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
        WHERE n.nspname = 'public'
        """
    )
    bad = [r["index"] for r in indexes if not re.match(r"^(pk|uq|ix)__", r["index"])]
    assert not bad, f"indexes not named by the convention: {bad}"
