"""Offers over HTTP: rules, the coffee-shop walk, caps and budgets under concurrency, and
the all-or-nothing commit of a send."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
import pytest
from aiohttp import test_utils

from gateway import app as app_mod
from gateway.pingpath.pings import PINGS
from offers import codes
from tests.support.client import ApiClient, Reply
from tests.support.fences import LAT, LON, add_fence, circle_feature, offset
from tests.support.openapi_check import SpecChecker
from tests.support.shop import T0, Shop, enrol, make_settings, offer_body
from tests.support.tenants import Tenant


async def decisions(conn: asyncpg.Connection, offer_id: str) -> list[tuple[str, str | None]]:
    rows = await conn.fetch(
        "SELECT outcome, reason FROM decisions WHERE offer_id = $1 ORDER BY id", int(offer_id)
    )
    return [(r["outcome"], r["reason"]) for r in rows]


class TestOfferRules:
    async def test_create_read_change_pause_archive(self, shop: Shop) -> None:
        body = offer_body(
            {"store_ids": [str(shop.tenant.store_ids[0])]},
            schedule={
                "starts_at": "2026-01-01T00:00:00Z",
                "ends_at": "2026-03-01T00:00:00Z",
                "weekly": {"mon": ["07:00-10:30"], "tue": ["07:00-10:30"]},
            },
            weather={"conditions": ["rain", "drizzle"], "max_temp_c": 10},
            audience={"tiers": ["Gold"], "min_points": 100, "tags": ["coffee"]},
            caps=[{"max": 1, "hours": 24}, {"max": 3, "days": 30}],
            budget={"max_issued": 1000, "max_redeemed": 200},
            priority=7,
            holdout_pct=20,
        )
        r = await shop.api.post("/v1/offers", token=shop.token("manager"), json=body)
        assert r.status == 201, r.body
        offer = r.json
        oid = offer["id"]
        assert offer["caps"] == [{"max": 1, "seconds": 86400}, {"max": 3, "seconds": 2592000}]
        assert offer["budget"] == {
            "max_issued": 1000,
            "max_redeemed": 200,
            "issued": 0,
            "redeemed": 0,
        }
        assert offer["schedule"]["weekly"] == {"mon": ["07:00-10:30"], "tue": ["07:00-10:30"]}
        assert offer["weather"]["conditions"] == ["drizzle", "rain"]
        assert offer["holdout_pct"] == 20 and offer["status"] == "active"

        r = await shop.api.get(f"/v1/offers/{oid}", token=shop.token("reviewer"))
        assert r.json == offer
        r = await shop.api.patch(
            f"/v1/offers/{oid}", token=shop.token("manager"), json={"priority": 9, "weather": None}
        )
        assert (r.json["priority"], r.json["weather"], r.json["title"]) == (9, None, body["title"])
        r = await shop.api.post(f"/v1/offers/{oid}/pause", token=shop.token("manager"))
        assert r.json["status"] == "paused"
        r = await shop.api.get("/v1/offers?status=paused", token=shop.token("reviewer"))
        assert oid in [o["id"] for o in r.json["items"]]
        r = await shop.api.get("/v1/offers?status=active", token=shop.token("reviewer"))
        assert oid not in [o["id"] for o in r.json["items"]]
        r = await shop.api.post(f"/v1/offers/{oid}/resume", token=shop.token("manager"))
        assert r.json["status"] == "active"
        r = await shop.api.delete(f"/v1/offers/{oid}", token=shop.token("manager"))
        assert r.status == 204
        r = await shop.api.get(f"/v1/offers/{oid}", token=shop.token("reviewer"))
        assert r.status == 404

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"store_ids": [], "geofence_ids": []}, "(body)"),
            ({"geofence_ids": ["999999"]}, "geofence_ids"),
            ({"caps": [{"max": 1, "hours": 24, "days": 1}]}, "caps[0]"),
            ({"caps": [{"max": 0, "hours": 24}]}, "caps[0].max"),
            ({"weather": {"min_temp_c": 10, "max_temp_c": 0}}, "weather"),
            ({"weather": {}}, "weather"),
            ({"weather": {"conditions": ["sunny-ish"]}}, "weather.conditions[0]"),
            ({"schedule": {"weekly": {"mon": ["10:00-10:00"]}}}, "schedule.weekly"),
            (
                {"schedule": {"starts_at": "2026-02-01T00:00:00Z", "ends_at": "2026-01-01T00:00Z"}},
                "schedule",
            ),
            ({"channels": ["inbox", "inbox"]}, "channels"),
            ({"channels": ["sms"]}, "channels[0]"),
            ({"holdout_pct": 101}, "holdout_pct"),
            ({"trigger": "exit"}, "trigger"),
            ({"coupon": {"discount": "x", "valid_minutes": 0}}, "coupon.valid_minutes"),
            ({"image_url": "javascript:alert(1)"}, "image_url"),
            ({"audience": {"min_points": 10, "max_points": 5}}, "audience"),
        ],
    )
    async def test_invalid_offers_name_the_field(
        self, shop: Shop, conn: asyncpg.Connection, change: dict[str, Any], field: str
    ) -> None:
        body = offer_body({"store_ids": [str(shop.tenant.store_ids[0])]})
        body.update(change)
        r = await shop.api.post("/v1/offers", token=shop.token("manager"), json=body)
        assert r.status == 422, r.body
        assert field in r.json["error"]["fields"], r.json
        assert await conn.fetchval("SELECT count(*) FROM offers") == 1  # the fixture's own

    async def test_store_scoped_manager_stays_in_its_stores(self, shop: Shop) -> None:
        s0, s1 = (str(s) for s in shop.tenant.store_ids)
        scoped = shop.token("manager@store0")
        r = await shop.api.post("/v1/offers", token=scoped, json=offer_body({"store_ids": [s1]}))
        assert (r.status, r.error_code) == (403, "out_of_scope")
        wide = await shop.api.post(
            "/v1/offers", token=shop.token("manager"), json=offer_body({"store_ids": [s0, s1]})
        )
        r = await shop.api.get(f"/v1/offers/{wide.json['id']}", token=scoped)
        assert r.status == 403
        mine = await shop.api.post("/v1/offers", token=scoped, json=offer_body({"store_ids": [s0]}))
        assert mine.status == 201
        listed = await shop.api.get("/v1/offers", token=scoped)
        ids = {o["id"] for o in listed.json["items"]}
        assert mine.json["id"] in ids and wide.json["id"] not in ids

    async def test_program_rules_round_trip(self, shop: Shop) -> None:
        r = await shop.api.get("/v1/program", token=shop.token("reviewer"))
        assert r.json == {"daily_offer_cap": 3, "quiet_hours": {"start": "21:00", "end": "08:00"}}
        body = {"daily_offer_cap": None, "quiet_hours": None}
        r = await shop.api.put("/v1/program", token=shop.token("manager"), json=body)
        assert r.json == body
        bad = {"daily_offer_cap": 1, "quiet_hours": {"start": "25:00", "end": "07:00"}}
        r = await shop.api.put("/v1/program", token=shop.token("manager"), json=bad)
        assert r.status == 422


class TestCoffeeShop:
    async def test_cold_morning_walk_coupon_once_and_single_redemption(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer(
            weather={"max_temp_c": 10},
            schedule={"weekly": {d: ["07:00-10:30"] for d in ("mon", "tue", "wed", "thu", "fri")}},
            caps=[{"max": 1, "hours": 24}],
        )
        r = await shop.walk_in()
        assert [t["event"] for t in r.json["transitions"]] == ["enter"]
        [sent] = r.json["offers"]
        assert sent["offer_id"] == oid
        code = sent["coupon"]["code"]
        assert dt.datetime.fromisoformat(sent["coupon"]["expires_at"]) == T0 + dt.timedelta(
            seconds=20, minutes=60
        )
        # Everything the send needs was written together.
        delivery = await conn.fetchrow(
            "SELECT d.channels, (SELECT array_agg(channel ORDER BY channel) FROM outbox o "
            "WHERE o.delivery_id = d.id) AS outbox FROM deliveries d WHERE d.id = $1::uuid",
            sent["delivery_id"],
        )
        assert delivery["channels"] == ["inbox", "webpush"]
        assert delivery["outbox"] == ["webpush"]  # the inbox needs no worker

        # Leaving and coming back within the day: capped, and nothing is sent.
        await shop.walk_out()
        shop.clock.advance(minutes=5)
        r = await shop.walk_in()
        assert r.json["offers"] == []
        assert await decisions(conn, oid) == [("sent", None), ("suppressed", "frequency_capped")]

        # The till: wrong store, first scan, second scan, a retry, a reused key.
        shop.clock.advance(minutes=10)
        assert (await shop.redeem(code, key="k0", store=1)).error_code == "wrong_store"
        first = await shop.redeem(code.lower().replace("-", " "), key="k1", amount=4.5)
        assert first.status == 201, first.body
        assert first.json["amount"] == "4.50"
        second = await shop.redeem(code, key="k2")
        assert (second.status, second.error_code) == (409, "already_redeemed")
        retry = await shop.redeem(code.lower().replace("-", " "), key="k1", amount=4.5)
        assert (retry.status, retry.json) == (201, first.json)
        assert retry.headers["Idempotent-Replayed"] == "true"
        reused = await shop.redeem(code, key="k1", amount=9)
        assert (reused.status, reused.error_code) == (422, "idempotency_key_reused")

        # A void within the window frees the coupon; voiding twice is a conflict.
        rid = first.json["id"]
        r = await shop.api.post(
            f"/v1/redemptions/{rid}/void",
            token=shop.token("manager"),
            json={"reason": "rang up twice"},
        )
        assert r.status == 200 and r.json["void_reason"] == "rang up twice"
        assert r.json["voided_by"] is not None
        r = await shop.api.post(f"/v1/redemptions/{rid}/void", token=shop.token("pos"))
        assert (r.status, r.error_code) == (409, "already_voided")
        again = await shop.redeem(code, key="k3")
        assert again.status == 201

        # The reviewer sees the whole funnel.
        report = await shop.api.get(f"/v1/reports/offers/{oid}", token=shop.token("reviewer"))
        f = report.json["funnel"]
        assert (f["eligible"], f["sent"], f["redeemed"]) == (2, 1, 1)
        assert f["suppressed"]["by_reason"]["frequency_capped"] == 1
        assert f["suppressed"]["total"] == 1
        assert f["holdout"]["treatment"] == {"decisions": 1, "converted": 1}

    async def test_pings_sharing_a_timestamp_are_decided_with_their_own_weather(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer(weather={"conditions": ["rain"]})
        lat, lon = offset(0, 0)
        ts = shop.clock.now().isoformat()
        rainy = {"lat": lat, "lon": lon, "accuracy_m": 10, "ts": ts}
        rainy["weather"] = {"condition": "rain", "temp_c": 8}
        dry = {**rainy, "weather": {"condition": "clear", "temp_c": 8}}
        r = await shop.api.post(
            "/v1/pings/batch", token=shop.token("shopper"), json={"pings": [rainy, dry]}
        )
        assert r.status == 200, r.body
        # The rainy ping entered, so its weather decides: the offer goes out.
        per_item = [[t["event"] for t in res["transitions"]] for res in r.json["results"]]
        assert per_item == [["enter"], []]
        assert [o["offer_id"] for o in r.json["offers"]] == [oid]
        assert await decisions(conn, oid) == [("sent", None)]

    async def test_expired_unknown_and_mistyped_codes(self, shop: Shop) -> None:
        await shop.offer(coupon={"discount": "1 free muffin", "valid_minutes": 15})
        coupon = (await shop.walk_in()).json["offers"][0]["coupon"]
        code = coupon["code"]
        mistyped = code[:-1] + ("0" if code[-1] != "0" else "1")
        r = await shop.redeem(mistyped, key="a")
        assert (r.status, r.error_code) == (422, "code_mistyped"), r.body
        assert "check it against the shopper's screen" in r.json["error"]["message"]
        assert "code" in r.json["error"]["fields"]
        # Two neighbours swapped: the check symbol sees that too.
        swapped = code[:5] + code[6] + code[5] + code[7:]
        if swapped != code:
            assert (await shop.redeem(swapped, key="a2")).error_code == "code_mistyped"
        r = await shop.redeem("NOT-A-CODE", key="b")
        assert (r.status, r.error_code) == (404, "unknown_code")
        shop.clock.advance(minutes=16)
        r = await shop.redeem(code, key="c")
        assert (r.status, r.error_code) == (410, "coupon_expired")
        expired_at = dt.datetime.fromisoformat(r.json["error"]["details"]["expired_at"])
        assert expired_at == dt.datetime.fromisoformat(coupon["expires_at"])
        assert r.json["error"]["details"]["expired_at"].endswith("Z")
        message = r.json["error"]["message"]
        assert f"expired at {expired_at:%Y-%m-%d %H:%M} UTC, 1 minute ago" in message, message

    async def test_void_only_within_the_window_and_in_scope(self, shop: Shop) -> None:
        await shop.offer()
        code = (await shop.walk_in()).json["offers"][0]["coupon"]["code"]
        rid = (await shop.redeem(code, key="v1")).json["id"]
        r = await shop.api.post(f"/v1/redemptions/{rid}/void", token=shop.token("reviewer"))
        assert r.status == 403
        shop.clock.advance(minutes=31)
        r = await shop.api.post(f"/v1/redemptions/{rid}/void", token=shop.token("pos"))
        assert (r.status, r.error_code) == (409, "void_window_closed")
        r = await shop.api.post(
            f"/v1/redemptions/{rid}/void",
            token=shop.token("pos"),
            data=b"{",
            headers={"Content-Type": "application/json"},
        )
        assert r.status == 400

    async def test_redeem_needs_an_idempotency_key_and_a_store_in_scope(self, shop: Shop) -> None:
        r = await shop.api.post(
            "/v1/redemptions",
            token=shop.token("pos"),
            json={"code": shop.tenant.coupon_code, "store_id": str(shop.tenant.store_ids[0])},
        )
        assert (r.status, r.error_code) == (400, "idempotency_key_missing")
        r = await shop.redeem(shop.tenant.coupon_code, key="x", store=1, token="pos@store0")
        assert (r.status, r.error_code) == (403, "out_of_scope")

    @pytest.mark.parametrize(
        ("setup", "reason"),
        [
            ({"weather": {"conditions": ["rain"]}}, "weather_mismatch"),
            ({"audience": {"tiers": ["Gold"]}}, "audience_mismatch"),
            ({"schedule": {"weekly": {"sat": ["07:00-10:30"]}}}, "outside_schedule"),
            ({"holdout_pct": 100}, "holdout"),
        ],
    )
    async def test_suppressions_are_logged_with_their_reason(
        self, shop: Shop, conn: asyncpg.Connection, setup: dict[str, Any], reason: str
    ) -> None:
        oid = await shop.offer(**setup)
        r = await shop.walk_in()
        assert r.json["offers"] == []
        assert await decisions(conn, oid) == [("suppressed", reason)]
        log = await shop.api.get(
            f"/v1/logs/decisions?offer_id={oid}&reason={reason}", token=shop.token("reviewer")
        )
        assert [d["reason"] for d in log.json["items"]] == [reason]

    async def test_not_sent_while_the_store_is_closed_unless_the_offer_opts_out(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        # T0 is Monday 08:30 in Paris: before this shop opens at 09:00.
        store = shop.tenant.store_ids[0]
        hours = {"mon": ["09:00-19:00"]}
        r = await shop.api.patch(
            f"/v1/stores/{store}", token=shop.token("manager"), json={"opening_hours": hours}
        )
        assert r.status == 200, r.body
        usual = await shop.offer()
        later = await shop.offer(name="Come back later", priority=-1, fire_when_closed=True)
        got = await shop.api.get(f"/v1/offers/{later}", token=shop.token("manager"))
        assert got.json["fire_when_closed"] is True
        got = await shop.api.get(f"/v1/offers/{usual}", token=shop.token("manager"))
        assert got.json["fire_when_closed"] is False
        r = await shop.walk_in()
        assert [o["offer_id"] for o in r.json["offers"]] == [later]
        assert await decisions(conn, usual) == [("suppressed", "store_closed")]
        assert await decisions(conn, later) == [("sent", None)]
        # Open now: the usual offer wins the ping by priority.
        await shop.walk_out()
        shop.clock.set(dt.datetime(2026, 1, 12, 8, 5, tzinfo=dt.UTC))
        r = await shop.walk_in()
        assert [o["offer_id"] for o in r.json["offers"]] == [usual]
        log = await shop.api.get(
            f"/v1/logs/decisions?offer_id={usual}&reason=store_closed", token=shop.token("reviewer")
        )
        assert [d["reason"] for d in log.json["items"]] == ["store_closed"]
        report = await shop.api.get(f"/v1/reports/offers/{usual}", token=shop.token("reviewer"))
        funnel = report.json["funnel"]
        # A closed store is targeting: a candidate, not eligible.
        assert (funnel["candidates"], funnel["eligible"], funnel["sent"]) == (2, 1, 1)
        assert funnel["suppressed"]["by_reason"]["store_closed"] == 1
        # The opt-out can be switched off again.
        r = await shop.api.patch(
            f"/v1/offers/{later}", token=shop.token("manager"), json={"fire_when_closed": False}
        )
        assert (r.status, r.json["fire_when_closed"]) == (200, False)
        r = await shop.api.patch(
            f"/v1/offers/{later}", token=shop.token("manager"), json={"fire_when_closed": None}
        )
        assert (r.status, r.error_code) == (422, "validation_failed")

    async def test_a_change_of_opening_hours_tells_the_offer_books(
        self, conn: asyncpg.Connection, tenant_a: Tenant
    ) -> None:
        """Each process's book holds the stores' hours: changing them must reload it."""
        heard: asyncio.Queue[str] = asyncio.Queue()
        await conn.add_listener("offers_changed", lambda *args: heard.put_nowait(args[3]))
        await conn.execute(
            'UPDATE stores SET opening_hours = \'{"mon": ["09:00-19:00"]}\' WHERE id = $1',
            tenant_a.store_ids[0],
        )
        assert await asyncio.wait_for(heard.get(), 30) == str(tenant_a.merchant_id)

    async def test_never_at_3am_and_only_with_consent(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer()
        shop.clock.set(dt.datetime(2026, 1, 13, 2, 0, tzinfo=dt.UTC))  # 03:00 in Paris
        assert (await shop.walk_in()).json["offers"] == []
        await conn.execute("UPDATE shoppers SET marketing_consent = false")
        shop.clock.set(dt.datetime(2026, 1, 13, 9, 0, tzinfo=dt.UTC))
        await shop.walk_out()
        assert (await shop.walk_in()).json["offers"] == []
        assert await decisions(conn, oid) == [
            ("suppressed", "quiet_hours"),
            ("suppressed", "no_consent"),
        ]

    async def test_a_dwell_offer_waits_for_the_dwell(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer(trigger="dwell")
        assert (await shop.walk_in()).json["offers"] == []
        shop.clock.advance(seconds=200)
        assert (await shop.ping(0, 10)).json["offers"] == []
        shop.clock.advance(seconds=110)
        r = await shop.ping(10, 0)
        assert [t["event"] for t in r.json["transitions"]] == ["dwell"]
        assert [o["offer_id"] for o in r.json["offers"]] == [oid]
        assert await conn.fetchval(
            "SELECT trigger FROM decisions WHERE offer_id = $1", int(oid)
        ) == ("dwell")

    async def test_a_paused_offer_decides_nothing_until_resumed(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer()
        await shop.api.post(f"/v1/offers/{oid}/pause", token=shop.token("manager"))
        assert (await shop.walk_in()).json["offers"] == []
        assert await decisions(conn, oid) == []
        await shop.api.post(f"/v1/offers/{oid}/resume", token=shop.token("manager"))
        await shop.walk_out()
        for _ in range(50):  # the book is reloaded when the NOTIFY arrives
            await asyncio.sleep(0.02)
        assert [o["offer_id"] for o in (await shop.walk_in()).json["offers"]] == [oid]

    async def test_audience_tags_and_consent_set_through_the_api(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer(audience={"tags": ["coffee-lover"]})
        assert (await shop.walk_in()).json["offers"] == []
        r = await shop.api.patch(
            f"/v1/shoppers/{shop.tenant.shopper_id}",
            token=shop.token("manager"),
            json={"tags": ["coffee-lover", "coffee-lover", "early"]},
        )
        assert r.json["tags"] == ["coffee-lover", "early"]
        await shop.walk_out()
        assert [o["offer_id"] for o in (await shop.walk_in()).json["offers"]] == [oid]
        r = await shop.api.patch(
            "/v1/me", token=shop.token("shopper"), json={"marketing_consent": False}
        )
        assert r.json["marketing_consent"] is False
        await conn.execute("UPDATE decisions SET decided_at = decided_at - interval '2 days'")
        await shop.walk_out()
        assert (await shop.walk_in()).json["offers"] == []
        assert (await decisions(conn, oid))[-1] == ("suppressed", "no_consent")
        r = await shop.api.patch("/v1/me", token=shop.token("shopper"), json={"timezone": "Mars"})
        assert r.status == 422

    async def test_highest_priority_wins_and_the_rest_are_logged(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        low = await shop.offer(priority=1)
        high = await shop.offer(priority=5)
        r = await shop.walk_in()
        assert [o["offer_id"] for o in r.json["offers"]] == [high]
        assert await decisions(conn, high) == [("sent", None)]
        assert await decisions(conn, low) == [("suppressed", "lower_priority")]


class TestConcurrency:
    async def test_caps_hold_for_50_parallel_pings_on_two_replicas(
        self,
        shop: Shop,
        conn: asyncpg.Connection,
        database_url: str,
        tmp_path: Any,
        spec: SpecChecker,
    ) -> None:
        # 50 small fences of store 0 in a row, 60 m apart; one offer on the store with a
        # cap of 1 a day. Two app instances on one database receive 50 pings at once,
        # each entering a different fence.
        fences = []
        for i in range(50):
            lat, lon = offset(3000 + 60 * i, 0)
            fences.append(await add_fence(conn, shop.tenant, circle_feature(lat, lon, 10)))
        store = str(shop.tenant.store_ids[0])
        r = await shop.api.post(
            "/v1/offers",
            token=shop.token("manager"),
            json=offer_body({"store_ids": [store]}, caps=[{"max": 1, "hours": 24}]),
        )
        oid = r.json["id"]
        other = app_mod.create_app(make_settings(tmp_path), db_url=database_url, clock_=shop.clock)
        async with test_utils.TestClient(test_utils.TestServer(other)) as client2:
            replicas = [shop.api, ApiClient(client2, spec)]
            start = shop.clock.now() - dt.timedelta(seconds=200)

            async def one(i: int) -> Reply:
                lat, lon = offset(3000 + 60 * i, 0)
                body = {
                    "lat": lat,
                    "lon": lon,
                    "accuracy_m": 5,
                    # 2 s per 60 m: any two of these pings imply 30 m/s, plausible travel.
                    "ts": (start + dt.timedelta(seconds=2 * i)).isoformat(),
                }
                return await replicas[i % 2].post(
                    "/v1/pings", token=shop.token("shopper"), json=body
                )

            replies = await asyncio.gather(*(one(i) for i in range(50)))
        assert all(r.status == 200 for r in replies), [r.body for r in replies if r.status != 200]
        sent = [o for r in replies for o in r.json["offers"]]
        assert len(sent) == 1
        rows = await decisions(conn, oid)
        assert rows.count(("sent", None)) == 1
        assert len(rows) > 1 and set(rows[1:]) <= {
            ("sent", None),
            ("suppressed", "frequency_capped"),
        }
        assert (
            await conn.fetchval("SELECT count(*) FROM coupons WHERE offer_id = $1", int(oid)) == 1
        )

    async def test_budget_holds_across_shoppers_and_replicas(
        self,
        shop: Shop,
        conn: asyncpg.Connection,
        database_url: str,
        tmp_path: Any,
        spec: SpecChecker,
    ) -> None:
        oid = await shop.offer(budget={"max_issued": 3})
        tokens = [await enrol(conn, shop.tenant, f"s{i}") for i in range(12)]
        other = app_mod.create_app(make_settings(tmp_path), db_url=database_url, clock_=shop.clock)
        async with test_utils.TestClient(test_utils.TestServer(other)) as client2:
            replicas = [shop.api, ApiClient(client2, spec)]
            for i, token in enumerate(tokens):
                lat, lon = offset(-400, 0)
                body = {"lat": lat, "lon": lon, "accuracy_m": 10, "ts": T0.isoformat()}
                await replicas[i % 2].post("/v1/pings", token=token, json=body)
            shop.clock.advance(seconds=20)
            inside = {"lat": LAT, "lon": LON, "accuracy_m": 10, "ts": shop.clock.now().isoformat()}
            replies = await asyncio.gather(
                *(
                    replicas[i % 2].post("/v1/pings", token=t, json=inside)
                    for i, t in enumerate(tokens)
                )
            )
        sent = [o for r in replies for o in r.json["offers"]]
        assert len(sent) == 3
        rows = await decisions(conn, oid)
        assert sorted(rows, key=str) == sorted(
            [("sent", None)] * 3 + [("suppressed", "budget_exhausted")] * 9, key=str
        )
        r = await shop.api.get(f"/v1/offers/{oid}", token=shop.token("reviewer"))
        assert r.json["budget"]["issued"] == 3

    async def test_one_of_100_parallel_redemptions_wins(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        await shop.offer()
        code = (await shop.walk_in()).json["offers"][0]["coupon"]["code"]
        replies = await asyncio.gather(*(shop.redeem(code, key=f"k{i}") for i in range(100)))
        statuses = sorted(r.status for r in replies)
        assert statuses == [201] + [409] * 99
        assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE voided_at IS NULL") == 2

    async def test_redemption_budget_is_atomic(self, shop: Shop, conn: asyncpg.Connection) -> None:
        oid = await shop.offer(budget={"max_redeemed": 2})
        tokens = [await enrol(conn, shop.tenant, f"r{i}") for i in range(5)]
        found = []
        for token in tokens:
            await shop.walk_out(token=token)
            shop.clock.advance(seconds=20)
            r = await shop.ping(0, 0, token=token)
            found.append(r.json["offers"][0]["coupon"]["code"])
        replies = await asyncio.gather(*(shop.redeem(c, key=f"b{i}") for i, c in enumerate(found)))
        assert sorted(r.status for r in replies) == [201, 201, 409, 409, 409]
        assert {r.error_code for r in replies if r.status == 409} == {"budget_exhausted"}
        assert await conn.fetchval("SELECT redeemed_count FROM offers WHERE id = $1", int(oid)) == 2

    async def test_redemption_attempts_are_rate_limited_per_key(
        self, database_url: str, tenant_a: Tenant, tmp_path: Any, spec: SpecChecker
    ) -> None:
        settings = make_settings(tmp_path, redeem_rate=1, redeem_burst=3)
        application = app_mod.create_app(settings, db_url=database_url)
        async with test_utils.TestClient(test_utils.TestServer(application)) as client:
            api = ApiClient(client, spec)
            statuses = []
            for i in range(5):
                r = await _attempt(api, tenant_a, f"GUESS{i}", key=f"g{i}")
                statuses.append(r.status)
            assert statuses == [404, 404, 404, 429, 429]
            assert int(r.headers["Retry-After"]) >= 1

    async def test_mistyped_codes_count_against_the_rate_limit(
        self, database_url: str, tenant_a: Tenant, tmp_path: Any, spec: SpecChecker
    ) -> None:
        """A typo is answered without a lookup, but still costs the key an attempt: the
        check symbol must not become a free oracle for guessing."""
        settings = make_settings(tmp_path, redeem_rate=1, redeem_burst=3)
        application = app_mod.create_app(settings, db_url=database_url)
        code = codes.normalize(tenant_a.coupon_code)
        assert code is not None
        wrong = "0" if code[-1] != "0" else "1"
        async with test_utils.TestClient(test_utils.TestServer(application)) as client:
            api = ApiClient(client, spec)
            answers = []
            for i in range(4):
                r = await _attempt(api, tenant_a, code[:-1] + wrong, key=f"t{i}")
                answers.append((r.status, r.error_code))
            assert answers == [(422, "code_mistyped")] * 3 + [(429, "rate_limited")]
            # The right code from the same key waits its turn too.
            assert (await _attempt(api, tenant_a, code, key="right")).status == 429


async def _attempt(api: ApiClient, tenant: Tenant, code: str, *, key: str) -> Reply:
    return await api.post(
        "/v1/redemptions",
        token=tenant.tokens["pos"],
        json={"code": code, "store_id": str(tenant.store_ids[0])},
        headers={"Idempotency-Key": key},
    )


class TestAtomicity:
    async def test_a_send_killed_mid_commit_leaves_nothing_behind(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer()
        await shop.ping(-400, 0)
        # The ping log writes the shopper's row off the request path: let it land first, so
        # the version read here is the one the killed commit must leave.
        await shop.app[PINGS].log.flush()
        version = await conn.fetchval("SELECT version FROM shopper_geo")
        # Hold the commit at its last write, then kill its database session.
        await conn.execute(
            "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$; "
            "CREATE TRIGGER stall BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION stall()"
        )
        shop.clock.advance(seconds=20)
        lat, lon = offset(0, 0)
        body = {"lat": lat, "lon": lon, "accuracy_m": 10, "ts": shop.clock.now().isoformat()}
        pending = asyncio.create_task(
            shop.api.post("/v1/pings", token=shop.token("shopper"), json=body)
        )
        for _ in range(200):
            pid = await conn.fetchval(
                # This database only: other xdist workers may share the server.
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                "AND datname = current_database() LIMIT 1"
            )
            if pid:
                break
            await asyncio.sleep(0.05)
        assert pid, "the commit never reached the outbox insert"
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
        r = await pending
        assert r.status == 503, r.body
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM decisions WHERE offer_id = $1) AS d, "
            "(SELECT count(*) FROM coupons WHERE offer_id = $1) AS c, "
            "(SELECT count(*) FROM deliveries WHERE offer_id = $1) AS dl, "
            "(SELECT count(*) FROM geofence_events) AS ev, "
            "(SELECT version FROM shopper_geo) AS v",
            int(oid),
        )
        assert dict(counts) == {"d": 0, "c": 0, "dl": 0, "ev": 0, "v": version}
        # The shopper's next ping gets what the killed one should have.
        await conn.execute("DROP TRIGGER stall ON outbox")
        shop.clock.advance(seconds=5)
        r = await shop.ping(0, 0)
        assert [o["offer_id"] for o in r.json["offers"]] == [oid]
