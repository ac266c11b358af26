"""Loyalty over HTTP: purchases earn once per key, tiers move and are logged, actions are
capped, spends never overdraw, concurrent earns never drift, and purchases convert
held-out shoppers for the uplift report."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.support.shop import Shop, enrol


async def _buy(
    shop: Shop, shopper: int | str, amount: float, key: str, store: int = 0, **extra: Any
) -> Any:
    return await shop.api.post(
        "/v1/purchases",
        token=shop.token("pos"),
        json={
            "shopper_id": str(shopper),
            "store_id": str(shop.tenant.store_ids[store]),
            "amount": amount,
            **extra,
        },
        headers={"Idempotency-Key": key},
    )


async def test_purchases_earn_once_per_key_and_move_the_tier(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    sid = shop.tenant.shopper_id
    assert sid is not None
    r = await _buy(shop, sid, 120.75, "p1", order_ref="A-1")
    assert r.status == 201, r.body
    assert (r.json["points"], r.json["balance"], r.json["tier"]) == (120, 120, "Bronze")
    again = await _buy(shop, sid, 120.75, "p1", order_ref="A-1")
    assert (again.status, again.json["id"]) == (201, r.json["id"])
    assert again.headers["Idempotent-Replayed"] == "true"
    reused = await _buy(shop, sid, 99, "p1")
    assert (reused.status, reused.error_code) == (422, "idempotency_key_reused")
    r = await _buy(shop, sid, 400, "p2")
    assert (r.json["balance"], r.json["tier"]) == (520, "Silver")
    changes = await conn.fetch("SELECT from_tier, to_tier FROM tier_changes ORDER BY id")
    assert [(c["from_tier"], c["to_tier"]) for c in changes] == [
        (None, "Bronze"),
        ("Bronze", "Silver"),
    ]
    mine = await shop.api.get("/v1/me/points", token=shop.token("shopper"))
    assert (mine.json["balance"], mine.json["value"], mine.json["tier"]) == (520, "5.20", "Silver")
    assert [e["points"] for e in mine.json["entries"]] == [400, 120]
    assert await conn.fetchval("SELECT count(*) FROM conversions WHERE source = 'purchase'") == 2


async def test_actions_are_capped_and_spends_never_overdraw(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    sid = shop.tenant.shopper_id
    url = f"/v1/shoppers/{sid}/actions"
    r = await shop.api.post(url, token=shop.token("app"), json={"action": "signup"})
    assert (r.status, r.json["balance"]) == (201, 100)
    r = await shop.api.post(url, token=shop.token("app"), json={"action": "signup"})
    assert (r.status, r.error_code) == (409, "action_limit_reached")
    points = f"/v1/shoppers/{sid}/points"
    r = await shop.api.post(
        points, token=shop.token("manager"), json={"kind": "spend", "points": -150, "reason": "x"}
    )
    assert (r.status, r.error_code) == (409, "insufficient_points")
    r = await shop.api.post(
        points, token=shop.token("manager"), json={"kind": "spend", "points": -60, "reason": "mug"}
    )
    assert r.json["balance"] == 40
    r = await shop.api.post(
        points, token=shop.token("manager"), json={"kind": "spend", "points": 5, "reason": "x"}
    )
    assert r.status == 422
    r = await shop.api.post(
        "/v1/shoppers/999999/actions", token=shop.token("app"), json={"action": "review"}
    )
    assert r.status == 404


async def test_concurrent_earns_never_drift_from_the_ledger(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    sid = shop.tenant.shopper_id
    replies = await asyncio.gather(*(_buy(shop, sid, 10 + i, f"c{i}") for i in range(40)))
    assert all(r.status == 201 for r in replies)
    # Racing retries of the same keys earn nothing more.
    await asyncio.gather(*(_buy(shop, sid, 10 + i, f"c{i}") for i in range(0, 40, 3)))
    balance = await conn.fetchval("SELECT points FROM shoppers WHERE id = $1", sid)
    ledger = await conn.fetchval("SELECT sum(points) FROM points_ledger WHERE shopper_id = $1", sid)
    assert balance == ledger == sum(10 + i for i in range(40))
    assert await conn.fetchval("SELECT count(*) FROM purchases") == 40


async def test_a_purchase_converts_held_out_shoppers_for_uplift(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    oid = await shop.offer(holdout_pct=100)
    token = await enrol(conn, shop.tenant, "held")
    sid = await conn.fetchval("SELECT max(id) FROM shoppers")
    await shop.walk_in(token=token)
    r = await _buy(shop, sid, 5, "h1")
    assert r.status == 201
    report = await shop.api.get(f"/v1/reports/offers/{oid}", token=shop.token("reviewer"))
    assert report.json["funnel"]["holdout"]["holdout"] == {"decisions": 1, "converted": 1}
    # At another store the offer does not cover, nothing converts.
    await _buy(shop, sid, 5, "h2", store=1)
    report = await shop.api.get(f"/v1/reports/offers/{oid}", token=shop.token("reviewer"))
    assert report.json["funnel"]["holdout"]["holdout"]["converted"] == 1


async def test_loyalty_rules_round_trip_and_validate(shop: Shop) -> None:
    r = await shop.api.get("/v1/loyalty", token=shop.token("reviewer"))
    assert [t["name"] for t in r.json["tiers"]] == ["Bronze", "Silver", "Gold", "Platinum"]
    assert r.json["point_value"] == "0.01"
    body = {
        "point_value": 0.05,
        "earn_rate": 2,
        "tiers": [{"name": "VIP", "threshold": 100}, {"name": "Member", "threshold": 0}],
        "tier_window_days": 90,
        "actions": {"review": {"points": 20, "limit": 1, "days": 7}},
    }
    r = await shop.api.put("/v1/loyalty", token=shop.token("manager"), json=body)
    assert [t["name"] for t in r.json["tiers"]] == ["Member", "VIP"]
    body["tiers"] = [{"name": "A", "threshold": 0}, {"name": "A", "threshold": 5}]
    r = await shop.api.put("/v1/loyalty", token=shop.token("manager"), json=body)
    assert r.status == 422 and "tiers" in r.json["error"]["fields"]
