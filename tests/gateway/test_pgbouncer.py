"""The request pool behind PgBouncer in transaction mode: why its connections keep no
prepared statements (deploy/SCALING.md), shown against a real pgbouncer process.

The replica tests run through PgBouncer too (tests/gateway/test_replicas.py, `pgbouncer`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from gateway import db
from tests.support import pgbouncer

# Each query text is new to the connection that runs it first: asyncpg prepares it,
# names it and, with its cache on, runs it by that name later, wherever PgBouncer sends it.
QUERIES = [f"SELECT $1::int + {k} AS n" for k in range(12)]


async def _workload(pool: asyncpg.Pool) -> None:
    """Many clients, each running every query several times, in and out of transactions."""

    async def client(i: int) -> None:
        for round_ in range(4):
            for k, query in enumerate(QUERIES):
                async with db.acquire(pool) as conn:
                    if (i + round_) % 2:
                        async with conn.transaction():
                            assert await conn.fetchval(query, i) == i + k
                    else:
                        assert await conn.fetchval(query, i) == i + k

    await asyncio.gather(*(client(i) for i in range(16)))


async def test_pooled_connections_work_behind_transaction_pooling_and_cached_ones_do_not(
    database_url: str, tmp_path: Path
) -> None:
    pgbouncer.require()
    # Two server connections for sixteen clients: transactions change server all the time.
    async with pgbouncer.running(database_url, tmp_path / "bouncer", pool_size=2) as bouncer:
        url = bouncer.url(database_url)
        pooled = await db.create_pool(url, min_size=1, max_size=16, pooled=True)
        try:
            await _workload(pooled)
        finally:
            await pooled.close()

        # The control: asyncpg's statement cache on, as without a pooler. A statement
        # prepared on one server connection is run by name on another, or prepared again
        # under a name that one already has.
        cached = await db.create_pool(url, min_size=1, max_size=16, pooled=False)
        try:
            with pytest.raises(
                (
                    asyncpg.exceptions.InvalidSQLStatementNameError,
                    asyncpg.exceptions.DuplicatePreparedStatementError,
                )
            ):
                await _workload(cached)
        finally:
            cached.terminate()
