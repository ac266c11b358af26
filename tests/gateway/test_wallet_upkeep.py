"""Wallet upkeep: points expire oldest first and only once, tiers fall when earnings leave
the window, expired coupon passes are refreshed, and each change reaches the devices."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg

from gateway import db
from gateway.jobs import upkeep
from tests.support.shop import Shop
from tests.support.wallet import apns, pass_files, purchase, register


async def _rules(shop: Shop, **changes: Any) -> None:
    body = {
        "point_value": 0.01,
        "earn_rate": 1,
        "tiers": [
            {"name": "Bronze", "threshold": 0},
            {"name": "Silver", "threshold": 500},
            {"name": "Gold", "threshold": 2000},
        ],
        "tier_window_days": 365,
        "actions": {},
        **changes,
    }
    r = await shop.api.put("/v1/loyalty", token=shop.token("manager"), json=body)
    assert r.status == 200, r.body
    for key, value in changes.items():
        assert r.json[key] == value


async def _upkeep(shop: Shop) -> upkeep.Summary:
    summary = await upkeep.run(shop.app[db.POOL], now=shop.clock.now())
    assert summary is not None
    return summary


async def _balance(conn: asyncpg.Connection, shopper_id: int) -> tuple[int, int]:
    """(running balance, ledger sum): they must always agree."""
    row = await conn.fetchrow(
        "SELECT points, (SELECT coalesce(sum(points), 0) FROM points_ledger "
        "WHERE shopper_id = $1) AS ledger FROM shoppers WHERE id = $1",
        shopper_id,
    )
    return int(row["points"]), int(row["ledger"])


async def test_points_expire_oldest_first_and_only_once(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    sid = shop.tenant.shopper_id
    assert sid is not None
    await _rules(shop, points_expire_days=30)
    await purchase(shop, 100, "e1")  # day 0
    shop.clock.advance(days=20)
    await purchase(shop, 50, "e2")  # day 20
    r = await shop.api.post(
        f"/v1/shoppers/{sid}/points",
        token=shop.token("manager"),
        json={"kind": "spend", "points": -30, "reason": "mug"},
    )
    assert r.status == 201, r.body
    shop.clock.advance(days=15)  # day 35: the first 100 are past 30 days, 30 of them spent
    summary = await _upkeep(shop)
    assert (summary.shoppers_expired, summary.points_expired) == (1, 70)
    assert await _balance(conn, sid) == (50, 50)
    again = await _upkeep(shop)
    assert again.points_expired == 0
    assert await _balance(conn, sid) == (50, 50)

    shop.clock.advance(days=20)  # day 55: the 50 from day 20 expire too
    assert (await _upkeep(shop)).points_expired == 50
    assert await _balance(conn, sid) == (0, 0)
    mine = await shop.api.get("/v1/me/points", token=shop.token("shopper"))
    assert [(e["kind"], e["points"]) for e in mine.json["entries"]][:2] == [
        ("expire", -50),
        ("expire", -70),
    ]
    reasons = await conn.fetch(
        "SELECT reason FROM pass_updates WHERE reason = 'points_expire' ORDER BY id"
    )
    assert len(reasons) == 2


async def test_concurrent_upkeep_and_spends_never_expire_a_point_twice(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    sid = shop.tenant.shopper_id
    assert sid is not None
    await _rules(shop, points_expire_days=10)
    await purchase(shop, 300, "c1")
    shop.clock.advance(days=11)
    await purchase(shop, 40, "c2")  # recent: never expires here
    pool = shop.app[db.POOL]

    async def spend() -> int:
        r = await shop.api.post(
            f"/v1/shoppers/{sid}/points",
            token=shop.token("manager"),
            json={"kind": "spend", "points": -20, "reason": "race"},
        )
        return r.status

    results = await asyncio.gather(
        upkeep.run(pool, now=shop.clock.now()),
        upkeep.run(pool, now=shop.clock.now()),
        spend(),
        spend(),
    )
    runs = [r for r in results[:2] if r is not None]
    assert runs, "one of the two upkeep runs holds the lock"
    spent = 20 * sum(1 for s in results[2:] if s == 201)
    expired = -int(
        await conn.fetchval(
            "SELECT coalesce(sum(points), 0) FROM points_ledger WHERE kind = 'expire'"
        )
    )
    # Whatever the order: the old 300 are gone, each point either expired or spent once.
    # Spends before the expiry take old points (oldest first), spends after it new ones:
    # the expiry is 300 less 20 per spend written before it (they take turns under the
    # shopper's lock, so ledger order is their order).
    kinds = [
        r["kind"]
        for r in await conn.fetch(
            "SELECT kind FROM points_ledger WHERE kind IN ('spend', 'expire') ORDER BY id"
        )
    ]
    assert kinds.count("expire") == 1 and kinds.count("spend") == spent // 20
    assert expired == 300 - 20 * kinds.index("expire")
    points, ledger = await _balance(conn, sid)
    assert points == ledger == 340 - spent - expired
    assert (await _upkeep(shop)).points_expired == 0


async def test_tiers_fall_when_earnings_leave_the_window_and_the_pass_follows(
    shop: Shop, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    sid = shop.tenant.shopper_id
    assert sid is not None
    await _rules(shop, tier_window_days=30)
    r = await shop.api.get("/v1/passes/loyalty", token=shop.token("shopper"))
    card = json.loads(pass_files(r.body)["pass.json"])
    pt, serial = card["passTypeIdentifier"], card["serialNumber"]
    await register(shop, card, {"dev1": "e5" * 32})
    listing = f"/wallet/v1/devices/dev1/registrations/{pt}"
    async with apns(shop, conn, tmp_path) as (stand_in, pusher):
        await purchase(shop, 600, "t1")
        assert await pusher.run_once() == 1
        tag = (await shop.api.get(listing)).json["lastUpdated"]
        assert (await shop.api.get(f"{listing}?passesUpdatedSince={tag}")).status == 204

        shop.clock.advance(days=20)
        assert (await _upkeep(shop)).tiers_changed == 0  # still inside the window
        shop.clock.advance(days=11)
        assert (await _upkeep(shop)).tiers_changed == 1
        assert (await _upkeep(shop)).tiers_changed == 0
        # A tier change alone (no points moved) is pushed and listed as an update.
        assert await pusher.run_once() == 1
        assert [p.token for p in stand_in.pushes] == ["e5" * 32, "e5" * 32]
    changes = await conn.fetch("SELECT from_tier, to_tier FROM tier_changes ORDER BY id")
    assert [(c["from_tier"], c["to_tier"]) for c in changes][-1] == ("Silver", "Bronze")
    r = await shop.api.get(f"{listing}?passesUpdatedSince={tag}")
    assert r.status == 200 and r.json["serialNumbers"] == [serial]
    fetch = f"/wallet/v1/passes/{pt}/{serial}"
    auth = {"Authorization": f"ApplePass {card['authenticationToken']}"}
    pass_json = json.loads(pass_files((await shop.api.get(fetch, headers=auth)).body)["pass.json"])
    assert pass_json["storeCard"]["headerFields"][0]["value"] == "Bronze"
    assert pass_json["storeCard"]["primaryFields"][0]["value"] == 600


async def test_an_expired_coupon_pass_is_refreshed_once_and_a_redeemed_one_never(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    await shop.offer(coupon={"discount": "20% off", "valid_minutes": 60})
    coupon = (await shop.walk_in()).json["offers"][0]["coupon"]
    r = await shop.api.get(f"/v1/passes/coupons/{coupon['id']}", token=shop.token("shopper"))
    assert r.status == 200, r.body
    card = json.loads(pass_files(r.body)["pass.json"])
    pt, serial = card["passTypeIdentifier"], card["serialNumber"]
    # The fixture's redeemed coupon gets a pass too: it is voided, and expiry leaves it be.
    redeemed = await conn.fetchval(
        "SELECT coupon_id FROM redemptions WHERE id = $1", shop.tenant.redemption_id
    )
    r = await shop.api.get(f"/v1/passes/coupons/{redeemed}", token=shop.token("shopper"))
    assert r.status == 200 and json.loads(pass_files(r.body)["pass.json"])["voided"] is True
    await register(shop, card, {"dev9": "f6" * 32})
    listing = f"/wallet/v1/devices/dev9/registrations/{pt}"
    tag = (await shop.api.get(listing)).json["lastUpdated"]
    await conn.execute("UPDATE pass_updates SET done_at = now()")

    shop.clock.advance(minutes=59)
    assert (await _upkeep(shop)).coupon_passes_expired == 0
    shop.clock.advance(minutes=2)
    assert (await _upkeep(shop)).coupon_passes_expired == 1
    shop.clock.advance(days=3)
    assert (await _upkeep(shop)).coupon_passes_expired == 0
    queued = await conn.fetch("SELECT shopper_id FROM pass_updates WHERE reason = 'coupon_expired'")
    assert [q["shopper_id"] for q in queued] == [shop.tenant.shopper_id]
    expired = await conn.fetch("SELECT coupon_id FROM passes WHERE expired_at IS NOT NULL")
    assert [e["coupon_id"] for e in expired] == [int(coupon["id"])]
    r = await shop.api.get(f"{listing}?passesUpdatedSince={tag}")
    assert r.status == 200 and r.json["serialNumbers"] == [serial]
