"""Forward-only schema migrations: numbered SQL files applied in order, once.

Every process may call :func:`migrate` at start-up. A PostgreSQL advisory lock
makes concurrent callers queue, so exactly one of them applies each file and
the rest find nothing to do. After them, the packages' ``functions.sql`` (the
current plpgsql/sql functions and triggers, written with CREATE OR REPLACE) are
re-applied whenever one of them changed or a migration ran, so those files, not
the history, say what runs. Unchanged files are not re-applied: replacing a
trigger locks its table, which a replica starting under load should not do for
nothing. A function whose signature or result type changes needs a numbered
migration that drops it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from geo import locks

log = logging.getLogger(__name__)

# The packages whose functions.sql holds their functions and triggers, in the order they
# are applied (SQL-language bodies are checked at creation, so callees come first).
FUNCTION_FILES = ("geo", "offers", "gateway.accounts", "gateway.delivery")

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The migrations on disk and the ones recorded in the database disagree."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """The migrations shipped with the package, in order."""
    found = []
    for entry in resources.files("gateway.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(
                Migration(
                    version=int(match["version"]),
                    name=match["name"],
                    sql=entry.read_text(encoding="utf-8"),
                )
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration numbers must run 1..n without gaps, found {versions}")
    return found


def latest_version() -> int:
    return len(available())


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer CONSTRAINT pk__schema_migrations PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every pending migration, then the function files; returns the migrations applied."""
    await conn.execute("SELECT pg_advisory_lock($1)", locks.MIGRATE)
    try:
        await conn.execute(_CREATE_TABLE)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        done = {r["version"]: r["checksum"] for r in rows}
        applied = []
        for migration in available():
            if await _apply(conn, migration, done.get(migration.version)):
                applied.append(migration)
        unknown = sorted(set(done) - {m.version for m in available()})
        if unknown:
            # Newer code migrated this database: its functions are newer than ours too.
            log.warning(
                "database has migrations this code does not know; functions left as they are",
                extra={"versions": unknown},
            )
        else:
            await _apply_functions(conn, force=bool(applied))
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", locks.MIGRATE)
    return applied


async def _apply(conn: asyncpg.Connection, migration: Migration, recorded: str | None) -> bool:
    """Apply one migration unless it was (``recorded`` is its checksum then); True if applied."""
    if recorded is not None:
        if recorded != migration.checksum:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} was changed after "
                "it was applied; migrations are forward-only, add a new file instead"
            )
        return False
    async with conn.transaction():
        await conn.execute(migration.sql)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            migration.version,
            migration.name,
            migration.checksum,
        )
    log.info("migration applied", extra={"version": migration.version, "migration": migration.name})
    return True


_CREATE_FUNCTIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_functions (
    package     text CONSTRAINT pk__schema_functions PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def _apply_functions(conn: asyncpg.Connection, *, force: bool) -> bool:
    """Re-apply every function file if one changed (or ``force``); True if it did."""
    await conn.execute(_CREATE_FUNCTIONS_TABLE)
    rows = await conn.fetch("SELECT package, checksum FROM schema_functions")
    recorded = {r["package"]: r["checksum"] for r in rows}
    texts = {package: functions_sql(package) for package in FUNCTION_FILES}
    sums = {package: hashlib.sha256(text.encode()).hexdigest() for package, text in texts.items()}
    if not force and recorded == sums:
        return False
    async with conn.transaction():
        # All of them, in order: a changed callee may be used by another file's bodies.
        for text in texts.values():
            await conn.execute(text)
        await conn.execute("DELETE FROM schema_functions")
        await conn.executemany(
            "INSERT INTO schema_functions (package, checksum) VALUES ($1, $2)", sums.items()
        )
    log.info("function files applied", extra={"packages": list(texts)})
    return True


def functions_sql(package: str) -> str:
    """The text of ``package``'s functions.sql."""
    return resources.files(package).joinpath("functions.sql").read_text(encoding="utf-8")


async def current_version(conn: asyncpg.Connection) -> int:
    """The highest applied version, or 0 on an empty database."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
