"""Rewards and the till across three `gateway serve` replicas behind nginx: a reward's
stock and per-shopper limit, and one card's points spent at several tills, hold when the
requests are spread over the replicas."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gateway.accounts import tenancy
from tests.support import proc
from tests.support import rewards as reward_support
from tests.support.replicas import cluster
from tests.support.tenants import Tenant

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs Debian's nginx")


async def _call(
    http: aiohttp.ClientSession, url: str, token: str, key: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    async with http.post(url, json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_stock_limits_and_points_hold_across_replicas(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Path
) -> None:
    await reward_support.stock(conn, tenant_a, points=1000)  # a 100-point coffee; 950 left
    await conn.execute("UPDATE rewards SET stock = 6, per_shopper_limit = 2")
    shoppers = [tenant_a.tokens["shopper"]]
    for i in range(9):
        shopper, token = await tenancy.enrol_shopper(
            conn,
            merchant_id=tenant_a.merchant_id,
            name=f"r{i}",
            email=None,
            marketing_consent=True,
            timezone=None,
        )
        await conn.execute("UPDATE shoppers SET points = 1000 WHERE id = $1", shopper.id)
        await conn.execute(
            "INSERT INTO points_ledger (merchant_id, shopper_id, kind, points, reason, "
            "created_at) VALUES ($1, $2, 'adjust', 1000, 'fixture', now())",
            tenant_a.merchant_id,
            shopper.id,
        )
        shoppers.append(token)
    environ = proc.env(database_url, tmp_path, GATEWAY_LOG_LEVEL="WARNING", GATEWAY_PASS_PUSHER="0")
    async with (
        cluster(environ, tmp_path / "nginx") as cl,
        aiohttp.ClientSession() as http,
    ):
        redeem = f"{cl.url}/v1/rewards/{tenant_a.reward_id}/redeem"
        # Ten shoppers, three purchases each at once: 6 in stock, at most 2 each.
        replies = await asyncio.gather(
            *(_call(http, redeem, t, f"k{i}-{j}") for i, t in enumerate(shoppers) for j in range(3))
        )
        assert sum(1 for s, _ in replies if s == 201) == 6
        refused = {a["error"]["code"] for s, a in replies if s != 201}
        assert refused <= {"reward_out_of_stock", "reward_limit_reached"}, replies
        counts = await conn.fetch(
            "SELECT shopper_id, count(*) AS n FROM reward_grants GROUP BY shopper_id"
        )
        assert sum(r["n"] for r in counts) == 6 and max(r["n"] for r in counts) <= 2
        # Eight tills at once spend 3.00 (300 points) from one card over the replicas.
        balance = await conn.fetchval(
            "SELECT points FROM shoppers WHERE id = $1", tenant_a.shopper_id
        )
        body = {"member": tenant_a.member, "store_id": str(tenant_a.store_ids[0]), "amount": 3}
        paid = await asyncio.gather(
            *(
                _call(
                    http,
                    f"{cl.url}/v1/till/payments",
                    tenant_a.tokens["pos"],
                    f"t{i}",
                    {**body, "partial": False},
                )
                for i in range(8)
            )
        )
        ok = sum(1 for s, _ in paid if s == 201)
        assert ok == balance // 300
        assert {a["error"]["code"] for s, a in paid if s != 201} == {"insufficient_points"}
    sid = tenant_a.shopper_id
    after = await conn.fetchval("SELECT points FROM shoppers WHERE id = $1", sid)
    ledger = await conn.fetchval("SELECT sum(points) FROM points_ledger WHERE shopper_id = $1", sid)
    assert after == ledger == balance - ok * 300 >= 0
    assert await conn.fetchval("SELECT issued_count FROM rewards") == 6
