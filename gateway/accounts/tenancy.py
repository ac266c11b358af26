"""Merchants, API keys and shopper enrolment: the tenancy the rest of the gateway relies on.

Functions take a connection; the caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from gateway.accounts import auth, errors
from geo import sql

_Q = sql.load("gateway.accounts")


@dataclass(frozen=True, slots=True, kw_only=True)
class Merchant:
    id: int
    name: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyInfo:
    id: int
    public_id: str
    role: auth.Role
    store_ids: tuple[int, ...] | None
    label: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Shopper:
    id: int
    merchant_id: int
    name: str | None
    email: str | None
    marketing_consent: bool
    timezone: str | None
    # Kept by the loyalty ledger; audience rules read them.
    tier: str | None
    points: int
    tags: list[str]
    created_at: dt.datetime
    # Given by the shopper, for birthday journeys (offers.journeys).
    birthday: dt.date | None = None


async def create_merchant(conn: asyncpg.Connection, name: str) -> Merchant:
    row = await conn.fetchrow(_Q["insert_merchant"], name)
    assert row is not None
    return Merchant(**dict(row))


async def get_merchant(conn: asyncpg.Connection, merchant_id: int) -> Merchant | None:
    row = await conn.fetchrow(_Q["get_merchant"], merchant_id)
    return None if row is None else Merchant(**dict(row))


async def list_merchants(conn: asyncpg.Connection) -> list[Merchant]:
    return [Merchant(**dict(r)) for r in await conn.fetch(_Q["list_merchants"])]


async def create_key(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    role: auth.Role,
    store_ids: frozenset[int] | None = None,
    label: str | None = None,
) -> tuple[int, str]:
    """A new operator key (every role but ``shopper``); returns (id, token)."""
    if role is auth.Role.SHOPPER:
        raise errors.InvalidKeyRequest(
            "shopper tokens come from enrolment (POST /v1/shoppers), not from key creation",
            fields={"role": "must not be shopper"},
        )
    if await get_merchant(conn, merchant_id) is None:
        raise errors.UnknownMerchant(f"no merchant {merchant_id}")
    if store_ids is not None:
        if not store_ids:
            raise errors.InvalidKeyRequest(
                "a store-scoped key needs at least one store", fields={"store_ids": "empty"}
            )
        found = await conn.fetchval(_Q["count_merchant_stores"], merchant_id, sorted(store_ids))
        if found != len(store_ids):
            raise errors.InvalidKeyRequest(
                "some stores do not exist in this merchant",
                fields={"store_ids": "unknown store for this merchant"},
            )
    return await auth.create_key(
        conn, merchant_id=merchant_id, role=role, store_ids=store_ids, label=label
    )


async def list_keys(conn: asyncpg.Connection, merchant_id: int) -> list[KeyInfo]:
    out = []
    for r in await conn.fetch(_Q["list_api_keys"], merchant_id):
        out.append(
            KeyInfo(
                id=r["id"],
                public_id=r["public_id"],
                role=auth.Role(r["role"]),
                store_ids=tuple(r["store_ids"]) if r["store_scoped"] else None,
                label=r["label"],
                created_at=r["created_at"],
                revoked_at=r["revoked_at"],
            )
        )
    return out


async def key_scope(
    conn: asyncpg.Connection, key_id: int, merchant_id: int
) -> tuple[str, frozenset[int] | None] | None:
    """(public id, store scope) of a merchant's operator key, or None if there is none."""
    row = await conn.fetchrow(_Q["get_api_key_scope"], key_id, merchant_id)
    if row is None:
        return None
    return row["public_id"], frozenset(row["store_ids"]) if row["store_scoped"] else None


async def revoke_key(conn: asyncpg.Connection, key_id: int, merchant_id: int) -> str | None:
    """Revoke a key; returns its public id, or None when the merchant has no such key."""
    row = await conn.fetchrow(_Q["revoke_api_key"], key_id, merchant_id)
    return None if row is None else str(row["public_id"])


async def enrol_shopper(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    name: str | None,
    email: str | None,
    marketing_consent: bool,
    timezone: str | None,
    birthday: dt.date | None = None,
) -> tuple[Shopper, str]:
    """Create a shopper and its own token, atomically."""
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                _Q["insert_shopper"],
                merchant_id,
                name,
                email,
                marketing_consent,
                timezone,
                birthday,
            )
        except asyncpg.UniqueViolationError:
            raise errors.EmailTaken(
                "a shopper with this e-mail address is already enrolled",
                fields={"email": "already enrolled"},
            ) from None
        assert row is not None
        shopper = Shopper(**dict(row))
        _, token = await auth.create_key(
            conn, merchant_id=merchant_id, role=auth.Role.SHOPPER, shopper_id=shopper.id
        )
    return shopper, token


async def update_shopper(
    conn: asyncpg.Connection,
    shopper_id: int,
    merchant_id: int,
    *,
    marketing_consent: bool | None = None,
    tags: list[str] | None = None,
    timezone: str | None = None,
    set_timezone: bool = False,
    birthday: dt.date | None = None,
    set_birthday: bool = False,
) -> Shopper | None:
    row = await conn.fetchrow(
        _Q["update_shopper"],
        shopper_id,
        merchant_id,
        marketing_consent,
        None if tags is None else sorted(set(tags)),
        timezone,
        set_timezone,
        birthday,
        set_birthday,
    )
    return None if row is None else Shopper(**dict(row))


async def get_shopper(
    conn: asyncpg.Connection, shopper_id: int, merchant_id: int
) -> Shopper | None:
    row = await conn.fetchrow(_Q["get_shopper"], shopper_id, merchant_id)
    return None if row is None else Shopper(**dict(row))
