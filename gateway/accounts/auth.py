"""API tokens: minting, hashing, verification with a short-lived cache, and principals.

A token reads ``gw_<role>_<public id>_<secret>``. The public id finds the key
row; the 256-bit secret is stored only as its SHA-256 and compared in constant
time. A high-entropy random secret needs no slow password hash: nobody can
guess a preimage, and the fast hash keeps verification off the hot path's budget.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from gateway import db
from geo import sql

_Q = sql.load("gateway.accounts")


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    REVIEWER = "reviewer"
    POS = "pos"
    APP = "app"
    SHOPPER = "shopper"

    @property
    def a_token(self) -> str:
        """How messages name a token of this role, with its article: "an app token"."""
        return _A_TOKEN[self]


# By sound, not by letter: "a POS token" (pee-oh-ess would take "a" either way).
_A_TOKEN = {
    Role.ADMIN: "an admin token",
    Role.MANAGER: "a manager token",
    Role.REVIEWER: "a reviewer token",
    Role.POS: "a POS token",
    Role.APP: "an app token",
    Role.SHOPPER: "a shopper token",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who is calling: a verified key, its merchant and its scope."""

    key_id: int
    merchant_id: int
    role: Role
    # None means every store of the merchant; an empty set means none at all.
    store_ids: frozenset[int] | None = None
    shopper_id: int | None = None

    def can_reach_store(self, store_id: int) -> bool:
        return self.store_ids is None or store_id in self.store_ids

    def can_reach_stores(self, store_ids: frozenset[int] | set[int]) -> bool:
        return self.store_ids is None or set(store_ids) <= self.store_ids


@dataclass(frozen=True, slots=True, kw_only=True)
class NewToken:
    public_id: str
    secret_hash: bytes
    token: str

    def __repr__(self) -> str:
        return f"NewToken(public_id={self.public_id!r}, token='**********')"


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def mint(role: Role) -> NewToken:
    public_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)  # 256 bits
    return NewToken(
        public_id=public_id,
        secret_hash=hash_secret(secret),
        token=f"gw_{role.value}_{public_id}_{secret}",
    )


def split(token: str) -> tuple[str, str] | None:
    """(public id, secret) of a well-formed token, else None."""
    parts = token.split("_", 3)
    if len(parts) != 4 or parts[0] != "gw" or len(parts[2]) != 16 or len(parts[3]) < 32:
        return None
    return parts[2], parts[3]


async def create_key(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    role: Role,
    store_ids: frozenset[int] | None = None,
    shopper_id: int | None = None,
    label: str | None = None,
) -> tuple[int, str]:
    """Store a new key and return (key id, token). The token exists only in this answer."""
    new = mint(role)
    async with conn.transaction():
        key_id: int = await conn.fetchval(
            _Q["insert_api_key"],
            new.public_id,
            new.secret_hash,
            merchant_id,
            role.value,
            store_ids is not None,
            shopper_id,
            label,
        )
        if store_ids:
            await conn.execute(_Q["insert_api_key_stores"], key_id, merchant_id, sorted(store_ids))
    return key_id, new.token


@dataclass(slots=True)
class _Entry:
    expires: float
    secret_hash: bytes | None
    principal: Principal | None


INVALIDATED_CHANNEL = "api_keys_invalidated"


class TokenVerifier:
    """Checks bearer tokens, caching verified keys for ``ttl`` seconds.

    The cache keeps the ping path free of an auth query per request. A revoked
    or deleted key is announced by the database (NOTIFY) and dropped from every
    replica's cache at once; ``ttl`` only bounds how long a missed notification
    could matter (and the cache is cleared whenever the listener reconnects).

    A token that verified is also remembered whole, in this process's memory only,
    for as long as its key's entry: the next request with the very same string is
    one dictionary lookup, without splitting it, hashing its secret and comparing.
    """

    def __init__(self, *, ttl: float = 300.0, max_entries: int = 1_000_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[str, _Entry] = {}
        # token -> (expiry, principal), and the one verified token of each public id.
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._token_of: dict[str, str] = {}
        # Told (shopper id, the key's row) when a shopper key is read from the database;
        # the row also carries the shopper's geofence state (see get_api_keys).
        self.on_shopper_row: Callable[[int, asyncpg.Record], None] | None = None
        # Keys to read, by public id, and the task reading them (see _load).
        self._waiting: dict[str, asyncio.Future[_Entry]] = {}
        self._reader: asyncio.Future[None] | None = None

    def forget(self, public_id: str) -> None:
        self._cache.pop(public_id, None)
        token = self._token_of.pop(public_id, None)
        if token is not None:
            self._verified.pop(token, None)

    def forget_all(self) -> None:
        self._cache.clear()
        self._verified.clear()
        self._token_of.clear()

    def attach(self, listener: Any) -> None:
        """Drop keys as soon as the database says they changed (see migration 0003)."""
        listener.subscribe(INVALIDATED_CHANNEL, self.forget)
        listener.on_lost(self.forget_all)

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and not expired nor forgotten since."""
        known = self._verified.get(token)
        if known is not None and known[0] >= time.monotonic():
            return known[1]
        return None

    async def verify(self, pool: asyncpg.Pool, token: str) -> Principal | None:
        known = self.cached(token)
        if known is not None:
            return known
        now = time.monotonic()
        parsed = split(token)
        if parsed is None:
            return None
        public_id, secret = parsed
        entry = self._cache.get(public_id)
        if entry is None or entry.expires < now:
            entry = await self._load(pool, public_id)
        presented = hash_secret(secret)
        # Compare even when the key is unknown so timing says nothing about existence.
        stored = entry.secret_hash or b"\0" * 32
        if not hmac.compare_digest(presented, stored) or entry.principal is None:
            return None
        if self._cache.get(public_id) is entry:  # not forgotten while it was loading
            self._verified[token] = (entry.expires, entry.principal)
            self._token_of[public_id] = token
        return entry.principal

    async def _load(self, pool: asyncpg.Pool, public_id: str) -> _Entry:
        """The key's entry, read from the database.

        Misses that arrive together share one query: a crowd of shoppers new to this
        process (a restart, a cold cache) costs a read per batch, not one per request.
        """
        waiting = self._waiting.get(public_id)
        if waiting is None:
            waiting = self._waiting[public_id] = asyncio.get_running_loop().create_future()
            if self._reader is None or self._reader.done():
                self._reader = asyncio.ensure_future(self._read_waiting(pool))
        # Shielded: one request giving up must not cancel the others' answer.
        return await asyncio.shield(waiting)

    async def _read_waiting(self, pool: asyncpg.Pool) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, {}
            try:
                async with db.acquire(pool) as conn:
                    rows = await conn.fetch(_Q["get_api_keys"], list(batch))
            except BaseException as exc:
                for future in batch.values():
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            found = {row["public_id"]: row for row in rows}
            now = time.monotonic()
            for public_id, future in batch.items():
                entry = self._keep(public_id, found.get(public_id), now)
                if not future.done():
                    future.set_result(entry)

    def _keep(self, public_id: str, row: asyncpg.Record | None, now: float) -> _Entry:
        if row is None:
            entry = _Entry(expires=now + self._ttl, secret_hash=None, principal=None)
        else:
            stores = row["store_ids"]
            entry = _Entry(
                expires=now + self._ttl,
                secret_hash=bytes(row["secret_hash"]),
                principal=Principal(
                    key_id=row["id"],
                    merchant_id=row["merchant_id"],
                    role=Role(row["role"]),
                    store_ids=frozenset(stores) if row["store_scoped"] else None,
                    shopper_id=row["shopper_id"],
                ),
            )
        if len(self._cache) >= self._max:
            self.forget_all()
        self._cache[public_id] = entry
        if row is not None and row["shopper_id"] is not None and self.on_shopper_row is not None:
            self.on_shopper_row(row["shopper_id"], row)
        return entry


VERIFIER = web.AppKey("verifier", TokenVerifier)
