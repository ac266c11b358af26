"""The in-app inbox, its live feed, open/dismiss tracking, push subscriptions, the VAPID key,
and the outbox's wallet channel, leases and dead letters."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import test_utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway import app as app_mod
from gateway import db
from gateway.delivery import outbox
from gateway.delivery.outbox import WORKER
from tests.support.shop import Shop, enrol, make_settings


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def browser_subscription(endpoint: str = "https://push.example.net/abc") -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": b64(point), "auth": b64(os.urandom(16))},
    }


async def _sent_coupon(shop: Shop, **offer: Any) -> tuple[str, dict[str, Any]]:
    oid = await shop.offer(**offer)
    r = await shop.walk_in()
    [sent] = r.json["offers"]
    return oid, sent


class TestInbox:
    async def test_inbox_lists_live_coupons_newest_first_and_pages(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        await shop.api.put(
            "/v1/program",
            token=shop.token("manager"),
            json={"daily_offer_cap": None, "quiet_hours": None},
        )
        sent = []
        for minutes in (10, 90, 90):
            oid = await shop.offer(
                channels=["inbox"], coupon={"discount": "x", "valid_minutes": minutes}
            )
            await shop.walk_out()
            shop.clock.advance(seconds=30)
            r = await shop.walk_in()
            assert [o["offer_id"] for o in r.json["offers"]] == [oid]
            sent.append(r.json["offers"][0]["delivery_id"])
            await conn.execute("UPDATE offers SET status = 'paused' WHERE id = $1", int(oid))
        first = await shop.api.get("/v1/inbox?limit=2", token=shop.token("shopper"))
        assert [i["delivery_id"] for i in first.json["items"]] == sent[::-1][:2]
        rest = await shop.api.get(
            f"/v1/inbox?limit=2&cursor={first.json['next_cursor']}", token=shop.token("shopper")
        )
        assert [i["delivery_id"] for i in rest.json["items"]] == [sent[0]]
        assert rest.json["next_cursor"] is None
        item = first.json["items"][0]
        assert item["coupon"]["redeemed"] is False and item["opened_at"] is None
        # The 10-minute coupon expires and leaves the inbox.
        shop.clock.advance(minutes=15)
        r = await shop.api.get("/v1/inbox", token=shop.token("shopper"))
        assert [i["delivery_id"] for i in r.json["items"]] == sent[::-1][:2]
        # Other shoppers see nothing of it.
        other = await enrol(conn, shop.tenant, "other")
        assert (await shop.api.get("/v1/inbox", token=other)).json["items"] == []
        bad = await shop.api.get("/v1/inbox?cursor=nope", token=shop.token("shopper"))
        assert bad.status == 422

    async def test_open_and_dismiss_are_idempotent_and_reach_the_funnel(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid, sent = await _sent_coupon(shop, channels=["inbox"])
        await shop.api.get("/v1/inbox", token=shop.token("shopper"))
        did = sent["delivery_id"]
        first = await shop.api.post(f"/v1/inbox/{did}/open", token=shop.token("shopper"))
        shop.clock.advance(seconds=30)
        again = await shop.api.post(f"/v1/inbox/{did}/open", token=shop.token("shopper"))
        assert first.json == again.json and first.json["opened_at"] is not None
        r = await shop.api.post(f"/v1/inbox/{did}/dismiss", token=shop.token("shopper"))
        assert r.json["dismissed_at"] is not None
        assert (await shop.api.get("/v1/inbox", token=shop.token("shopper"))).json["items"] == []
        other = await enrol(conn, shop.tenant, "other")
        assert (await shop.api.post(f"/v1/inbox/{did}/open", token=other)).status == 404
        assert (
            await shop.api.post("/v1/inbox/not-a-uuid/open", token=shop.token("shopper"))
        ).status == 404
        report = await shop.api.get(
            f"/v1/reports/offers/{oid}?by=channel", token=shop.token("reviewer")
        )
        f = report.json["funnel"]
        assert (f["sent"], f["delivered"], f["opened"], f["dismissed"]) == (1, 1, 1, 1)
        assert [(g["key"], g["delivered"], g["opened"]) for g in report.json["breakdown"]] == [
            ("inbox", 1, 1)
        ]

    async def test_live_feed_streams_a_new_coupon_within_a_second(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        await shop.offer(channels=["inbox"])
        headers = {"Authorization": f"Bearer {shop.token('shopper')}"}
        async with shop.api.raw.get("/v1/inbox/stream", headers=headers) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert await stream.content.readline() == b": connected\n"
            await stream.content.readline()
            started = asyncio.get_running_loop().time()
            r = await shop.walk_in()
            decided = asyncio.get_running_loop().time()
            lines = []
            while not lines or lines[-1] != b"\n":
                lines.append(await asyncio.wait_for(stream.content.readline(), 1.0))
            arrived = asyncio.get_running_loop().time()
        event = dict(line.decode().rstrip("\n").split(": ", 1) for line in lines if b": " in line)
        assert event["event"] == "coupon"
        assert event["id"] == r.json["offers"][0]["delivery_id"]
        assert (
            orjson.loads(event["data"])["coupon"]["code"] == r.json["offers"][0]["coupon"]["code"]
        )
        assert arrived - decided < 1.0, (started, decided, arrived)
        delivered = await conn.fetchval(
            "SELECT count(*) FROM delivery_events WHERE channel = 'inbox' AND kind = 'delivered'"
        )
        assert delivered == 1


class TestDeliveredInApp:
    async def test_the_readme_walkthrough_counts_the_coupon_in_the_answer_as_delivered(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        # The README's flow: an inbox + Web Push offer, a walk in, a redemption at the till.
        oid, sent = await _sent_coupon(
            shop, weather={"max_temp_c": 10}, caps=[{"max": 1, "hours": 24}]
        )
        assert (await shop.redeem(sent["coupon"]["code"], key="till-1-0001")).status == 201
        reviewer = shop.token("reviewer")
        f = (await shop.api.get(f"/v1/reports/offers/{oid}", token=reviewer)).json["funnel"]
        assert (f["sent"], f["delivered"], f["opened"], f["redeemed"]) == (1, 1, 0, 1)
        # Reading the inbox shows the same coupon again: still one delivery.
        items = (await shop.api.get("/v1/inbox", token=shop.token("shopper"))).json["items"]
        assert [i["delivery_id"] for i in items] == [sent["delivery_id"]]
        r = await shop.api.get(f"/v1/reports/offers/{oid}?by=channel", token=reviewer)
        assert r.json["funnel"]["delivered"] == 1
        # The shopper has no push subscription: Web Push fails (when the worker gets to
        # it), and the app had the coupon anyway.
        by_channel = {g["key"]: g["delivered"] for g in r.json["breakdown"]}
        assert by_channel.pop("inbox") == 1 and set(by_channel.values()) <= {0}
        events = await conn.fetchval(
            "SELECT count(*) FROM delivery_events WHERE kind = 'delivered' AND channel = 'inbox'"
        )
        assert events == 1

    async def test_an_open_without_a_recorded_delivery_records_it(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid, sent = await _sent_coupon(shop, channels=["webpush"])
        did = sent["delivery_id"]
        # A push-only coupon opened from its notification before the push was recorded.
        r = await shop.api.post(f"/v1/inbox/{did}/open", token=shop.token("shopper"))
        assert r.status == 200
        rows = await conn.fetch(
            "SELECT channel, kind FROM delivery_events WHERE delivery_id = $1 "
            "AND kind IN ('delivered', 'opened') ORDER BY channel, kind",
            sent["delivery_id"],
        )
        assert ("webpush", "delivered") in [(e["channel"], e["kind"]) for e in rows]
        assert ("webpush", "opened") in [(e["channel"], e["kind"]) for e in rows]
        reviewer = shop.token("reviewer")
        r = await shop.api.get(f"/v1/reports/offers/{oid}?by=channel", token=reviewer)
        f = r.json["funnel"]
        assert f["sent"] >= f["delivered"] >= f["opened"] == 1
        for g in r.json["breakdown"]:
            assert g["delivered"] >= g["opened"], g

    async def test_events_in_one_batch_for_one_delivery_all_count(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid, sent = await _sent_coupon(shop)
        now = shop.clock.now()
        await outbox.record_event(conn, sent["delivery_id"], "webpush", "dismissed", now)
        row = await conn.fetchrow(
            "SELECT delivered_at, dismissed_at FROM deliveries WHERE id = $1",
            sent["delivery_id"],
        )
        assert row["delivered_at"] is not None and row["dismissed_at"] == now
        reviewer = shop.token("reviewer")
        f = (await shop.api.get(f"/v1/reports/offers/{oid}", token=reviewer)).json["funnel"]
        assert (f["sent"], f["delivered"], f["dismissed"]) == (1, 1, 1)


class TestPushSubscriptions:
    async def test_subscribe_validates_and_is_idempotent(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        sub = browser_subscription()
        token = shop.token("shopper")
        r = await shop.api.post("/v1/push-subscriptions", token=token, json=sub)
        assert r.status == 201
        r = await shop.api.post("/v1/push-subscriptions", token=token, json=sub)
        assert r.status == 200
        bad_point = dict(
            sub, keys={"p256dh": b64(b"\x04" + b"\x01" * 64), "auth": sub["keys"]["auth"]}
        )
        short_auth = dict(sub, keys={"p256dh": sub["keys"]["p256dh"], "auth": b64(b"x" * 8)})
        plain_http = dict(sub, endpoint="ftp://push.example.net/abc")
        for body, field in (
            (bad_point, "keys.p256dh"),
            (short_auth, "keys.auth"),
            (plain_http, "endpoint"),
            (dict(sub, keys={"p256dh": "***", "auth": sub["keys"]["auth"]}), "keys.p256dh"),
        ):
            r = await shop.api.post("/v1/push-subscriptions", token=token, json=body)
            assert r.status == 422 and field in r.json["error"]["fields"], r.json
        r = await shop.api.delete(
            "/v1/push-subscriptions", token=token, json={"endpoint": sub["endpoint"]}
        )
        assert r.status == 204
        r = await shop.api.delete(
            "/v1/push-subscriptions", token=token, json={"endpoint": sub["endpoint"]}
        )
        assert r.status == 404
        assert await conn.fetchval("SELECT count(*) FROM push_subscriptions") == 0

    async def test_vapid_key_is_made_once_and_shared_by_replicas(
        self, shop: Shop, database_url: str, tmp_path: Any, conn: asyncpg.Connection
    ) -> None:
        r = await shop.api.get("/v1/push/vapid-public-key")
        key = r.json["public_key"]
        raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        assert len(raw) == 65 and raw[0] == 4
        other = app_mod.create_app(make_settings(tmp_path), db_url=database_url)
        async with (
            test_utils.TestClient(test_utils.TestServer(other)) as client,
            client.get("/v1/push/vapid-public-key") as resp,
        ):
            assert (await resp.json())["public_key"] == key
        assert await conn.fetchval("SELECT count(*) FROM vapid_keys") == 1


class TestOutbox:
    async def test_wallet_channel_marks_the_pass_for_update(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        _, sent = await _sent_coupon(shop, channels=["wallet"])
        for _ in range(100):
            if await conn.fetchval(
                "SELECT count(*) FROM pass_updates WHERE reason = 'coupon_issued'"
            ):
                break
            await asyncio.sleep(0.02)
        row = await conn.fetchrow(
            "SELECT reason, delivery_id FROM pass_updates WHERE reason = 'coupon_issued'"
        )
        assert (row["reason"], str(row["delivery_id"])) == ("coupon_issued", sent["delivery_id"])
        assert await conn.fetchval("SELECT status FROM outbox") == "done"
        rid = (await shop.redeem(sent["coupon"]["code"], key="w1")).json["id"]
        assert (
            await conn.fetchval("SELECT reason FROM pass_updates ORDER BY id DESC LIMIT 1")
            == "coupon_redeemed"
        )
        await shop.api.post(f"/v1/redemptions/{rid}/void", token=shop.token("pos"))
        assert (
            await conn.fetchval("SELECT reason FROM pass_updates ORDER BY id DESC LIMIT 1")
            == "redemption_voided"
        )

    async def test_no_subscription_is_a_failed_delivery_not_a_dead_letter(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid, _ = await _sent_coupon(shop, channels=["webpush"])
        for _ in range(100):
            if await conn.fetchval("SELECT status FROM outbox") == "done":
                break
            await asyncio.sleep(0.02)
        assert await conn.fetchrow("SELECT status, last_error FROM outbox") == (
            "done",
            "no push subscription",
        )
        detail = await conn.fetchval("SELECT detail FROM delivery_events WHERE kind = 'failed'")
        assert detail == "no push subscription"
        r = await shop.api.get(f"/v1/reports/offers/{oid}?by=channel", token=shop.token("reviewer"))
        # Web Push failed; the coupon reached the app in the ping's answer.
        assert {g["key"]: (g["delivered"], g["failed"]) for g in r.json["breakdown"]} == {
            "inbox": (1, 0),
            "webpush": (0, 1),
        }

    async def test_a_dead_workers_rows_are_taken_over_after_the_lease(
        self, database_url: str, conn: asyncpg.Connection, shop: Shop, tmp_path: Any
    ) -> None:
        # A worker that claims and then dies: its rows wait out the lease, then
        # a live worker delivers them, and the dead one's late answer changes nothing.
        shop.app[WORKER]._task.cancel()  # type: ignore[union-attr]
        _, sent = await _sent_coupon(shop, channels=["wallet"])
        rows = await conn.fetch(outbox._Q["claim"], 10, 0.3)
        assert [r["delivery_id"] for r in rows] == [__import__("uuid").UUID(sent["delivery_id"])]
        dead_attempt = rows[0]["attempts"]
        live = outbox.Worker(
            await db.create_pool(database_url, min_size=1, max_size=2),
            sender=None,
            public_url="http://x",
        )
        try:
            assert await live.run_once() == 0  # still leased
            await asyncio.sleep(0.4)
            assert await live.run_once() == 1
        finally:
            await live.pool.close()
        late = await conn.fetch(
            outbox._Q["settle"], [rows[0]["id"]], [dead_attempt], ["dead"], ["late"], ["[]"], [None]
        )
        assert late == []
        assert await conn.fetchval("SELECT status FROM outbox") == "done"
        assert (
            await conn.fetchval("SELECT count(*) FROM pass_updates WHERE reason = 'coupon_issued'")
            == 1
        )

    async def test_dead_letters_are_visible_to_operators(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        shop.app[WORKER]._task.cancel()  # type: ignore[union-attr]
        await _sent_coupon(shop, channels=["webpush"], coupon={"discount": "x", "valid_minutes": 1})
        await conn.execute(
            "UPDATE outbox SET status = 'dead', last_error = '410: subscription gone', attempts = 3"
        )
        r = await shop.api.get("/v1/outbox/dead", token=shop.token("admin"))
        [item] = r.json["items"]
        assert (item["channel"], item["attempts"], item["last_error"]) == (
            "webpush",
            3,
            "410: subscription gone",
        )


def test_backoff_grows_with_full_jitter_and_is_capped() -> None:
    assert outbox.backoff(1, rng=lambda: 1.0) == 1.0
    assert outbox.backoff(4, rng=lambda: 1.0) == 8.0
    assert outbox.backoff(30, rng=lambda: 1.0) == outbox.MAX_BACKOFF
    assert outbox.backoff(5, rng=lambda: 0.0) == 0.1
    samples = {round(outbox.backoff(6), 3) for _ in range(50)}
    assert len(samples) > 10 and max(samples) <= 32


@pytest.mark.parametrize("minutes", [1])
def test_push_payload_is_the_documented_shape(minutes: int) -> None:
    claim = outbox.Claim(
        id=1,
        delivery_id="00000000-0000-0000-0000-000000000001",
        channel="webpush",
        attempts=1,
        expires_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        done_targets=(),
        merchant_id=1,
        shopper_id=2,
        offer_id=3,
        coupon_id=4,
        code="0123456789ABCE",
        title="t",
        body="b",
        image_url=None,
        valid_minutes=minutes,
    )
    payload = orjson.loads(outbox.push_payload(claim, "https://gw.example"))
    assert set(payload) == {
        "delivery_id",
        "offer_id",
        "title",
        "body",
        "image_url",
        "coupon",
        "open_url",
    }
    assert payload["image_url"] is None
    assert payload["coupon"] == {
        "code": "0123-4567-89AB-CE",
        "expires_at": "2026-01-01T00:00:00+00:00",
    }
    assert payload["open_url"] == (
        "https://gw.example/v1/inbox/00000000-0000-0000-0000-000000000001/open"
    )
