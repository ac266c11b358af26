"""Test databases: one server per run, a template migrated once, a fresh copy per test."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import asyncpg

from gateway import db, migrate


class PgServer:
    """The PostgreSQL the suite runs on: ``DATABASE_URL`` if set, else an embedded one."""

    def __init__(self) -> None:
        self._embedded: db.EmbeddedServer | None = None
        self._tmp: str | None = None
        given = os.environ.get("DATABASE_URL")
        if given:
            self.admin_url = given
        else:
            self._tmp = tempfile.mkdtemp(prefix="gateway-test-pg-")
            self._embedded = db.EmbeddedServer(Path(self._tmp))
            self.admin_url = self._embedded.url("postgres")
        self.prefix = f"gwt_{secrets.token_hex(3)}"
        self.template = f"{self.prefix}_template"
        asyncio.run(self._make_template())

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.admin_url)

    async def _make_template(self) -> None:
        conn = await self.admin()
        try:
            await conn.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await conn.close()
        tpl = await db.connect(db.with_database(self.admin_url, self.template))
        try:
            await migrate.migrate(tpl)
        finally:
            await tpl.close()

    async def create(self, *, empty: bool = False) -> tuple[str, str]:
        """A new database (a copy of the migrated template unless ``empty``): (name, url)."""
        name = f"{self.prefix}_{secrets.token_hex(4)}"
        conn = await self.admin()
        try:
            if empty:
                await conn.execute(f'CREATE DATABASE "{name}"')
            else:
                await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await conn.close()
        return name, db.with_database(self.admin_url, name)

    async def drop(self, name: str) -> None:
        conn = await self.admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def close(self) -> None:
        async def drop_all() -> None:
            conn = await self.admin()
            try:
                names = await conn.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1", self.prefix + "%"
                )
                for row in names:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{row[0]}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop_all())
        if self._embedded is not None:
            self._embedded.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
