"""Google Wallet over HTTP and against the local Google stand-in: save links whose JWT
verifies with the service account's key, objects inserted and kept in step with points,
tier and coupon state, retries, token refresh, the notification quota, dead letters, a
card deleted and saved again (told by signed callbacks), and a merchant without Google
configuration."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway import db
from gateway.delivery import googlepush
from gateway.jobs import upkeep
from gateway.settings import SETTINGS
from tests.support.google_callbacks import GoogleSender
from tests.support.google_peer import Call, GoogleStandIn
from tests.support.gwallet import ISSUER, PUBLIC_URL, configure, google, read_link, run_due
from tests.support.shop import T0, Shop, enrol
from tests.support.wallet import apns, pass_files, purchase, register

LOYALTY = "/v1/passes/google/loyalty"


async def _link(shop: Shop, url: str = LOYALTY, token: str | None = None) -> str:
    r = await shop.api.get(url, token=token or shop.token("shopper"))
    assert r.status == 200, r.body
    assert set(r.json) == {"save_url"}
    return str(r.json["save_url"])


def _patches(stand_in: GoogleStandIn, resource: str) -> list[Call]:
    return [c for c in stand_in.calls if c.resource == resource and c.method == "PATCH"]


async def test_the_save_link_is_signed_by_the_service_account_with_exactly_googles_claims(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    info = await configure(conn, shop.tenant.merchant_id)
    await purchase(shop, 42, "g-link-1")
    url = await _link(shop)
    header, claims = read_link(url, info)
    assert header["alg"] == "RS256"
    assert set(claims) == {"iss", "aud", "typ", "iat", "origins", "payload"}
    assert claims["iss"] == info["client_email"]
    assert (claims["aud"], claims["typ"]) == ("google", "savetowallet")
    assert claims["iat"] == int(shop.clock.now().timestamp())
    assert claims["origins"] == [shop.app[SETTINGS].base_url]
    assert set(claims["payload"]) == {"loyaltyObjects"}
    card = claims["payload"]["loyaltyObjects"][0]
    assert card["id"].startswith(f"{ISSUER}.")
    assert card["classId"] == f"{ISSUER}.program-{shop.tenant.merchant_id}"
    assert card["loyaltyPoints"]["balance"] == {"int": 42}
    assert card["secondaryLoyaltyPoints"]["balance"] == {"string": "Bronze"}
    assert len(card["merchantLocations"]) == 2  # the tenant's two stores
    # The card's id never changes; a link for someone else's card is someone else's.
    again = read_link(await _link(shop), info)[1]
    assert again["payload"]["loyaltyObjects"][0]["id"] == card["id"]
    other = await enrol(conn, shop.tenant, "other")
    theirs = read_link(await _link(shop, token=other), info)[1]
    assert theirs["payload"]["loyaltyObjects"][0]["id"] != card["id"]
    assert theirs["payload"]["loyaltyObjects"][0]["loyaltyPoints"]["balance"] == {"int": 0}


async def test_a_merchant_without_google_configuration_answers_409_and_404s_stay_404(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    r = await shop.api.get(LOYALTY, token=shop.token("shopper"))
    assert r.status == 409, r.body
    assert r.json["error"]["code"] == "google_wallet_not_configured"
    assert "google-configure" in r.json["error"]["message"]
    coupon = f"/v1/passes/google/coupons/{shop.tenant.coupon_id}"
    r = await shop.api.get(coupon, token=shop.token("shopper"))
    assert r.status == 409 and r.json["error"]["code"] == "google_wallet_not_configured"
    await configure(conn, shop.tenant.merchant_id)
    r = await shop.api.get("/v1/passes/google/coupons/999999", token=shop.token("shopper"))
    assert r.status == 404 and r.json["error"]["code"] == "not_found"
    r = await shop.api.get("/v1/passes/google/coupons/x", token=shop.token("shopper"))
    assert r.status == 404
    assert await conn.fetchval("SELECT count(*) FROM google_wallet_objects") == 0


async def test_the_updater_inserts_the_class_and_card_then_follows_points_and_tier(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    info = await configure(conn, shop.tenant.merchant_id)
    card_id = read_link(await _link(shop), info)[1]["payload"]["loyaltyObjects"][0]["id"]
    async with google(shop, info) as (stand_in, pusher):
        assert await pusher.run_once() == 1
        assert card_id in stand_in.stored["loyaltyObject"]
        program = stand_in.stored["loyaltyClass"][f"{ISSUER}.program-{shop.tenant.merchant_id}"]
        # Google posts the card's saves and deletes to the merchant's callback URL.
        assert program["callbackOptions"] == {
            "url": f"{PUBLIC_URL}/v1/wallet/google/callback/{shop.tenant.merchant_id}"
        }
        await purchase(shop, 600, "g-up-1")  # 600 points: Silver
        assert await pusher.run_once() == 1
        stored = stand_in.stored["loyaltyObject"][card_id]
        assert stored["loyaltyPoints"]["balance"] == {"int": 600}
        assert stored["secondaryLoyaltyPoints"]["balance"] == {"string": "Silver"}
        assert [c.notified for c in _patches(stand_in, "loyaltyObject")][-1] is True
        # Nothing changed: nothing is sent.
        before = len(stand_in.calls)
        await conn.execute(
            "INSERT INTO pass_updates (merchant_id, shopper_id, reason, target) "
            "VALUES ($1, $2, 'points_spend', 'google')",
            shop.tenant.merchant_id,
            shop.tenant.shopper_id,
        )
        assert await pusher.run_once() == 1
        assert len(stand_in.calls) == before
    assert stand_in.token_requests == 1
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM pass_updates WHERE done_at IS NULL AND target = 'google'"
        )
        == 0
    )


async def _wallet_coupon(shop: Shop, conn: asyncpg.Connection) -> dict[str, str]:
    """A coupon sent to the wallet channel, once the outbox worker has queued its pass."""
    await shop.offer(channels=["inbox", "wallet"])
    sent = (await shop.walk_in()).json["offers"][0]
    for _ in range(200):
        queued = await conn.fetchval(
            "SELECT count(*) FROM pass_updates WHERE reason = 'coupon_issued' AND target = 'google'"
        )
        if queued:
            break
        await asyncio.sleep(0.05)
    assert queued, "the outbox worker did not queue the wallet pass update"
    return dict(sent["coupon"])


async def test_a_wallet_coupon_joins_the_card_and_a_redemption_marks_google_and_apple_in_one_run(
    shop: Shop, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    info = await configure(conn, shop.tenant.merchant_id)
    card_id = read_link(await _link(shop), info)[1]["payload"]["loyaltyObjects"][0]["id"]
    card_class = f"{ISSUER}.program-{shop.tenant.merchant_id}"
    token = shop.token("shopper")
    async with google(shop, info) as (stand_in, pusher):
        assert await pusher.run_once() == 1  # the save link's first insert
        coupon = await _wallet_coupon(shop, conn)
        assert await run_due(conn, pusher) == 1
        (offer_id, offer), *_ = stand_in.stored["offerObject"].items()
        assert offer["state"] == "ACTIVE"
        callbacks = stand_in.stored["offerClass"][offer["classId"]]["callbackOptions"]
        assert (
            callbacks["url"]
            == stand_in.stored["loyaltyClass"][card_class]["callbackOptions"]["url"]
        )
        assert offer["barcode"]["value"] == coupon["code"].replace("-", "")
        assert stand_in.stored["loyaltyObject"][card_id]["linkedOfferIds"] == [offer_id]
        message = stand_in.stored["loyaltyObject"][card_id]["messages"][-1]
        assert message["messageType"] == "TEXT_AND_NOTIFY"
        # The coupon's own save link names the same object.
        url = await _link(shop, f"/v1/passes/google/coupons/{coupon['id']}")
        claims = read_link(url, info)[1]
        assert set(claims["payload"]) == {"offerObjects"}
        assert claims["payload"]["offerObjects"][0]["id"] == offer_id

        # The Apple coupon pass on a device, then one redemption at the till.
        r = await shop.api.get(f"/v1/passes/coupons/{coupon['id']}", token=token)
        apple = json.loads(pass_files(r.body)["pass.json"])
        async with apns(shop, conn, tmp_path) as (apns_peer, apple_pusher):
            await register(shop, apple, {"dev1": "e5" * 32})
            await conn.execute("UPDATE pass_updates SET done_at = now() WHERE done_at IS NULL")
            assert (await shop.redeem(coupon["code"], key="g-redeem-1")).status == 201
            assert await apple_pusher.run_once() == 1
            assert await pusher.run_once() == 1
        assert [p.token for p in apns_peer.pushes] == ["e5" * 32]
        assert stand_in.stored["offerObject"][offer_id]["state"] == "COMPLETED"
        fetched = await shop.api.get(
            f"/wallet/v1/passes/{apple['passTypeIdentifier']}/{apple['serialNumber']}",
            headers={"Authorization": f"ApplePass {apple['authenticationToken']}"},
        )
        assert json.loads(pass_files(fetched.body)["pass.json"])["voided"] is True
        # Redeemed: no new save link for it.
        r = await shop.api.get(f"/v1/passes/google/coupons/{coupon['id']}", token=token)
        assert r.status == 409 and r.json["error"]["code"] == "coupon_not_live"


async def test_429_and_5xx_are_retried_with_backoff_and_a_refusal_is_dead_lettered(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    info = await configure(conn, shop.tenant.merchant_id)
    card_id = read_link(await _link(shop), info)[1]["payload"]["loyaltyObjects"][0]["id"]
    async with google(shop, info) as (stand_in, pusher):
        assert await pusher.run_once() == 1
        stand_in.fail(429, "rateLimitExceeded", retry_after=7)
        stand_in.fail(503, "backendError")
        await purchase(shop, 5, "g-retry-1")
        assert await pusher.run_once() == 1
        row = await conn.fetchrow(
            "SELECT done_at, last_error, available_at - now() AS wait FROM pass_updates "
            "WHERE target = 'google' ORDER BY id DESC LIMIT 1"
        )
        assert row["done_at"] is None and row["last_error"].startswith("429")
        assert row["wait"].total_seconds() > 6  # Retry-After honoured
        assert await pusher.run_once() == 0  # not due yet
        assert await run_due(conn, pusher) == 1
        assert (
            await conn.fetchval("SELECT last_error FROM pass_updates ORDER BY id DESC LIMIT 1")
        )[:3] == "503"
        assert await run_due(conn, pusher) == 1
        assert stand_in.stored["loyaltyObject"][card_id]["loyaltyPoints"]["balance"] == {"int": 5}
        row = await conn.fetchrow(
            "SELECT done_at, dead_at, attempts FROM pass_updates ORDER BY id DESC LIMIT 1"
        )
        assert row["done_at"] is not None and row["dead_at"] is None and row["attempts"] == 3

        # A refusal that no retry can fix goes to the dead letters at once, with why.
        stand_in.fail(400, "invalidArgument")
        await purchase(shop, 6, "g-retry-2")
        assert await pusher.run_once() == 1
        row = await conn.fetchrow(
            "SELECT done_at, dead_at, last_error FROM pass_updates ORDER BY id DESC LIMIT 1"
        )
        assert row["dead_at"] is not None and row["done_at"] is not None
        assert "400" in row["last_error"] and "invalidArgument" in row["last_error"]


async def test_a_refused_token_is_refreshed_once(
    shop: Shop, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    info = await configure(conn, shop.tenant.merchant_id)
    await _link(shop)
    async with google(shop, info) as (stand_in, pusher):
        assert await pusher.run_once() == 1
        assert stand_in.token_requests == 1
        stand_in.revoke_tokens()
        await purchase(shop, 7, "g-401-1")
        assert await pusher.run_once() == 1
        assert stand_in.token_requests == 2
        statuses = [c.status for c in stand_in.calls[-3:]]
        assert statuses.count(401) == 1
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pass_updates WHERE done_at IS NULL AND target = 'google'"
            )
            == 0
        )
        # A token that is refused even fresh: one refresh only, then the row waits.
        stand_in.revoke_tokens()
        stand_in.accounts.clear()  # Google no longer knows the key
        await purchase(shop, 8, "g-401-2")
        assert await pusher.run_once() == 1
        assert stand_in.token_requests == 3
        row = await conn.fetchrow("SELECT done_at, last_error FROM pass_updates ORDER BY id DESC")
        assert row["done_at"] is not None and "token refused" in row["last_error"]
    # Neither the key nor any access token reached a log line, even at DEBUG.
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "google wallet update dead-lettered" in text
    key_body = "".join(info["private_key"].splitlines()[1:-1])
    assert key_body[20:60] not in text
    assert stand_in.issued and not any(t in text for t in stand_in.issued)


async def test_past_three_notifications_a_day_updates_go_through_silently_and_are_recorded(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    info = await configure(conn, shop.tenant.merchant_id)
    card_id = read_link(await _link(shop), info)[1]["payload"]["loyaltyObjects"][0]["id"]
    async with google(shop, info) as (stand_in, pusher):
        assert await pusher.run_once() == 1
        for n in range(1, 5):
            shop.clock.advance(seconds=60)
            await purchase(shop, n, f"g-quota-{n}")
            assert await pusher.run_once() == 1
        patches = _patches(stand_in, "loyaltyObject")[-4:]
        assert [c.notified for c in patches] == [True, True, True, False]
        assert "notifyPreference" not in (patches[-1].body or {})
        assert stand_in.stored["loyaltyObject"][card_id]["loyaltyPoints"]["balance"] == {"int": 10}
        log = await conn.fetch(
            "SELECT notified, silent_reason FROM google_wallet_notifications ORDER BY id"
        )
        assert [(r["notified"], r["silent_reason"]) for r in log] == [
            (True, None),
            (True, None),
            (True, None),
            (False, "quota"),
        ]
        # A day later the quota is back, by our count; but Google counted three more
        # (another system): it refuses the notification, and the update goes silently.
        shop.clock.advance(hours=25)
        stand_in.notifications[card_id] = [time.time()] * 3
        await purchase(shop, 5, "g-quota-5")
        assert await pusher.run_once() == 1
        assert [c.status for c in _patches(stand_in, "loyaltyObject")[-2:]] == [429, 200]
        assert stand_in.stored["loyaltyObject"][card_id]["loyaltyPoints"]["balance"] == {"int": 15}
        last = await conn.fetchrow(
            "SELECT notified, silent_reason FROM google_wallet_notifications ORDER BY id DESC"
        )
        assert (last["notified"], last["silent_reason"]) == (False, "google_quota")


@pytest.fixture
def sender() -> GoogleSender:
    """Google's side of callbacks: the shop believes its root key."""
    return GoogleSender(now=T0)


@pytest.fixture
def shop_settings(sender: GoogleSender) -> dict[str, Any]:
    return {"google_root_keys": sender.root_keys()}


async def test_a_card_deleted_from_google_wallet_gets_no_updates_until_saved_again(
    shop: Shop, conn: asyncpg.Connection, sender: GoogleSender
) -> None:
    info = await configure(conn, shop.tenant.merchant_id)
    card_id = read_link(await _link(shop), info)[1]["payload"]["loyaltyObjects"][0]["id"]
    url = f"/v1/wallet/google/callback/{shop.tenant.merchant_id}"

    async def callback(event: str) -> None:
        """The shopper saves or deletes the card: Google tells the gateway, signed."""
        sender.now = shop.clock.now()
        body = sender.callback(issuer_id=ISSUER, object_id=card_id, event=event)
        r = await shop.api.post(url, json=body)
        assert (r.status, r.json["status"]) == (200, "recorded"), r.body

    def balance() -> Any:
        return stand_in.stored["loyaltyObject"][card_id]["loyaltyPoints"]["balance"]

    async with google(shop, info) as (stand_in, pusher):
        assert await pusher.run_once() == 1  # the save link's insert
        await callback("save")
        await purchase(shop, 9, "g-del-0")
        assert await pusher.run_once() == 1
        assert balance() == {"int": 9}
        writes = len(stand_in.writes("loyaltyObject"))
        # Deleted: an update queued before the callback sends nothing, and later changes
        # queue nothing for Google at all.
        await purchase(shop, 9, "g-del-1")
        await callback("del")
        assert await pusher.run_once() == 1
        await purchase(shop, 9, "g-del-2")
        assert await pusher.run_once() == 0
        assert len(stand_in.writes("loyaltyObject")) == writes
        assert balance() == {"int": 9}
        # Saved again: one update brings the card up to date, without a notification.
        shop.clock.advance(seconds=60)
        await callback("save")
        assert await pusher.run_once() == 1
        assert balance() == {"int": 27}
        assert len(stand_in.writes("loyaltyObject")) == writes + 1
        assert _patches(stand_in, "loyaltyObject")[-1].notified is False
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM pass_updates WHERE done_at IS NULL AND target = 'google'"
        )
        == 0
    )


async def test_a_coupon_saved_only_to_google_expires_there_after_upkeep(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    info = await configure(conn, shop.tenant.merchant_id)
    await shop.offer()  # inbox and Web Push only: the coupon reaches Google by its own link
    coupon = (await shop.walk_in()).json["offers"][0]["coupon"]
    url = await _link(shop, f"/v1/passes/google/coupons/{coupon['id']}")
    offer_id = read_link(url, info)[1]["payload"]["offerObjects"][0]["id"]
    async with google(shop, info) as (stand_in, pusher):
        assert await pusher.run_once() == 1
        assert stand_in.stored["offerObject"][offer_id]["state"] == "ACTIVE"
        assert f"{ISSUER}.offer-" in stand_in.stored["offerObject"][offer_id]["classId"]
        shop.clock.advance(hours=2)  # the coupon was valid for an hour
        summary = await upkeep.run(shop.app[db.POOL], now=shop.clock.now())
        assert summary is not None and summary.coupon_passes_expired == 1
        assert await pusher.run_once() == 1
        assert stand_in.stored["offerObject"][offer_id]["state"] == "EXPIRED"
        # Upkeep does not queue it again once Google shows it expired.
        summary = await upkeep.run(shop.app[db.POOL], now=shop.clock.now())
        assert summary is not None and summary.coupon_passes_expired == 0


def test_classes_name_a_callback_url_only_under_an_https_public_url() -> None:
    """Google calls only HTTPS URLs: a plain-HTTP gateway (a laptop) leaves it out."""
    assert googlepush.callback_url("https://gw.example.com/", 7) == (
        "https://gw.example.com/v1/wallet/google/callback/7"
    )
    assert googlepush.callback_url("http://127.0.0.1:8080", 7) is None
    assert googlepush.callback_url(None, 7) is None
