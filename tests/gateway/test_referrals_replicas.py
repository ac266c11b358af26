"""Referral rewards across three `gateway serve` replicas behind nginx: twenty parallel
qualifying purchases pay one reward, and the cap per referrer holds when its friends
qualify at once on different replicas."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.support import proc
from tests.support.replicas import cluster
from tests.support.tenants import Tenant

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs Debian's nginx")


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def call(
        self, method: str, path: str, token: str, body: Any = None, **headers: str
    ) -> tuple[int, Any]:
        hdrs = {"Authorization": f"Bearer {token}", **headers}
        async with self.http.request(method, self.base + path, json=body, headers=hdrs) as r:
            return r.status, await r.json()

    async def enrol(self, tenant: Tenant, code: str) -> str:
        status, body = await self.call(
            "POST",
            "/v1/shoppers",
            tenant.tokens["app"],
            {"marketing_consent": True, "referral_code": code},
        )
        assert status == 201, body
        return str(body["id"])

    async def buy(self, tenant: Tenant, shopper: str, key: str) -> int:
        status, body = await self.call(
            "POST",
            "/v1/purchases",
            tenant.tokens["pos"],
            {"shopper_id": shopper, "store_id": str(tenant.store_ids[0]), "amount": 10},
            **{"Idempotency-Key": key},
        )
        assert status == 201, body
        return status


async def _reasons(conn: asyncpg.Connection, shopper: int | str) -> list[str]:
    rows = await conn.fetch(
        "SELECT reason FROM points_ledger WHERE shopper_id = $1 ORDER BY id", int(shopper)
    )
    return [r["reason"] for r in rows]


async def test_referral_rewards_are_paid_once_and_capped_across_replicas(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Path
) -> None:
    environ = proc.env(database_url, tmp_path, GATEWAY_LOG_LEVEL="WARNING", GATEWAY_PASS_PUSHER="0")
    async with (
        cluster(environ, tmp_path / "nginx") as cl,
        aiohttp.ClientSession() as http,
    ):
        c = Client(http, cl.url)
        status, mine = await c.call("GET", "/v1/me/referral", tenant_a.tokens["shopper"])
        assert status == 200, mine
        code = mine["code"]

        # Twenty first purchases of one referred shopper at once, and each sent twice
        # (a retry with the same Idempotency-Key): one reward for each side.
        bea = await c.enrol(tenant_a, code)
        await asyncio.gather(*(c.buy(tenant_a, bea, f"bea-{i % 20}") for i in range(40)))
        assert (await _reasons(conn, bea)).count("referral:referee") == 1
        assert (await _reasons(conn, bea)).count("purchase") == 20
        assert await _reasons(conn, tenant_a.shopper_id) == ["referral:referrer"]

        # A cap of 3 rewarded referrals in 30 days (Bea's is one): six more friends
        # qualify at once on all replicas; two of them are rewarded.
        status, _ = await c.call(
            "PUT",
            "/v1/referrals/rules",
            tenant_a.tokens["manager"],
            {
                "qualify": "first_purchase",
                "referrer_points": 200,
                "referee_points": 100,
                "cap_limit": 3,
                "cap_days": 30,
            },
        )
        assert status == 200
        friends = [await c.enrol(tenant_a, code) for _ in range(6)]
        await asyncio.gather(
            *(
                c.buy(tenant_a, f, f"friend-{i}-{j}")
                for i, f in enumerate(friends)
                for j in range(3)
            )
        )
        assert (await _reasons(conn, tenant_a.shopper_id)).count("referral:referrer") == 3
        status, report = await c.call("GET", "/v1/reports/referrals", tenant_a.tokens["reviewer"])
        assert status == 200, report
        assert (report["invitations_used"], report["qualified"]) == (7, 7)
        assert (report["rewarded"], report["refused"]["cap_reached"]) == (3, 4)
        assert report["points_paid"] == 3 * 300
