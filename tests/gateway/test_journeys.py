"""Lifecycle journeys end to end: defined through the API, found by the scheduler on time
and behaviour, decided by offers.decide(), delivered through the outbox and inbox, fired
once per occurrence, and reported with their holdout uplift."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from gateway.jobs import journeys as scheduler
from tests.support.shop import T0, Shop, enrol

MINUTE = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)


async def journey_offer(shop: Shop, **extra: Any) -> str:
    body = {
        "name": "Come back",
        "title": "We miss you: a free croissant",
        "body": "Valid a week at any of our cafés",
        "trigger": "journey",
        "store_ids": [str(s) for s in shop.tenant.store_ids],
        "channels": ["inbox"],
        "coupon": {"discount": "free croissant", "valid_minutes": 7 * 24 * 60},
        **extra,
    }
    r = await shop.api.post("/v1/offers", token=shop.token("manager"), json=body)
    assert r.status == 201, r.body
    return str(r.json["id"])


async def journey(shop: Shop, kind: str, offer_id: str, **params: Any) -> dict[str, Any]:
    body = {"name": f"{kind} journey", "kind": kind, "offer_id": offer_id, **params}
    r = await shop.api.post("/v1/journeys", token=shop.token("manager"), json=body)
    assert r.status == 201, r.body
    return dict(r.json)


async def runs(conn: asyncpg.Connection, journey_id: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT shopper_id, occurrence, state, outcome, decision_id FROM journey_runs "
            "WHERE journey_id = $1 ORDER BY id",
            int(journey_id),
        )
    )


async def sent_count(conn: asyncpg.Connection, offer_id: str) -> tuple[int, int, int]:
    """Decisions sent, coupons and deliveries (the outbox's rows; the inbox reads them)."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM decisions WHERE offer_id = $1 AND outcome = 'sent'),"
        " (SELECT count(*) FROM coupons WHERE offer_id = $1),"
        " (SELECT count(*) FROM deliveries WHERE offer_id = $1)",
        int(offer_id),
    )
    assert row is not None
    return (row[0], row[1], row[2])


async def new_shopper(conn: asyncpg.Connection, shop: Shop, name: str) -> tuple[int, str]:
    token = await enrol(conn, shop.tenant, name)
    shopper_id = await conn.fetchval("SELECT max(id) FROM shoppers")
    return shopper_id, token


async def test_welcome_fires_once_after_its_delay_and_lands_in_the_inbox(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    offer = await journey_offer(
        shop, title="Welcome: a coffee on us", channels=["inbox", "webpush"]
    )
    j = await journey(shop, "welcome", offer, delay_minutes=30)
    shopper, token = await new_shopper(conn, shop, "Nina")
    await conn.execute("UPDATE shoppers SET created_at = $2 WHERE id = $1", shopper, T0 + MINUTE)
    assert (await scheduler.run(conn, T0 + 20 * MINUTE)).outcomes == {}
    done = await scheduler.run(conn, T0 + 32 * MINUTE)
    assert done.found == 1 and done.outcomes == {"sent": 1}
    assert await sent_count(conn, offer) == (1, 1, 1)
    pushes = await conn.fetchval(
        "SELECT count(*) FROM outbox o JOIN deliveries d ON d.id = o.delivery_id "
        "WHERE d.offer_id = $1 AND o.channel = 'webpush'",
        int(offer),
    )
    assert pushes == 1
    decision = await conn.fetchrow(
        "SELECT trigger, geofence_id, store_id FROM decisions WHERE offer_id = $1", int(offer)
    )
    assert decision is not None
    assert (decision["trigger"], decision["geofence_id"]) == ("journey", None)
    assert decision["store_id"] == min(shop.tenant.store_ids)
    inbox = await shop.api.get("/v1/inbox", token=token)
    assert [i["offer_id"] for i in inbox.json["items"]] == [offer], inbox.body

    # A restart that lost the watermark, and later rounds: nothing fires twice.
    await conn.execute("UPDATE journeys SET scanned_until = $2 WHERE id = $1", int(j["id"]), T0)
    again = await scheduler.run(conn, T0 + 40 * MINUTE)
    assert again.found == 0 and again.outcomes == {}
    assert await sent_count(conn, offer) == (1, 1, 1)
    assert [(r["state"], r["outcome"]) for r in await runs(conn, j["id"])] == [("done", "sent")]


async def test_a_new_journey_never_reaches_back_and_consent_is_respected(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    old, _ = await new_shopper(conn, shop, "Old")
    await conn.execute("UPDATE shoppers SET created_at = $2 WHERE id = $1", old, T0 - MINUTE)
    offer = await journey_offer(shop)
    j = await journey(shop, "welcome", offer, delay_minutes=0)
    shy, _ = await new_shopper(conn, shop, "Shy")
    await conn.execute(
        "UPDATE shoppers SET created_at = $2, marketing_consent = false WHERE id = $1",
        shy,
        T0 + MINUTE,
    )
    done = await scheduler.run(conn, T0 + 2 * MINUTE)
    assert done.outcomes == {"no_consent": 1}
    assert [(r["shopper_id"], r["outcome"]) for r in await runs(conn, j["id"])] == [
        (shy, "no_consent")
    ]
    assert await sent_count(conn, offer) == (0, 0, 0)


async def test_winback_follows_the_last_visit_and_a_return_supersedes_it(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    offer = await journey_offer(shop)
    j = await journey(shop, "winback", offer, inactive_days=30)
    # The fixture enrolled the shopper at the real time, after this shop's clock.
    await conn.execute("UPDATE shopper_activity SET last_active_at = $1", T0 - DAY)
    await shop.walk_in()  # a geofence entry is activity
    seen = await conn.fetchval(
        "SELECT last_active_at FROM shopper_activity WHERE shopper_id = $1", shop.tenant.shopper_id
    )
    assert seen == shop.clock.now()
    lapse = seen + 30 * DAY
    assert (await scheduler.run(conn, lapse - MINUTE)).outcomes == {}
    assert (await scheduler.run(conn, lapse + MINUTE)).outcomes == {"sent": 1}
    assert (await scheduler.run(conn, lapse + 2 * DAY)).outcomes == {}
    assert await sent_count(conn, offer) == (1, 1, 1)

    # The shopper comes back, lapses again: a new occurrence. Found during quiet hours
    # (22:00 in Paris) it waits for the morning; a visit meanwhile cancels it.
    second = (lapse + 3 * DAY).replace(hour=21, minute=0)
    await conn.execute(
        "UPDATE shopper_activity SET last_active_at = $2 WHERE shopper_id = $1",
        shop.tenant.shopper_id,
        second - 30 * DAY,
    )
    assert (await scheduler.run(conn, second + MINUTE)).outcomes == {"deferred": 1}
    await conn.execute(
        "INSERT INTO conversions (merchant_id, shopper_id, store_id, source, at) "
        "VALUES ($1, $2, $3, 'purchase', $4)",
        shop.tenant.merchant_id,
        shop.tenant.shopper_id,
        shop.tenant.store_ids[0],
        second + 2 * MINUTE,
    )
    assert (await scheduler.run(conn, second + 12 * 60 * MINUTE)).outcomes == {"superseded": 1}
    assert [r["outcome"] for r in await runs(conn, j["id"])] == ["sent", "superseded"]
    assert await sent_count(conn, offer) == (1, 1, 1)


async def test_tier_up_fires_on_reaching_the_tier_from_below_only(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    offer = await journey_offer(shop, title="Welcome to Gold")
    j = await journey(shop, "tier_up", offer, tier="Gold")
    fallen, _ = await new_shopper(conn, shop, "Fallen")
    changes = [
        (shop.tenant.shopper_id, "Silver", "Gold"),
        (fallen, "Platinum", "Gold"),
        (shop.tenant.shopper_id, "Gold", "Silver"),
        (shop.tenant.shopper_id, "Silver", "Gold"),
    ]
    for k, (shopper, before, after) in enumerate(changes):
        await conn.execute(
            "INSERT INTO tier_changes (merchant_id, shopper_id, from_tier, to_tier, at) "
            "VALUES ($1, $2, $3, $4, $5)",
            shop.tenant.merchant_id,
            shopper,
            before,
            after,
            T0 + (k + 1) * MINUTE,
        )
    assert (await scheduler.run(conn, T0 + 10 * MINUTE)).outcomes == {"sent": 1}
    assert [(r["shopper_id"], r["occurrence"]) for r in await runs(conn, j["id"])] == [
        (shop.tenant.shopper_id, "tier:Gold")
    ]


async def test_birthday_at_nine_local_deferred_by_quiet_hours_once_a_year(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    me = shop.token("shopper")
    for bad in ("2999-01-01", "1990-02-30", "14/01/1990", 19900114):
        r = await shop.api.patch("/v1/me", token=me, json={"birthday": bad})
        assert (r.status, list(r.json["error"]["fields"])) == (422, ["birthday"]), r.body
    r = await shop.api.patch(
        "/v1/me", token=me, json={"birthday": "1990-01-14", "timezone": "Europe/Paris"}
    )
    assert (r.status, r.json["birthday"]) == (200, "1990-01-14")
    assert (await shop.api.get("/v1/me", token=me)).json["birthday"] == "1990-01-14"
    r = await shop.api.put(
        "/v1/program",
        token=shop.token("manager"),
        json={"daily_offer_cap": 3, "quiet_hours": {"start": "21:00", "end": "09:30"}},
    )
    assert r.status == 200, r.body
    offer = await journey_offer(shop, title="Happy birthday")
    j = await journey(shop, "birthday", offer)
    nine = dt.datetime(2026, 1, 14, 8, 0, tzinfo=dt.UTC)  # 09:00 in Paris
    assert (await scheduler.run(conn, nine - MINUTE)).outcomes == {}
    assert (await scheduler.run(conn, nine + MINUTE)).outcomes == {"deferred": 1}
    due = await conn.fetchval("SELECT due_at FROM journey_runs WHERE journey_id = $1", int(j["id"]))
    assert due == nine + 30 * MINUTE
    assert (await scheduler.run(conn, nine + 29 * MINUTE)).outcomes == {}
    assert (await scheduler.run(conn, nine + 31 * MINUTE)).outcomes == {"sent": 1}
    assert (await scheduler.run(conn, nine + 5 * DAY)).outcomes == {}
    assert [r["occurrence"] for r in await runs(conn, j["id"])] == ["birthday:2026"]


async def test_points_about_to_expire_remind_only_of_unused_points(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        "UPDATE merchants SET points_expire_days = 30 WHERE id = $1", shop.tenant.merchant_id
    )
    offer = await journey_offer(shop, title="Your points expire in a week")
    j = await journey(shop, "points_expiring", offer, days_before=7)
    spender, _ = await new_shopper(conn, shop, "Spender")
    entries = [
        (shop.tenant.shopper_id, "earn", 120, T0 + MINUTE),
        (spender, "earn", 50, T0 + MINUTE),
        (spender, "spend", -50, T0 + 2 * MINUTE),
    ]
    for shopper, kind, points, at in entries:
        await conn.execute(
            "INSERT INTO points_ledger (merchant_id, shopper_id, kind, points, reason, created_at)"
            " VALUES ($1, $2, $3, $4, 'test', $5)",
            shop.tenant.merchant_id,
            shopper,
            kind,
            points,
            at,
        )
    remind = T0 + MINUTE + 23 * DAY
    assert (await scheduler.run(conn, remind - MINUTE)).outcomes == {}
    assert (await scheduler.run(conn, remind + MINUTE)).outcomes == {"sent": 1}
    expiry = (T0 + MINUTE + 30 * DAY).date().isoformat()
    assert [(r["shopper_id"], r["occurrence"]) for r in await runs(conn, j["id"])] == [
        (shop.tenant.shopper_id, f"expiry:{expiry}")
    ]


async def test_journeys_are_validated_owned_by_one_journey_and_scoped(
    shop: Shop, conn: asyncpg.Connection, tenant_b: Any
) -> None:
    manager = shop.token("manager")
    enter_offer = await shop.offer()
    offer = await journey_offer(shop)
    bad = [
        ({"kind": "welcome", "offer_id": enter_offer}, "offer_id"),
        ({"kind": "welcome", "offer_id": "999999999"}, "offer_id"),
        ({"kind": "winback", "offer_id": offer}, "inactive_days"),
        ({"kind": "winback", "offer_id": offer, "inactive_days": 30, "tier": "Gold"}, "tier"),
        ({"kind": "tier_up", "offer_id": offer, "tier": ""}, "tier"),
        ({"kind": "yearly", "offer_id": offer}, "kind"),
        ({"kind": "birthday", "offer_id": offer, "days_before": 400}, "days_before"),
    ]
    for body, field in bad:
        r = await shop.api.post("/v1/journeys", token=manager, json={"name": "x", **body})
        assert (r.status, list(r.json["error"]["fields"])) == (422, [field]), (body, r.body)
    assert await conn.fetchval("SELECT count(*) FROM journeys") == 0
    created = await journey(shop, "welcome", offer)
    assert created["delay_minutes"] == 60 and created["status"] == "active"
    r = await shop.api.post(
        "/v1/journeys", token=manager, json={"name": "again", "kind": "birthday", "offer_id": offer}
    )
    assert (r.status, r.error_code) == (409, "offer_taken")
    path = f"/v1/journeys/{created['id']}"
    r = await shop.api.patch(path, token=manager, json={"inactive_days": 3})
    assert (r.status, list(r.json["error"]["fields"])) == (422, ["inactive_days"])
    r = await shop.api.patch(path, token=manager, json={"delay_minutes": 5, "status": "paused"})
    assert (r.status, r.json["delay_minutes"], r.json["status"]) == (200, 5, "paused")
    r = await shop.api.get("/v1/journeys", token=shop.token("reviewer"))
    assert [j["id"] for j in r.json["items"]] == [created["id"]]
    r = await shop.api.get("/v1/journeys", token=shop.token("manager@store0"))
    assert (r.status, r.error_code) == (403, "out_of_scope")
    r = await shop.api.get(path, token=tenant_b.tokens["reviewer"])
    assert r.status == 404
    assert (await shop.api.delete(path, token=manager)).status == 204
    assert (await shop.api.get(path, token=manager)).status == 404
    # Paused and archived journeys find and send nothing.
    await conn.execute("UPDATE shoppers SET created_at = $1", T0 + MINUTE)
    assert (await scheduler.run(conn, T0 + 2 * 60 * MINUTE)).found == 0


async def test_export_gives_the_birthday_and_erasure_removes_it_and_stops_journeys(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    me = shop.token("shopper")
    r = await shop.api.patch("/v1/me", token=me, json={"birthday": "1990-01-14"})
    assert r.status == 200, r.body
    exported = await shop.api.get("/v1/me/export", token=me)
    assert exported.json["profile"]["birthday"] == "1990-01-14"
    offer = await journey_offer(shop)
    j = await journey(shop, "winback", offer, inactive_days=1)
    await conn.execute("UPDATE shopper_activity SET last_active_at = $1", T0 - DAY)
    await conn.execute(
        "UPDATE shopper_activity SET last_active_at = $2 WHERE shopper_id = $1",
        shop.tenant.shopper_id,
        T0.replace(hour=20),  # lapses 21:00 Paris the next day: found in quiet hours
    )
    found = await scheduler.run(conn, T0.replace(hour=21) + DAY)
    assert found.outcomes == {"deferred": 1}, found.outcomes
    assert (await shop.api.delete("/v1/me", token=me)).status == 200
    row = await conn.fetchrow(
        "SELECT birthday, (SELECT count(*) FROM shopper_activity WHERE shopper_id = s.id) AS n "
        "FROM shoppers s WHERE id = $1",
        shop.tenant.shopper_id,
    )
    assert row is not None and (row["birthday"], row["n"]) == (None, 0)
    assert [(r["state"], r["outcome"]) for r in await runs(conn, j["id"])] == [
        ("cancelled", "erased")
    ]
    assert (await scheduler.run(conn, T0 + 3 * DAY)).outcomes == {}
