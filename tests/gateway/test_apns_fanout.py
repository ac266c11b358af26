"""APNs fan-out through the durable queue, counted against the HTTP/2 stand-in: every
registration gets its push once, a 410 removes the registration, 429 and 5xx are retried
with backoff (only for the devices that did not take the push), and a GOAWAY in the middle
of a batch loses nothing and doubles nothing."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway import db
from gateway.accounts import tenancy
from gateway.delivery import passpush
from tests.support.apns_peer import ApnsStandIn
from tests.support.proc import free_port
from wallet.store import passes as pass_store

SETUP = """
WITH s AS (
    INSERT INTO shoppers (merchant_id, name, marketing_consent)
    SELECT $1, 'shopper ' || g, true FROM generate_series(1, $2::int) AS g RETURNING id
), p AS (
    INSERT INTO passes (merchant_id, shopper_id, kind, serial, auth_token, created_at)
    SELECT $1, s.id, 'loyalty', 'L' || s.id, md5(s.id::text) || md5('x' || s.id), now()
    FROM s RETURNING id, shopper_id
)
-- Every shopper has $3 devices: a phone, a watch...
INSERT INTO device_registrations (device_library_id, pass_id, push_token)
SELECT 'dev' || p.id || '-' || d, p.id, lpad(to_hex(p.shopper_id * 16 + d), 64, '0')
FROM p, generate_series(1, $3::int) AS d
RETURNING push_token
"""


@dataclass
class Fleet:
    conn: asyncpg.Connection
    pool: asyncpg.Pool
    merchant_id: int
    tokens: list[str]
    stand_in: ApnsStandIn
    pusher: passpush.PassPusher

    async def queue_all(self) -> None:
        await self.conn.execute(
            "INSERT INTO pass_updates (merchant_id, shopper_id, reason) "
            "SELECT $1, id, 'program' FROM shoppers WHERE merchant_id = $1",
            self.merchant_id,
        )

    async def drain(self) -> None:
        """Run rounds until nothing is due; rows waiting for a retry are made due."""
        while True:
            while await self.pusher.run_once():
                pass
            pending = await self.conn.fetchval(
                "WITH u AS (UPDATE pass_updates SET available_at = now() "
                "WHERE done_at IS NULL RETURNING 1) SELECT count(*) FROM u"
            )
            if not pending:
                return


async def _fleet(
    conn: asyncpg.Connection, url: str, tmp_path: Path, shoppers: int, devices: int, **peer: int
) -> AsyncIterator[Fleet]:
    merchant = await tenancy.create_merchant(conn, "Fleet Coffee")
    config = await pass_store.wallet_config(conn, merchant.id)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    await conn.execute(
        "UPDATE wallet_configs SET apns_key_pem = $1, apns_key_id = 'KEY1234567'", pem.decode()
    )
    tokens = [r["push_token"] for r in await conn.fetch(SETUP, merchant.id, shoppers, devices)]
    stand_in = ApnsStandIn(
        directory=tmp_path,
        topic=config.pass_type_id,
        key_id="KEY1234567",
        team_id=config.team_id,
        public_key=key.public_key(),
        **peer,  # type: ignore[arg-type]
    )
    await stand_in.start(free_port())
    pool = await db.create_pool(url, min_size=1, max_size=8)
    pusher = passpush.PassPusher(
        pool, base_url=stand_in.base_url, ca_file=str(stand_in.cert_path), batch=200
    )
    try:
        yield Fleet(conn, pool, merchant.id, tokens, stand_in, pusher)
    finally:
        await pusher.stop()
        await stand_in.close()
        await pool.close()


@pytest.fixture
async def fleet(
    conn: asyncpg.Connection, database_url: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    async for f in _fleet(conn, database_url, tmp_path, shoppers=600, devices=2):
        yield f


def _counts(stand_in: ApnsStandIn) -> collections.Counter[str]:
    return collections.Counter(p.token for p in stand_in.pushes)


async def test_every_registration_gets_its_push_exactly_once(fleet: Fleet) -> None:
    await fleet.queue_all()
    await fleet.drain()
    counts = _counts(fleet.stand_in)
    assert sorted(counts) == sorted(fleet.tokens)
    assert set(counts.values()) == {1}
    assert await fleet.conn.fetchval("SELECT count(*) FROM pass_updates WHERE done_at IS NULL") == 0
    errors = await fleet.conn.fetchval("SELECT count(last_error) FROM pass_updates")
    assert errors == 0


async def test_410_removes_the_registration_and_429_and_5xx_are_retried_with_backoff(
    fleet: Fleet,
) -> None:
    gone, busy, broken = fleet.tokens[0], fleet.tokens[10], fleet.tokens[21]
    fleet.stand_in.fail(gone, 410, "Unregistered")
    fleet.stand_in.fail(busy, 429, "TooManyRequests", retry_after=30, times=2)
    fleet.stand_in.fail(broken, 503, "ServiceUnavailable", times=1)
    await fleet.queue_all()
    fleet.pusher.batch = 10_000
    assert await fleet.pusher.run_once() == 600
    # The first round: the 410 is gone for good, the 429 and the 503 wait, with backoff
    # (the 429 for its Retry-After), and only those two devices wait.
    assert not await fleet.conn.fetchval(
        "SELECT count(*) FROM device_registrations WHERE push_token = $1", gone
    )
    waiting = await fleet.conn.fetch(
        "SELECT retry_tokens, available_at - now() AS wait, last_error FROM pass_updates "
        "WHERE done_at IS NULL ORDER BY id"
    )
    assert sorted(t for r in waiting for t in r["retry_tokens"]) == sorted([busy, broken])
    waits = {r["retry_tokens"][0]: r["wait"].total_seconds() for r in waiting}
    assert waits[busy] > 25  # Retry-After: 30
    assert {r["last_error"] for r in waiting} == {"429 TooManyRequests", "503 ServiceUnavailable"}
    await fleet.drain()
    counts = _counts(fleet.stand_in)
    # Every other device once; the retried ones once they were let through; the shopper's
    # other device, which took the first push, was not pushed again.
    assert counts == collections.Counter(t for t in fleet.tokens if t != gone)
    assert sorted(t for t, r in fleet.stand_in.refused) == sorted([gone, busy, busy, broken])
    done = await fleet.conn.fetchval("SELECT count(*) FROM pass_updates WHERE done_at IS NULL")
    assert done == 0


@pytest.fixture
async def restless(
    conn: asyncpg.Connection, database_url: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """A stand-in that sends a GOAWAY after every 37 requests on a connection."""
    async for f in _fleet(conn, database_url, tmp_path, shoppers=400, devices=2, goaway_after=37):
        yield f


async def test_a_goaway_mid_batch_loses_nothing_and_doubles_nothing(restless: Fleet) -> None:
    await restless.queue_all()
    await restless.drain()
    counts = _counts(restless.stand_in)
    assert sorted(counts) == sorted(restless.tokens)
    assert set(counts.values()) == {1}
    # The GOAWAYs did cut streams mid-batch: the stand-in dropped them unprocessed and the
    # client sent each again once, on another connection.
    assert restless.stand_in.goaways > 10
    assert restless.stand_in.dropped > 0
    assert restless.pusher.cut > 0
    assert await restless.conn.fetchval("SELECT count(last_error) FROM pass_updates") == 0
