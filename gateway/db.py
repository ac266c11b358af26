"""Database plumbing: where PostgreSQL is (given or embedded) and the connection pool.

With no ``DATABASE_URL`` the gateway runs PostgreSQL itself through the
``pgserver`` package, in ``<data dir>/pg``; the server is shared by every
process that uses the same data directory and stops when the last one exits.
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import logging
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import orjson
import psutil
from aiohttp import web

from gateway import secret
from gateway import settings as settings_mod

log = logging.getLogger(__name__)

EMBEDDED_DB_NAME = "gateway"

# Errors that mean "the database is not there right now", as opposed to a bug
# in a query: the HTTP layer answers them with 503 and Retry-After.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    # Not every OSError: a shopper's phone hanging up mid-request is one too.
    ConnectionRefusedError,
    asyncio.TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    # The protocol's state broke under us, as when the server ends the session mid-way.
    asyncpg.exceptions.InternalClientError,
)


class Unavailable(Exception):
    """No connection to the database could be had."""


# SQLSTATEs of a lost or refused connection (class 08), the server shutting
# down or starting (57P01-57P03), and connection slots exhausted (53300).
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (Unavailable, *UNAVAILABLE_ERRORS)):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and (state.startswith("08") or state in _UNAVAILABLE_STATES)


class acquire:
    """A pooled connection; failing to get one at all raises :class:`Unavailable`."""

    __slots__ = ("_cm", "_conn", "_pool")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._cm: Any = None
        self._conn: Any = None

    async def __aenter__(self) -> asyncpg.Connection:
        self._cm = self._pool.acquire()
        try:
            conn: asyncpg.Connection = await self._cm.__aenter__()
        except Exception as exc:
            raise Unavailable(str(exc)) from exc
        self._conn = conn
        return conn

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None and is_unavailable(exc):
            # A connection that failed like this is not fit to be handed out again.
            self._conn.terminate()
        await self._cm.__aexit__(exc_type, exc, tb)


class EmbeddedServer:
    """A handle on the embedded PostgreSQL under a data directory.

    pgserver keeps the PIDs of the processes using the server in ``pg/.handle_pids.json``
    and the last one out stops it. A process that died without its exit hooks (``kill -9``)
    would stay listed for ever and keep the server up, so every process prunes the dead
    PIDs when it attaches and again when it leaves.
    """

    def __init__(self, data_dir: Path, *, keep_running: bool = False) -> None:
        postgres_server = _pgserver()
        data_dir = data_dir.expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        pgdata = data_dir / "pg"
        # `gateway db url` pins the server up for tools like psql; `gateway db stop`
        # unpins and stops it. Otherwise the last gateway process out stops it.
        self._pin = data_dir / "pg.keep-running"
        if keep_running:
            self._pin.touch()
        # Processes started together (serve --workers, two replicas on one data dir)
        # must not both create the data directory: one initialises, the others wait
        # and then attach to the running server.
        with open(data_dir / "pg.start.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                prune_handles(pgdata)
                if is_running(pgdata):
                    log.debug(
                        "using the running embedded PostgreSQL", extra={"pgdata": str(pgdata)}
                    )
                else:
                    log.info("starting embedded PostgreSQL", extra={"pgdata": str(pgdata)})
                self._server = postgres_server.get_server(
                    pgdata, cleanup_mode=None if self._pin.exists() else "stop"
                )
                self._ensure_database(EMBEDDED_DB_NAME)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        # Registered after pgserver's own exit hook, so it runs just before it.
        atexit.register(self._before_exit)

    def url(self, database: str = EMBEDDED_DB_NAME) -> str:
        # pgserver gives a URL for the socket directory; rebuild it so we name our database.
        base: str = self._server.get_uri()
        head, _, query = base.partition("?")
        return f"{head.rsplit('/', 1)[0]}/{quote(database)}?{query}"

    def _ensure_database(self, name: str) -> None:
        # psql takes no bind parameters; the name is our own constant, checked here.
        assert name.isidentifier(), name
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")  # noqa: S608
        if "(1 row)" in exists:
            return
        self._server.psql(f'CREATE DATABASE "{name}";')
        # Loud, because a new empty database is what a command run with another data
        # directory than the server's gets: its keys would then answer 401 there.
        log.warning(
            "created a new, empty embedded database; a gateway started with another data "
            "directory (GATEWAY_DATA_DIR or --data-dir) does not see it",
            extra={"data_dir": str(self.data_dir)},
        )

    def _before_exit(self) -> None:
        prune_handles(self._server.pgdata)
        # `gateway db url` may have pinned the server since this process attached.
        if self._pin.exists():
            self._server.cleanup_mode = None

    def stop(self) -> None:
        self._server.cleanup()

    def unpin_and_stop(self) -> None:
        """Stop the server now, whoever else uses it (``gateway db stop``)."""
        self._pin.unlink(missing_ok=True)
        # Stopped by hand below; the exit hook must not try again.
        self._server.cleanup_mode = None
        from pgserver import _commands

        pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - generated at import, untyped
        pg_ctl(["-w", "stop"], pgdata=self._server.pgdata, user=self._server.system_user)


def _pgserver() -> Any:
    """pgserver's server module (imported on first use: `serve` with a URL never needs it)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (usual in containers).
        warnings.simplefilter("ignore")
        from pgserver import postgres_server
    return postgres_server


HANDLES_FILE = ".handle_pids.json"
"""pgserver's list of the PIDs using a server, in its data directory."""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def prune_handles(pgdata: Path) -> list[int]:
    """Drop the PIDs of dead processes from pgserver's handle file; the PIDs kept."""
    path = pgdata / HANDLES_FILE
    # pgserver's own lock, which it holds while it reads and writes the file.
    with _pgserver().PostgresServer._lock:
        try:
            pids: list[int] = orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return []
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            log.info(
                "pruned dead users of the embedded PostgreSQL",
                extra={"pids": sorted(set(pids) - set(alive))},
            )
            path.write_bytes(orjson.dumps(alive))
    return alive


def is_running(pgdata: Path) -> bool:
    """Whether the embedded server of ``pgdata`` runs now."""
    from pgserver import utils

    try:
        info = utils.PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return False
    return info is not None and bool(info.is_running())


_embedded: EmbeddedServer | None = None


def resolve_url(settings: settings_mod.Settings) -> str:
    """The URL to connect to, starting the embedded server when none is configured."""
    global _embedded
    if settings.database_url:
        return settings.database_url.reveal()
    if _embedded is None:
        _embedded = EmbeddedServer(settings.data_dir)
    return _embedded.url()


def resolve_direct_url(settings: settings_mod.Settings) -> str:
    """The URL for sessions a transaction pooler cannot carry: LISTEN, session advisory
    locks, the ping log. ``GATEWAY_DATABASE_DIRECT_URL`` if set, else :func:`resolve_url`."""
    if settings.database_direct_url:
        return settings.database_direct_url.reveal()
    return resolve_url(settings)


def _jsonb_encode(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection set-up: JSON columns come back as Python values."""
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, schema="pg_catalog", encoder=_jsonb_encode, decoder=orjson.loads
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release hook that skips asyncpg's default reset.

    The default runs ``RESET ALL; UNLISTEN *; ...`` on every release: a round trip
    per request. Pool connections never LISTEN, never change session settings
    and release their advisory locks themselves, so there is nothing to reset.
    """


async def create_pool(
    url: str, *, min_size: int = 2, max_size: int = 10, pooled: bool = False
) -> asyncpg.Pool:
    """A pool on ``url``; ``pooled`` when the URL is a transaction pooler's (PgBouncer).

    Behind a transaction pooler each transaction (each statement outside one) may run on
    another server connection, so a statement prepared on one is unknown on the next.
    ``pooled`` turns asyncpg's statement cache off: it then sends every statement unnamed,
    parsed again in the same message batch as its execution (deploy/SCALING.md says why
    this and not PgBouncer's ``max_prepared_statements``).
    """
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_keep_session,
        statement_cache_size=0 if pooled else 100,
        # A dead server must fail requests quickly (503), not hang them.
        timeout=5,
        command_timeout=30,
        server_settings={"application_name": "gateway", "timezone": "UTC"},
    )
    assert pool is not None
    return pool


async def connect(url: str) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(
        url, timeout=10, server_settings={"application_name": "gateway", "timezone": "UTC"}
    )
    await init_connection(conn)
    return conn


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def create_database(server_url: str, name: str, *, replace: bool = False) -> str:
    """Create database ``name`` on ``server_url``'s server (dropping it first with
    ``replace``); its URL. ``name`` is the caller's own identifier, never user input."""
    assert name.replace("_", "").isalnum(), name
    conn = await connect(server_url)
    try:
        if replace:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    assert name.replace("_", "").isalnum(), name
    conn = await connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def describe(url: str) -> str:
    return secret.mask_url(url)


POOL = web.AppKey("pool", asyncpg.Pool)
DB_URL = web.AppKey("db_url", str)
DIRECT_URL = web.AppKey("direct_url", str)
"""Straight to PostgreSQL (LISTEN, the ping log, job locks); DB_URL's value without a pooler."""
