"""The token verifier's caches: a verified token is one lookup until its key is forgotten,
and first requests that arrive together share one database read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from gateway import db
from gateway.accounts import auth, tenancy
from tests.support.tenants import Tenant


class CountingPool:
    """An asyncpg pool that counts how often a connection is taken from it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.taken = 0

    def acquire(self) -> Any:
        self.taken += 1
        return self.pool.acquire()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[CountingPool]:
    real = await db.create_pool(database_url, min_size=1, max_size=4)
    try:
        yield CountingPool(real)
    finally:
        await real.close()


async def test_a_verified_token_is_remembered_until_its_key_is_forgotten(
    pool: CountingPool, tenant_a: Tenant
) -> None:
    verifier = auth.TokenVerifier()
    token = tenant_a.tokens["shopper"]
    assert verifier.cached(token) is None
    first = await verifier.verify(pool, token)  # type: ignore[arg-type]
    assert first is not None and first.shopper_id == tenant_a.shopper_id
    assert verifier.cached(token) == first
    assert await verifier.verify(pool, token) == first  # type: ignore[arg-type]
    assert pool.taken == 1
    # The same public id with another secret is refused, and changes nothing.
    public_id = token.split("_", 3)[2]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert await verifier.verify(pool, forged) is None  # type: ignore[arg-type]
    assert verifier.cached(forged) is None and verifier.cached(token) == first
    # Revocation, as the database announces it, drops the remembered token too.
    verifier.forget(public_id)
    assert verifier.cached(token) is None
    assert await verifier.verify(pool, token) == first  # type: ignore[arg-type]
    verifier.forget_all()
    assert verifier.cached(token) is None


async def test_first_requests_that_arrive_together_share_one_read(
    pool: CountingPool, conn: asyncpg.Connection, tenant_a: Tenant
) -> None:
    tokens = []
    for i in range(12):
        _, token = await tenancy.enrol_shopper(
            conn,
            merchant_id=tenant_a.merchant_id,
            name=f"s{i}",
            email=None,
            marketing_consent=True,
            timezone=None,
        )
        tokens.append(token)
    revoked_id, revoked = await auth.create_key(
        conn, merchant_id=tenant_a.merchant_id, role=auth.Role.MANAGER
    )
    await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", revoked_id)
    unknown = auth.mint(auth.Role.SHOPPER).token
    verifier = auth.TokenVerifier()
    asked = [*tokens, tokens[0], revoked, unknown, tenant_a.tokens["manager"]]
    got = await asyncio.gather(*(verifier.verify(pool, t) for t in asked))  # type: ignore[arg-type]
    assert pool.taken == 1
    shoppers = await conn.fetch(
        "SELECT k.shopper_id FROM api_keys k WHERE k.public_id = ANY($1::text[])",
        [t.split("_", 3)[2] for t in tokens],
    )
    assert {p.shopper_id for p in got[:12] if p is not None} == {r["shopper_id"] for r in shoppers}
    assert all(p is not None and p.role is auth.Role.SHOPPER for p in got[:13])
    assert got[12] == got[0]
    assert got[13] is None and got[14] is None
    manager = got[15]
    assert manager is not None and manager.role is auth.Role.MANAGER
    assert manager.store_ids is None


async def test_a_failed_read_fails_every_request_waiting_on_it(
    pool: CountingPool, tenant_a: Tenant
) -> None:
    verifier = auth.TokenVerifier()
    await pool.pool.close()
    results = await asyncio.gather(
        verifier.verify(pool, tenant_a.tokens["shopper"]),  # type: ignore[arg-type]
        verifier.verify(pool, tenant_a.tokens["manager"]),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert all(isinstance(r, Exception) and db.is_unavailable(r) for r in results), results
    assert verifier.cached(tenant_a.tokens["shopper"]) is None
