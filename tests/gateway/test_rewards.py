"""The rewards catalog over HTTP: managers define rewards, shoppers buy them with points in
one transaction, the coupon lands in the inbox and wallet and is redeemed at the till, and
stock, per-shopper limits and gift-card codes hold under parallel purchases."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.support import rewards as reward_support
from tests.support.shop import Shop, enrol
from tests.support.tenants import Tenant

COUPON = {"discount": "A free coffee", "valid_minutes": 60 * 24 * 30}


async def _reward(shop: Shop, **extra: Any) -> str:
    body: dict[str, Any] = {
        "kind": "free_item",
        "name": "Coffee",
        "title": "A coffee on us",
        "body": "Any size, any milk",
        "points": 150,
        "store_ids": [str(shop.tenant.store_ids[0])],
        "coupon": COUPON,
        **extra,
    }
    r = await shop.api.post("/v1/catalog/rewards", token=shop.token("manager"), json=body)
    assert r.status == 201, r.body
    return str(r.json["id"])


async def _give(shop: Shop, shopper_id: int, points: int) -> None:
    r = await shop.api.post(
        f"/v1/shoppers/{shopper_id}/points",
        token=shop.token("manager"),
        json={"kind": "adjust", "points": points, "reason": "test"},
    )
    assert r.status == 201, r.body


async def _buy(shop: Shop, reward: str, key: str, token: str | None = None) -> Any:
    return await shop.api.post(
        f"/v1/rewards/{reward}/redeem",
        token=token or shop.token("shopper"),
        headers={"Idempotency-Key": key},
    )


async def _shoppers(conn: asyncpg.Connection, shop: Shop, n: int, points: int) -> list[str]:
    tokens = []
    for i in range(n):
        tokens.append(await enrol(conn, shop.tenant, f"buyer {i}"))
        sid = await conn.fetchval("SELECT max(id) FROM shoppers")
        await _give(shop, sid, points)
    return tokens


async def test_managers_define_rewards_and_shoppers_see_what_they_can_buy(shop: Shop) -> None:
    coffee = await _reward(shop, stock=10, per_shopper_limit=1)
    gold = await _reward(shop, name="Gold mug", kind="discount", tiers=["Gold"])
    card = await _reward(shop, name="Cinema", kind="gift_card", store_ids=[], points=900)
    listed = await shop.api.get("/v1/rewards", token=shop.token("shopper"))
    assert [i["id"] for i in listed.json["items"]] == [coffee]  # no codes yet; not Gold
    assert listed.json["items"][0]["affordable"] is False
    assert listed.json["items"][0]["left"] == 10
    up = await shop.api.post(
        f"/v1/catalog/rewards/{card}/codes",
        token=shop.token("manager"),
        json={"codes": ["CINE-0001", "CINE-0002"]},
    )
    assert (up.status, up.json) == (201, {"added": 2, "skipped": 0, "codes_left": 2})
    csv = await shop.api.post(
        f"/v1/catalog/rewards/{card}/codes",
        token=shop.token("manager"),
        data="code\r\nCINE-0002\r\nCINE-0003\r\n",
        headers={"Content-Type": "text/csv"},
    )
    assert (csv.status, csv.json) == (201, {"added": 1, "skipped": 1, "codes_left": 3})
    wrong = await shop.api.post(
        f"/v1/catalog/rewards/{coffee}/codes", token=shop.token("manager"), json={"codes": ["x"]}
    )
    assert (wrong.status, wrong.error_code) == (409, "not_gift_card")
    listed = await shop.api.get("/v1/rewards", token=shop.token("shopper"))
    assert [i["id"] for i in listed.json["items"]] == [coffee, card]
    assert gold not in [i["id"] for i in listed.json["items"]]
    # Managers read and change the catalog; reviewers only read; shoppers neither.
    r = await shop.api.patch(
        f"/v1/catalog/rewards/{coffee}", token=shop.token("manager"), json={"points": 120}
    )
    assert (r.status, r.json["points"]) == (200, 120)
    r = await shop.api.get("/v1/catalog/rewards", token=shop.token("reviewer"))
    assert [i["id"] for i in r.json["items"]] == [coffee, gold, card]
    assert r.json["items"][2]["codes_left"] == 3
    r = await shop.api.post(
        "/v1/catalog/rewards", token=shop.token("reviewer"), json={"kind": "free_item"}
    )
    assert r.status == 403
    r = await shop.api.post(
        "/v1/catalog/rewards",
        token=shop.token("manager"),
        json={
            "kind": "free_item",
            "name": "x",
            "title": "x",
            "body": "x",
            "points": 1,
            "coupon": COUPON,
        },
    )
    assert (r.status, list(r.json["error"]["fields"])) == (422, ["store_ids"])
    # The reward's offer is not an offer managers see or edit.
    offers = await shop.api.get("/v1/offers", token=shop.token("manager"))
    assert all(o["trigger"] in ("enter", "dwell") for o in offers.json["items"])
    r = await shop.api.delete(f"/v1/catalog/rewards/{gold}", token=shop.token("manager"))
    assert r.status == 204
    r = await shop.api.get(f"/v1/catalog/rewards/{gold}", token=shop.token("manager"))
    assert r.status == 404


async def test_buying_a_reward_spends_issues_and_lands_in_inbox_wallet_and_till(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    sid = shop.tenant.shopper_id
    assert sid is not None
    coffee = await _reward(shop)
    other = await _reward(shop, name="Tea", points=100)
    await _give(shop, sid, 200)
    r = await _buy(shop, coffee, "k1")
    assert r.status == 201, r.body
    assert (r.json["points"], r.json["balance"], r.json["reward_id"]) == (150, 50, coffee)
    coupon = r.json["coupon"]
    again = await _buy(shop, coffee, "k1")
    assert (again.status, again.json["id"]) == (201, r.json["id"])
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["coupon"]["delivery_id"] == coupon["delivery_id"]
    reused = await _buy(shop, other, "k1")
    assert (reused.status, reused.error_code) == (422, "idempotency_key_reused")
    short = await _buy(shop, coffee, "k2")
    assert (short.status, short.error_code) == (409, "insufficient_points")
    entries = await conn.fetch(
        "SELECT kind, points, reason FROM points_ledger WHERE shopper_id = $1 ORDER BY id", sid
    )
    assert [tuple(e) for e in entries][-1] == ("spend", -150, f"reward:{coffee}")
    # In the inbox, queued for the wallet, with a coupon pass; redeemed at the till.
    inbox = await shop.api.get("/v1/inbox", token=shop.token("shopper"))
    item = next(i for i in inbox.json["items"] if i["delivery_id"] == coupon["delivery_id"])
    assert item["title"] == "A coffee on us"
    channels = await conn.fetch(
        "SELECT channel FROM outbox WHERE delivery_id = $1::uuid", coupon["delivery_id"]
    )
    assert [c["channel"] for c in channels] == ["wallet"]
    pkpass = await shop.api.get(
        f"/v1/passes/coupons/{coupon['id']}", token=shop.token("shopper"), check=False
    )
    assert pkpass.status == 200
    assert pkpass.headers["Content-Type"].startswith("application/vnd.apple.pkpass")
    redeemed = await shop.redeem(coupon["code"], key="till-1")
    assert redeemed.status == 201, redeemed.body
    assert redeemed.json["coupon_id"] == coupon["id"]
    wrong_store = await shop.redeem(coupon["code"], key="till-2", store=1)
    assert (wrong_store.status, wrong_store.error_code) == (403, "wrong_store")
    mine = await shop.api.get("/v1/me/rewards", token=shop.token("shopper"))
    assert [(i["reward_name"], i["kind"]) for i in mine.json["items"]] == [("Coffee", "free_item")]


async def test_parallel_purchases_never_oversell_stock_or_limits(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    coffee = await _reward(shop, stock=5, points=100)
    tokens = await _shoppers(conn, shop, 12, 100)
    replies = await asyncio.gather(
        *(_buy(shop, coffee, f"s{i}", token=t) for i, t in enumerate(tokens))
    )
    statuses = sorted((r.status, r.error_code if r.status != 201 else "") for r in replies)
    assert statuses == [(201, "")] * 5 + [(409, "reward_out_of_stock")] * 7
    assert await conn.fetchval("SELECT issued_count FROM rewards WHERE id = $1", int(coffee)) == 5
    url = f"/v1/catalog/rewards/{coffee}"
    low = await shop.api.patch(url, token=shop.token("manager"), json={"stock": 4})
    assert (low.status, low.error_code) == (422, "stock_below_issued")
    more = await shop.api.patch(url, token=shop.token("manager"), json={"stock": 6})
    assert (more.status, more.json["stock"], more.json["issued"]) == (200, 6, 5)
    # The shoppers refused kept their points: nothing was half-written.
    assert await conn.fetchval("SELECT count(*) FROM shoppers WHERE points = 100") >= 7

    # One shopper, eight purchases at once with different keys: the limit holds.
    mug = await _reward(shop, name="Mug", points=10, per_shopper_limit=2)
    sid = shop.tenant.shopper_id
    assert sid is not None
    await _give(shop, sid, 1000)
    replies = await asyncio.gather(*(_buy(shop, mug, f"m{i}") for i in range(8)))
    assert sorted(r.status for r in replies) == [201] * 2 + [409] * 6
    assert {r.error_code for r in replies if r.status == 409} == {"reward_limit_reached"}
    balance = await conn.fetchval("SELECT points FROM shoppers WHERE id = $1", sid)
    ledger = await conn.fetchval("SELECT sum(points) FROM points_ledger WHERE shopper_id = $1", sid)
    assert balance == ledger == 1000 - 2 * 10


async def test_parallel_gift_card_purchases_each_get_their_own_code(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    card = await _reward(shop, name="Cinema", kind="gift_card", store_ids=[], points=50)
    r = await shop.api.post(
        f"/v1/catalog/rewards/{card}/codes",
        token=shop.token("manager"),
        json={"codes": ["G1", "G2", "G3"]},
    )
    assert r.status == 201
    tokens = await _shoppers(conn, shop, 6, 50)
    replies = await asyncio.gather(
        *(_buy(shop, card, f"g{i}", token=t) for i, t in enumerate(tokens))
    )
    codes = sorted(r.json["gift_code"] for r in replies if r.status == 201)
    assert codes == ["G1", "G2", "G3"]
    assert {r.error_code for r in replies if r.status != 201} == {"reward_out_of_stock"}
    left = await shop.api.get(f"/v1/catalog/rewards/{card}", token=shop.token("manager"))
    assert left.json["codes_left"] == 0


async def test_a_reward_off_sale_for_the_tier_or_another_program_is_refused(
    shop: Shop, conn: asyncpg.Connection, tenant_b: Tenant
) -> None:
    sid = shop.tenant.shopper_id
    assert sid is not None
    await _give(shop, sid, 5000)
    gold = await _reward(shop, name="Gold mug", tiers=["Gold"])
    r = await _buy(shop, gold, "t1")
    assert (r.status, r.error_code) == (403, "reward_not_for_tier")
    paused = await _reward(shop, name="Paused", status="paused")
    r = await _buy(shop, paused, "t2")
    assert (r.status, r.error_code) == (404, "unknown_reward")
    # Another program's reward is as absent as one that does not exist.
    await reward_support.stock(conn, tenant_b)
    r = await _buy(shop, str(tenant_b.reward_id), "t3")
    missing = await _buy(shop, "999999999", "t4")
    assert (
        (r.status, r.error_code, r.json["error"]["message"])
        == (
            missing.status,
            missing.error_code,
            missing.json["error"]["message"],
        )
        == (404, "unknown_reward", "no such reward on sale")
    )
    # Nothing was spent by the refusals.
    assert await conn.fetchval("SELECT points FROM shoppers WHERE id = $1", sid) == 5000
