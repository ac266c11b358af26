"""The decision preview: what a ping entering at the shop's door would decide, with the same
reason codes as a real ping, and nothing written."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import pytest

from gateway.accounts import tenancy
from gateway.pingpath import offering
from gateway.pingpath.geoindex import GEO_INDEX
from geo import geojson
from geo import store as geo_store
from offers import models as offer_models
from tests.offers import test_decide
from tests.support.fences import LAT, LON, circle_feature, offset
from tests.support.shop import COLD, T0, Shop

WARM = {"condition": "clear", "temp_c": 21.0}
GOLD = {"tier": "gold", "points": 120, "tags": ["vip"]}
PLAIN: dict[str, Any] = {}
DOOR = offset(0, 0)


def situation(at: dt.datetime, weather: Any = COLD, shopper: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"lat": DOOR[0], "lon": DOOR[1], "accuracy_m": 10, "at": at.isoformat()}
    if weather is not None:
        body["weather"] = weather
    if shopper is not None:
        body["shopper"] = shopper
    return body


async def preview(shop: Shop, body: dict[str, Any], role: str = "manager") -> dict[str, Any]:
    r = await shop.api.post("/v1/offers/preview", token=shop.token(role), json=body)
    assert r.status == 200, r.body
    answer: dict[str, Any] = r.json
    return answer


def reasons(answer: dict[str, Any]) -> dict[str, str | None]:
    return {o["offer_id"]: o["reason"] for o in answer["offers"]}


class TestPreview:
    async def test_cold_morning_at_the_door_fires_the_coupon(self, shop: Shop) -> None:
        oid = await shop.offer(weather={"max_temp_c": 10})
        answer = await preview(shop, situation(T0))
        assert answer["at"] == T0.isoformat()
        assert answer["status"] == "accepted"
        assert [(f["geofence_id"], f["inside"], f["enters"]) for f in answer["fences"]] == [
            (str(shop.fence), True, True)
        ]
        [offer] = answer["offers"]
        assert offer["offer_id"] == oid
        assert (offer["fires"], offer["reason"]) == (True, None)
        assert offer["title"] == "20% off a hot coffee"
        assert offer["store_id"] == str(shop.tenant.store_ids[0])
        assert offer["geofence_id"] == str(shop.fence)

    async def test_at_3am_it_is_quiet_hours(self, shop: Shop) -> None:
        oid = await shop.offer()
        three_am = dt.datetime(2026, 1, 13, 2, 0, tzinfo=dt.UTC)  # 03:00 in Paris
        answer = await preview(shop, situation(three_am))
        assert reasons(answer) == {oid: "quiet_hours"}
        assert answer["offers"][0]["fires"] is False

    async def test_before_the_store_opens_it_says_store_closed(self, shop: Shop) -> None:
        store = shop.tenant.store_ids[0]
        r = await shop.api.patch(
            f"/v1/stores/{store}",
            token=shop.token("manager"),
            json={"opening_hours": {"mon": ["09:00-19:00"]}},
        )
        assert r.status == 200, r.body
        usual = await shop.offer()
        anyway = await shop.offer(name="Come back later", priority=-1, fire_when_closed=True)
        # T0 is Monday 08:30 in Paris, half an hour before opening.
        answer = await preview(shop, situation(T0))
        assert reasons(answer) == {anyway: None, usual: "store_closed"}
        nine = T0 + dt.timedelta(minutes=30)
        assert reasons(await preview(shop, situation(nine))) == {
            usual: None,
            anyway: "lower_priority",
        }

    async def test_a_cold_weather_offer_in_warm_weather_says_weather(self, shop: Shop) -> None:
        oid = await shop.offer(weather={"max_temp_c": 10})
        assert reasons(await preview(shop, situation(T0, WARM))) == {oid: "weather_mismatch"}
        # and without any weather, as a ping that does not know it
        assert reasons(await preview(shop, situation(T0, None))) == {oid: "weather_mismatch"}

    async def test_a_paused_offer_is_not_listed(self, shop: Shop) -> None:
        oid = await shop.offer()
        paused = await shop.offer(name="Paused")
        r = await shop.api.post(f"/v1/offers/{paused}/pause", token=shop.token("manager"))
        assert r.status == 200
        assert reasons(await preview(shop, situation(T0))) == {oid: None}

    async def test_away_from_every_fence_nothing_is_considered(self, shop: Shop) -> None:
        await shop.offer()
        lat, lon = offset(-400, 0)
        answer = await preview(shop, {"lat": lat, "lon": lon, "at": T0.isoformat()})
        assert (answer["fences"], answer["offers"]) == ([], [])

    async def test_a_ping_too_inaccurate_is_ignored(self, shop: Shop) -> None:
        await shop.offer()
        body = {**situation(T0), "accuracy_m": 5000}
        answer = await preview(shop, body)
        assert (answer["status"], answer["reason"], answer["offers"]) == (
            "ignored",
            "poor_accuracy",
            [],
        )

    async def test_the_default_time_is_the_clock(self, shop: Shop) -> None:
        oid = await shop.offer()
        answer = await preview(shop, {"lat": DOOR[0], "lon": DOOR[1]})
        assert answer["at"] == T0.isoformat()
        assert reasons(answer) == {oid: None}

    async def test_holdout_is_not_drawn_but_reported(self, shop: Shop) -> None:
        oid = await shop.offer(holdout_pct=100)
        [offer] = (await preview(shop, situation(T0)))["offers"]
        assert (offer["offer_id"], offer["fires"], offer["holdout_pct"]) == (oid, True, 100.0)

    async def test_a_dwell_offer_is_previewed_with_trigger_dwell(self, shop: Shop) -> None:
        enter = await shop.offer()
        dwell = await shop.offer(name="Stay a while", trigger="dwell")
        assert reasons(await preview(shop, situation(T0))) == {enter: None}
        body = {**situation(T0), "trigger": "dwell"}
        assert reasons(await preview(shop, body)) == {dwell: None}

    async def test_budgets_are_counted_as_they_are_now(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        oid = await shop.offer(budget={"max_issued": 5})
        assert reasons(await preview(shop, situation(T0))) == {oid: None}
        # A counter bump does not reload the cached offers: the preview reads it anyway.
        await conn.execute("UPDATE offers SET issued_count = 5 WHERE id = $1", int(oid))
        assert reasons(await preview(shop, situation(T0))) == {oid: "budget_exhausted"}

    async def test_a_shopper_who_refused_marketing(self, shop: Shop) -> None:
        oid = await shop.offer()
        body = situation(T0, shopper={"marketing_consent": False})
        assert reasons(await preview(shop, body)) == {oid: "no_consent"}


# Offers with one rule each, so that each situation below fails some and passes others.
OFFERS: dict[str, dict[str, Any]] = {
    "cold": {"weather": {"max_temp_c": 10}, "priority": 5},
    "rain": {"weather": {"conditions": ["rain"]}},
    "gold": {"audience": {"tiers": ["gold"]}, "priority": 3},
    "points": {"audience": {"min_points": 100}, "priority": 2},
    "no-vip": {"audience": {"exclude_tags": ["vip"]}},
    "plain": {"priority": 1},
    "saturday": {"schedule": {"weekly": {"sat": ["07:00-12:00"]}}},
    "spent": {"budget": {"max_issued": 1}},
    "capped": {"caps": [{"max": 1, "days": 1}], "priority": 9},
}
SATURDAY = dt.datetime(2026, 1, 17, 9, 0, tzinfo=dt.UTC)  # 10:00 in Paris
SITUATIONS = [
    pytest.param(T0, COLD, GOLD, id="cold-morning-gold"),
    pytest.param(T0, WARM, GOLD, id="warm-morning-gold"),
    pytest.param(T0, None, PLAIN, id="no-weather-nobody"),
    pytest.param(dt.datetime(2026, 1, 13, 2, 0, tzinfo=dt.UTC), COLD, GOLD, id="3am"),
    pytest.param(SATURDAY, {"condition": "rain", "temp_c": 6.0}, {"points": 40}, id="sat-rain"),
    pytest.param(T0, COLD, {"tier": "silver", "points": 500, "tags": ["student"]}, id="silver"),
]


@pytest.mark.parametrize(("at", "weather", "profile"), SITUATIONS)
async def test_the_preview_says_what_a_real_ping_records(
    shop: Shop, conn: asyncpg.Connection, at: dt.datetime, weather: Any, profile: dict[str, Any]
) -> None:
    """The key property: for a fresh shopper with the profile, walking in at that time and
    weather, the decisions table holds the reasons the preview gave, offer by offer."""
    ids = {name: await shop.offer(name=name, **rules) for name, rules in OFFERS.items()}
    # The budget is spent by a counter the cached offers do not see.
    await conn.execute("UPDATE offers SET issued_count = 1 WHERE id = $1", int(ids["spent"]))
    answer = await preview(shop, situation(at, weather, profile))
    assert len(answer["offers"]) == len(OFFERS)
    assert sum(o["fires"] for o in answer["offers"]) <= 1

    shopper, token = await tenancy.enrol_shopper(
        conn,
        merchant_id=shop.tenant.merchant_id,
        name="Fresh",
        email=None,
        marketing_consent=True,
        timezone=None,
    )
    await conn.execute(
        "UPDATE shoppers SET tier = $2, points = $3, tags = $4 WHERE id = $1",
        shopper.id,
        profile.get("tier"),
        profile.get("points", 0),
        profile.get("tags", []),
    )
    shop.clock.set(at - dt.timedelta(seconds=20))  # the walk's second ping enters at `at`
    walked = await shop.walk_in(token=token, weather=weather)
    rows = await conn.fetch(
        "SELECT offer_id, reason FROM decisions WHERE shopper_id = $1", shopper.id
    )
    recorded = {str(r["offer_id"]): r["reason"] for r in rows}
    assert reasons(answer) == recorded
    fired = [o["offer_id"] for o in answer["offers"] if o["fires"]]
    assert [o["offer_id"] for o in walked.json["offers"]] == fired


TABLES = (
    "decisions",
    "coupons",
    "deliveries",
    "outbox",
    "pings",
    "ping_spools",
    "shopper_geo",
    "geofence_events",
    "offer_stats_delta",
    "offers",
    "shoppers",
)


async def _snapshot(conn: asyncpg.Connection) -> dict[str, str]:
    out = {}
    for table in TABLES:
        out[table] = await conn.fetchval(
            f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t"
        )
    return out


async def test_the_preview_writes_nothing(shop: Shop, conn: asyncpg.Connection) -> None:
    await shop.offer(budget={"max_issued": 3}, caps=[{"max": 1, "days": 1}])
    await shop.offer(name="dwell", trigger="dwell")
    await preview(shop, situation(T0))  # the offers' book is loaded: a warm path
    before = await _snapshot(conn)
    for role in ("admin", "manager", "reviewer"):
        for trigger in ("enter", "dwell"):
            answer = await preview(shop, {**situation(T0), "trigger": trigger}, role=role)
            assert any(o["fires"] for o in answer["offers"])
    assert await _snapshot(conn) == before


class TestAccess:
    @pytest.mark.parametrize("role", ["shopper", "pos", "app"])
    async def test_only_staff_may_preview(self, shop: Shop, role: str) -> None:
        r = await shop.api.post("/v1/offers/preview", token=shop.token(role), json=situation(T0))
        assert (r.status, r.error_code) == (403, "wrong_role")

    async def test_a_store_scoped_manager_sees_only_its_stores(
        self, shop: Shop, conn: asyncpg.Connection
    ) -> None:
        """A fence of store 1 overlapping store 0's door: the store-0 key sees neither it
        nor its offer, the merchant-wide key sees both."""
        ours = await shop.offer()
        neighbour = await geo_store.insert_geofence(
            conn,
            merchant_id=shop.tenant.merchant_id,
            store_id=shop.tenant.store_ids[1],
            feature=geojson.parse_feature(circle_feature(LAT, LON, 60, "neighbour")),
        )
        other_fence = neighbour.id
        await shop.app[GEO_INDEX].rebuild()
        r = await shop.api.post(
            "/v1/offers",
            token=shop.token("manager"),
            json={
                "name": "Theirs",
                "title": "Next door",
                "body": "b",
                "trigger": "enter",
                "channels": ["inbox"],
                "geofence_ids": [str(other_fence)],
                "coupon": {"discount": "5%", "valid_minutes": 30},
            },
        )
        assert r.status == 201, r.body
        theirs = r.json["id"]
        wide = await preview(shop, situation(T0))
        assert set(reasons(wide)) == {ours, theirs}
        assert {f["geofence_id"] for f in wide["fences"]} == {str(shop.fence), str(other_fence)}
        scoped = await preview(shop, situation(T0), role="manager@store0")
        assert set(reasons(scoped)) == {ours}
        assert {f["geofence_id"] for f in scoped["fences"]} == {str(shop.fence)}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lat": None}, "lat"),
        ({"lon": None}, "lon"),
        ({"lat": 91}, "lat"),
        ({"lon": -181}, "lon"),
        ({"lat": "48.86"}, "lat"),
        ({"at": "yesterday"}, "at"),
        ({"at": "2026-01-12T07:30:00"}, "at"),  # no offset: which time zone?
        ({"weather": {"condition": "sunny-ish", "temp_c": 4}}, "weather.condition"),
        ({"weather": {"condition": "clear", "temp_c": "warm"}}, "weather.temp_c"),
        ({"shopper": {"points": -1}}, "shopper.points"),
        ({"shopper": {"tags": "vip"}}, "shopper.tags"),
        ({"shopper": {"timezone": "Mars/Olympus"}}, "shopper.timezone"),
        ({"accuracy_m": 0}, "accuracy_m"),
        ({"trigger": "exit"}, "trigger"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_input_answers_422_with_the_field(
    shop: Shop, change: dict[str, Any], field: str
) -> None:
    body = {**situation(T0, shopper=GOLD), **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = await shop.api.post("/v1/offers/preview", token=shop.token("manager"), json=body)
    assert r.status == 422, r.body
    assert r.error_code == "validation_failed"
    assert field in r.json["error"]["fields"], r.json


async def test_an_offer_stopped_since_the_book_was_loaded_is_decided_once() -> None:
    """The shared decide loop: a reservation refused for an offer without a budget (it was
    paused meanwhile) drops it, and the next offer goes out instead of the loop spinning."""
    stopped, live = test_decide.offer(1, priority=9), test_decide.offer(2, priority=8)
    moment = offering.Moment(
        context=test_decide.COLD, candidates=[test_decide.cand(stopped), test_decide.cand(live)]
    )
    book = offering.Book.build([stopped, live], {}, test_decide.NO_QUIET)
    tried: list[int] = []

    async def reserve(offer: offer_models.Offer) -> bool:
        tried.append(offer.id)
        return offer.id != stopped.id

    decisions, _ = await offering.decide_moment(moment, test_decide.shopper(), book, reserve)
    assert tried == [1, 2]
    assert [(d.offer_id, d.send) for d in decisions] == [(2, True)]
