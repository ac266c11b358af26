"""Two-sided referrals over HTTP: the shopper's code, enrolment with it, the rewards both
sides earn when the referred shopper qualifies, the fraud limits and the report."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from offers import codes
from tests.support import offers as test_offers
from tests.support import pkpass
from tests.support.gwallet import configure, google, read_link
from tests.support.shop import Shop


async def _code(shop: Shop, token: str) -> str:
    r = await shop.api.get("/v1/me/referral", token=token)
    assert r.status == 200, r.body
    return str(r.json["code"])


async def _enrol(shop: Shop, **body: Any) -> Any:
    return await shop.api.post(
        "/v1/shoppers", token=shop.token("app"), json={"marketing_consent": True, **body}
    )


async def _buy(shop: Shop, shopper: str, key: str, amount: float = 10) -> Any:
    r = await shop.api.post(
        "/v1/purchases",
        token=shop.token("pos"),
        json={
            "shopper_id": shopper,
            "store_id": str(shop.tenant.store_ids[0]),
            "amount": amount,
        },
        headers={"Idempotency-Key": key},
    )
    assert r.status == 201, r.body
    return r


async def _report(shop: Shop) -> Any:
    r = await shop.api.get("/v1/reports/referrals", token=shop.token("reviewer"))
    assert r.status == 200, r.body
    return r.json


async def _ledger(conn: asyncpg.Connection, shopper: int | str) -> list[tuple[int, str]]:
    rows = await conn.fetch(
        "SELECT points, reason FROM points_ledger WHERE shopper_id = $1 ORDER BY id", int(shopper)
    )
    return [(r["points"], r["reason"]) for r in rows]


async def _rules(shop: Shop, **rules: Any) -> None:
    body = {
        "qualify": "first_purchase",
        "referrer_points": 200,
        "referee_points": 100,
        "cap_limit": 10,
        "cap_days": 365,
        **rules,
    }
    r = await shop.api.put("/v1/referrals/rules", token=shop.token("manager"), json=body)
    assert r.status == 200, r.body


async def test_a_shopper_has_one_short_code_with_a_check_symbol(shop: Shop) -> None:
    code = await _code(shop, shop.token("shopper"))
    assert await _code(shop, shop.token("shopper")) == code
    canonical = codes.normalize(code, codes.REFERRAL_SYMBOLS)
    assert canonical is not None and len(canonical) == codes.REFERRAL_SYMBOLS + 1
    assert codes.display(canonical) == code
    other = await _enrol(shop)
    assert await _code(shop, other.json["token"]) != code


async def test_enrolment_refuses_unknown_mistyped_and_own_codes(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    first = await _enrol(shop, email="zoe@example.com")
    own = await _code(shop, first.json["token"])
    before = await conn.fetchval("SELECT count(*) FROM shoppers")
    canonical = codes.normalize(own, codes.REFERRAL_SYMBOLS)
    assert canonical is not None
    # Two neighbouring symbols swapped (two that differ, or the code would not change).
    k = next(i for i in range(len(canonical) - 1) if canonical[i] != canonical[i + 1])
    swapped = canonical[:k] + canonical[k + 1] + canonical[k] + canonical[k + 2 :]
    unknown = codes.new_code(codes.REFERRAL_SYMBOLS)
    for typed, why in (
        (unknown, "unknown_referral_code"),
        ("not-a-code", "unknown_referral_code"),
        (swapped, "code_mistyped"),
    ):
        r = await _enrol(shop, referral_code=typed)
        assert (r.status, r.error_code) == (422, why), (typed, r.body)
        assert "referral_code" in r.json["error"]["fields"]
    # The same shopper enrolling again (same e-mail) with its own code.
    r = await _enrol(shop, email="ZOE@example.com", referral_code=own.lower())
    assert (r.status, r.error_code) == (422, "self_referral"), r.body
    assert "referral_code" in r.json["error"]["fields"]
    assert await conn.fetchval("SELECT count(*) FROM shoppers") == before
    assert await conn.fetchval("SELECT count(*) FROM referrals") == 0
    report = await _report(shop)
    assert report["refused"]["self_referral"] == 1
    assert report["invitations_used"] == 0


async def test_a_first_purchase_rewards_both_sides_once(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    ada = str(shop.tenant.shopper_id)
    code = await _code(shop, shop.token("shopper"))
    friend = await _enrol(shop, name="Bea", referral_code=code)
    assert friend.status == 201, friend.body
    bea = friend.json["id"]
    assert (await _report(shop))["pending"] == 1
    r = await _buy(shop, bea, "bea-1", amount=10)
    assert r.json["balance"] == 10 + 100  # her purchase, and her referral reward
    await _buy(shop, bea, "bea-1", amount=10)  # a retry of the same purchase
    await _buy(shop, bea, "bea-2", amount=5)  # a second purchase
    assert await _ledger(conn, bea) == [
        (10, "purchase"),
        (100, "referral:referee"),
        (5, "purchase"),
    ]
    assert await _ledger(conn, ada) == [(200, "referral:referrer")]
    mine = await shop.api.get("/v1/me/referral", token=shop.token("shopper"))
    assert (mine.json["invited"], mine.json["rewarded"], mine.json["points_earned"]) == (1, 1, 200)
    report = await _report(shop)
    assert report["invitations_used"] == 1
    assert (report["qualified"], report["rewarded"], report["points_paid"]) == (1, 1, 300)
    assert report["refused_total"] == 0


async def test_shoppers_sharing_a_push_endpoint_are_refused(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    code = await _code(shop, shop.token("shopper"))
    friend = await _enrol(shop, referral_code=code)
    bea = friend.json["id"]
    # Bea's browser is Ada's: both subscribed the same push endpoint.
    for shopper in (shop.tenant.shopper_id, int(bea)):
        await conn.execute(
            "INSERT INTO push_subscriptions (merchant_id, shopper_id, endpoint, p256dh, auth) "
            "VALUES ($1, $2, 'https://push.example.net/one-browser', 'k', 'a')",
            shop.tenant.merchant_id,
            shopper,
        )
    await _buy(shop, bea, "bea-1")
    assert await _ledger(conn, bea) == [(10, "purchase")]
    assert await _ledger(conn, shop.tenant.shopper_id) == []
    report = await _report(shop)
    assert (report["qualified"], report["rewarded"]) == (1, 0)
    assert report["refused"]["shared_device"] == 1


async def test_shoppers_sharing_a_wallet_device_are_refused(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    code = await _code(shop, shop.token("shopper"))
    bea = (await _enrol(shop, referral_code=code)).json["id"]
    for shopper, token in ((shop.tenant.shopper_id, "ada-token"), (int(bea), "bea-token")):
        pass_id = await conn.fetchval(
            "INSERT INTO passes (merchant_id, shopper_id, kind, serial, auth_token) "
            "VALUES ($1, $2, 'loyalty', $3, $4) RETURNING id",
            shop.tenant.merchant_id,
            shopper,
            f"serial-{token}",
            f"{token}-0123456789abcdef",
        )
        await conn.execute(
            "INSERT INTO device_registrations (device_library_id, pass_id, push_token) "
            "VALUES ('one-iphone', $1, $2)",
            pass_id,
            token,
        )
    await _buy(shop, bea, "bea-1")
    assert (await _report(shop))["refused"]["shared_device"] == 1
    assert await _ledger(conn, shop.tenant.shopper_id) == []


async def test_the_cap_per_referrer_refuses_the_extra_referrals(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    await _rules(shop, cap_limit=2, cap_days=30, referrer_points=50, referee_points=0)
    code = await _code(shop, shop.token("shopper"))
    friends = [(await _enrol(shop, referral_code=code)).json["id"] for _ in range(3)]
    for i, friend in enumerate(friends):
        await _buy(shop, friend, f"buy-{i}")
    assert await _ledger(conn, shop.tenant.shopper_id) == [(50, "referral:referrer")] * 2
    assert await _ledger(conn, friends[0]) == [(10, "purchase")]  # referee_points 0
    report = await _report(shop)
    assert (report["rewarded"], report["points_paid"]) == (2, 100)
    assert report["refused"]["cap_reached"] == 1
    # Past the window, the referrer's next friend is rewarded again.
    shop.clock.advance(days=31)
    late = (await _enrol(shop, referral_code=code)).json["id"]
    await _buy(shop, late, "buy-late")
    assert (await _report(shop))["rewarded"] == 3


async def test_a_program_can_ask_for_a_first_redemption_or_a_points_threshold(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    await _rules(shop, qualify="first_redemption")
    code = await _code(shop, shop.token("shopper"))
    bea = (await _enrol(shop, referral_code=code)).json["id"]
    await _buy(shop, bea, "bea-1")
    assert (await _report(shop))["qualified"] == 0
    _, coupon = await test_offers.issue_coupon(
        conn,
        merchant_id=shop.tenant.merchant_id,
        shopper_id=int(bea),
        offer_id=shop.tenant.offer_id,
        store_id=shop.tenant.store_ids[0],
        fence_id=shop.tenant.geofence_ids[0],
        at=shop.clock.now(),
    )
    r = await shop.redeem(coupon, key="bea-redeem")
    assert r.status == 201, r.body
    assert (await _report(shop))["rewarded"] == 1
    assert (200, "referral:referrer") in await _ledger(conn, shop.tenant.shopper_id)

    await _rules(shop, qualify="points_threshold", threshold_points=50)
    cy = (await _enrol(shop, referral_code=code)).json["id"]
    await _buy(shop, cy, "cy-1", amount=30)
    assert (await _report(shop))["rewarded"] == 1
    await _buy(shop, cy, "cy-2", amount=30)  # 60 points now
    assert (await _report(shop))["rewarded"] == 2


async def test_rules_round_trip_and_validate(shop: Shop) -> None:
    r = await shop.api.get("/v1/referrals/rules", token=shop.token("reviewer"))
    assert (r.json["qualify"], r.json["referrer_points"]) == ("first_purchase", 200)
    body = {"referrer_points": 1, "referee_points": 1, "cap_limit": 1, "cap_days": 1}

    async def put(token: str, qualify: str) -> Any:
        return await shop.api.put(
            "/v1/referrals/rules", token=shop.token(token), json={**body, "qualify": qualify}
        )

    bad = await put("manager", "points_threshold")
    assert (bad.status, list(bad.json["error"]["fields"])) == (422, ["threshold_points"])
    scoped = await put("manager@store0", "first_purchase")
    assert (scoped.status, scoped.error_code) == (403, "out_of_scope")


async def test_twenty_parallel_first_purchases_pay_one_reward(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    code = await _code(shop, shop.token("shopper"))
    bea = (await _enrol(shop, referral_code=code)).json["id"]
    replies = await asyncio.gather(*(_buy(shop, bea, f"race-{i}") for i in range(20)))
    assert all(r.status == 201 for r in replies)
    assert await _ledger(conn, shop.tenant.shopper_id) == [(200, "referral:referrer")]
    reasons = [reason for _, reason in await _ledger(conn, bea)]
    assert reasons.count("referral:referee") == 1 and reasons.count("purchase") == 20
    assert (await _report(shop))["rewarded"] == 1


async def test_rewards_can_be_coupons_delivered_like_an_offers(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    # A paused offer: a reward kept off the geofences.
    offer = await shop.offer(status="paused", name="Welcome friend")
    await _rules(shop, referrer_points=0, referee_points=50, referee_offer_id=offer)
    rules = await shop.api.get("/v1/referrals/rules", token=shop.token("manager"))
    assert rules.json["referee_offer_id"] == offer
    code = await _code(shop, shop.token("shopper"))
    friend = await _enrol(shop, referral_code=code)
    bea, token = friend.json["id"], friend.json["token"]
    await _buy(shop, bea, "bea-1")
    inbox = await shop.api.get("/v1/inbox", token=token)
    assert inbox.status == 200, inbox.body
    assert [i["offer_id"] for i in inbox.json["items"]] == [offer]
    coupon = inbox.json["items"][0]["coupon"]["code"]
    assert await _ledger(conn, shop.tenant.shopper_id) == []  # no points, no coupon
    report = await _report(shop)
    assert (report["rewarded"], report["coupons_issued"], report["points_paid"]) == (1, 1, 50)
    log = await shop.api.get(f"/v1/logs/decisions?offer_id={offer}", token=shop.token("reviewer"))
    assert [d["trigger"] for d in log.json["items"]] == ["referral"]
    r = await shop.redeem(coupon, key="bea-redeems")
    assert r.status == 201, r.body


async def test_a_reward_offer_must_exist_and_have_a_geofence(shop: Shop) -> None:
    body = {
        "qualify": "first_purchase",
        "referrer_points": 0,
        "referee_points": 0,
        "cap_limit": 1,
        "cap_days": 1,
        "referrer_offer_id": "999999",
    }
    r = await shop.api.put("/v1/referrals/rules", token=shop.token("manager"), json=body)
    assert (r.status, list(r.json["error"]["fields"])) == (422, ["referrer_offer_id"])


async def test_the_code_is_on_the_back_of_both_wallet_cards(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    code = await _code(shop, shop.token("shopper"))
    r = await shop.api.get("/v1/passes/loyalty", token=shop.token("shopper"))
    assert r.status == 200
    card = json.loads(pkpass.unpack(r.body)["pass.json"])
    back = {f["key"]: f for f in card["storeCard"]["backFields"]}
    assert back["referral"]["value"] == code
    assert back["referral"]["label"].startswith("Invite a friend")

    info = await configure(conn, shop.tenant.merchant_id)
    link = await shop.api.get("/v1/passes/google/loyalty", token=shop.token("shopper"))
    assert link.status == 200, link.body
    payload = read_link(link.json["save_url"], info)[1]["payload"]
    card_id = payload["loyaltyObjects"][0]["id"]
    async with google(shop, info) as (stand_in, pusher):
        assert await pusher.run_once() == 1
        stored = stand_in.stored["loyaltyObject"][card_id]
    [module] = stored["textModulesData"]
    assert module["id"] == "referral"
    assert codes.display(module["body"]) == code


async def test_export_shows_referrals_and_erasure_retires_the_code(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    code = await _code(shop, shop.token("shopper"))
    bea = await _enrol(shop, referral_code=code)
    await _buy(shop, bea.json["id"], "bea-1")
    mine = await shop.api.get("/v1/me/export", token=shop.token("shopper"))
    loyalty = mine.json["loyalty"]
    assert codes.display(loyalty["referral_code"]) == code
    assert [(r["side"], r["status"], r["points"]) for r in loyalty["referrals"]] == [
        ("referrer", "rewarded", 200)
    ]
    theirs = await shop.api.get("/v1/me/export", token=bea.json["token"])
    assert [r["side"] for r in theirs.json["loyalty"]["referrals"]] == ["referee"]
    gone = await shop.api.delete("/v1/me", token=shop.token("shopper"))
    assert gone.json["removed"]["referral_codes"] == 1
    r = await _enrol(shop, referral_code=code)
    assert (r.status, r.error_code) == (422, "unknown_referral_code")
    assert (await _report(shop))["rewarded"] == 1  # the report does not move


async def test_a_code_collision_draws_again_inside_the_callers_transaction(
    shop: Shop, conn: asyncpg.Connection, monkeypatch: Any
) -> None:
    """45 random bits met again: the next draw is taken, and the enrolment commits."""
    taken = await _code(shop, shop.token("shopper"))
    fresh = codes.new_code(codes.REFERRAL_SYMBOLS)
    draws = iter([codes.normalize(taken, codes.REFERRAL_SYMBOLS), fresh])
    monkeypatch.setattr(codes, "new_code", lambda symbols=codes.DATA_SYMBOLS: next(draws))
    r = await _enrol(shop, name="Unlucky")
    assert r.status == 201, r.body
    assert await _code(shop, r.json["token"]) == codes.display(fresh)
