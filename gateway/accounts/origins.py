"""The web origins each merchant's pages may call the API from (CORS), and every process's
copy of them.

An origin is kept as browsers serialise the ``Origin`` header: ``scheme://host[:port]``,
lower case, without the scheme's default port. The copy holds every merchant's list
(a few origins each), so a preflight is answered from memory; the table's trigger
announces each change (NOTIFY) and every process reloads, as the token caches drop
revoked keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from gateway import db
from gateway.accounts import errors
from geo import sql

log = logging.getLogger(__name__)

_Q = sql.load("gateway.accounts", "origins.sql")

CHANNEL = "merchant_origins_changed"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowedOrigin:
    id: int
    origin: str
    created_at: dt.datetime


def normalise(text: str) -> str:
    """``text`` as browsers send it in ``Origin``, or InvalidOrigin saying what is wrong."""
    field = {"origin": "scheme://host[:port], for example https://shop.example.com"}
    raw = text.strip()
    try:
        parts = urllib.parse.urlsplit(raw)
        port = parts.port
    except ValueError:
        raise errors.InvalidOrigin(f"{raw!r} is not an origin", fields=field) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise errors.InvalidOrigin("an origin is http:// or https://", fields=field)
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in raw or "#" in raw:
        raise errors.InvalidOrigin(
            "an origin has no path, query or fragment: only scheme, host and port",
            fields=field,
        )
    if parts.username is not None or parts.password is not None or not parts.hostname:
        raise errors.InvalidOrigin("an origin needs a host and no user name", fields=field)
    host = parts.hostname
    if "*" in host:
        raise errors.InvalidOrigin("name each origin; wildcards are not allowed", fields=field)
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host.lower()
    except UnicodeError:
        raise errors.InvalidOrigin(f"{host!r} is not a host name", fields=field) from None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    origin = f"{scheme}://{host}"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        origin += f":{port}"
    if len(origin) > 300:
        raise errors.InvalidOrigin("the origin is longer than 300 characters", fields=field)
    return origin


def _row(r: asyncpg.Record) -> AllowedOrigin:
    return AllowedOrigin(id=r["id"], origin=r["origin"], created_at=r["created_at"])


async def add(
    conn: asyncpg.Connection, merchant_id: int, origin: str
) -> tuple[AllowedOrigin, bool]:
    """Allow ``origin`` (normalised) for the merchant; (the row, whether it is new)."""
    try:
        row = await conn.fetchrow(_Q["insert_origin"], merchant_id, normalise(origin))
    except asyncpg.ForeignKeyViolationError:
        raise errors.UnknownMerchant(f"no merchant {merchant_id}") from None
    assert row is not None
    return _row(row), bool(row["created"])


async def list_for(conn: asyncpg.Connection, merchant_id: int) -> list[AllowedOrigin]:
    return [_row(r) for r in await conn.fetch(_Q["list_origins"], merchant_id)]


async def remove(conn: asyncpg.Connection, merchant_id: int, origin_id: int) -> str | None:
    """Stop allowing the merchant's origin with this id; the origin, or None if none."""
    row = await conn.fetchrow(_Q["delete_origin"], merchant_id, origin_id)
    return None if row is None else str(row["origin"])


async def remove_named(conn: asyncpg.Connection, merchant_id: int, origin: str) -> bool:
    """Stop allowing ``origin`` for the merchant; whether it was allowed."""
    row = await conn.fetchrow(_Q["delete_origin_by_name"], merchant_id, normalise(origin))
    return row is not None


class OriginLists:
    """This process's copy of every merchant's allowed origins.

    Read on the request path without I/O. A change anywhere is announced by NOTIFY and
    the copy is reloaded; a lost listener (changes may have been missed) reloads it too,
    and so does a copy older than ``max_age`` seconds, in the background.
    """

    def __init__(self, *, max_age: float = 300.0) -> None:
        self._by_origin: dict[str, frozenset[int]] = {}
        self._max_age = max_age
        self._loaded_at = float("-inf")
        self._pool: asyncpg.Pool | None = None
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def merchants(self, origin: str) -> frozenset[int]:
        """The merchants that allow ``origin`` (as the browser sent it); often none."""
        if time.monotonic() - self._loaded_at > self._max_age:
            self._wanted.set()
        return self._by_origin.get(origin, frozenset())

    def attach(self, listener: Any) -> None:
        listener.subscribe(CHANNEL, lambda _payload: self._wanted.set())
        listener.on_lost(self._wanted.set)

    async def load(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(_Q["all_origins"])
        self._by_origin = {r["origin"]: frozenset(r["merchant_ids"]) for r in rows}
        self._loaded_at = time.monotonic()

    async def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        async with db.acquire(pool) as conn:
            await self.load(conn)
        self._task = asyncio.create_task(self._reload_loop(), name="origins-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _reload_loop(self) -> None:
        assert self._pool is not None
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                async with db.acquire(self._pool) as conn:
                    await self.load(conn)
            except Exception:
                log.warning("allowed origins reload failed; will retry", exc_info=True)
                await asyncio.sleep(1)
                self._wanted.set()


ORIGINS = web.AppKey("origins", OriginLists)
