"""Journeys at scale and across replicas: due shoppers are found through indexes (the plans
say so), two schedulers against one database fire a win-back once, and the report shows
each journey's sends, opens, redemptions and holdout uplift."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from gateway import clock, db
from gateway.jobs import journeys as scheduler
from gateway.jobs import periodic
from offers import journey_store, journeys
from tests.support.shop import T0, Shop

DAY = dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)


async def _offer_and_journey(shop: Shop, kind: str, **params: Any) -> tuple[str, str]:
    body = {
        "name": f"{kind} offer",
        "title": "A treat",
        "body": "On us",
        "trigger": "journey",
        "store_ids": [str(shop.tenant.store_ids[0])],
        "channels": ["inbox"],
        "coupon": {"discount": "treat", "valid_minutes": 3 * 24 * 60},
        "holdout_pct": params.pop("holdout_pct", 0),
    }
    r = await shop.api.post("/v1/offers", token=shop.token("manager"), json=body)
    assert r.status == 201, r.body
    offer = str(r.json["id"])
    j = {"name": kind, "kind": kind, "offer_id": offer, **params}
    r = await shop.api.post("/v1/journeys", token=shop.token("manager"), json=j)
    assert r.status == 201, r.body
    return offer, str(r.json["id"])


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


async def _plan(conn: asyncpg.Connection, query: str, *args: Any) -> list[dict[str, Any]]:
    tx = conn.transaction()
    await tx.start()
    try:
        raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
    finally:
        await tx.rollback()
    plan = json.loads(raw) if isinstance(raw, str) else raw
    return _nodes(plan[0]["Plan"])


SCANNED = {"shoppers", "shopper_activity", "tier_changes", "points_ledger", "journey_runs"}


async def test_due_shoppers_are_found_through_indexes_not_by_scanning_everyone(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    m = shop.tenant.merchant_id
    # 20,000 shoppers enrolled over two years, each with activity, an earning and a
    # tier change, and a birthday; then the planner's statistics.
    await conn.execute(
        "INSERT INTO shoppers (merchant_id, marketing_consent, created_at, birthday) "
        "SELECT $1, true, $2::timestamptz - g * interval '1 hour', date '1980-01-01' + (g % 9000) "
        "FROM generate_series(1, 20000) g",
        m,
        T0,
    )
    await conn.execute(
        "INSERT INTO tier_changes (merchant_id, shopper_id, from_tier, to_tier, at) "
        "SELECT merchant_id, id, 'Silver', 'Gold', created_at FROM shoppers WHERE merchant_id = $1",
        m,
    )
    await conn.execute(
        "INSERT INTO points_ledger (merchant_id, shopper_id, kind, points, reason, created_at) "
        "SELECT merchant_id, id, 'earn', 10, 'seed', created_at FROM shoppers "
        "WHERE merchant_id = $1",
        m,
    )
    await conn.execute("UPDATE merchants SET points_expire_days = 365 WHERE id = $1", m)
    for table in SCANNED:
        await conn.execute(f"ANALYZE {table}")
    kinds = {
        "welcome": {"delay_minutes": 60},
        "winback": {"inactive_days": 30},
        "tier_up": {"tier": "Gold"},
        "birthday": {"days_before": 0},
        "points_expiring": {"days_before": 7},
    }
    q = journey_store._Q
    now = T0 + 5 * MINUTE
    for kind, params in kinds.items():
        _, jid = await _offer_and_journey(shop, kind, **params)
        j = await journey_store.get_journey(conn, m, int(jid))
        assert j is not None
        rules = await journey_store.merchant_rules(conn, m)
        if kind == "birthday":
            dates = journeys.birthday_dates(j, now)
            args: tuple[Any, ...] = (
                j.id,
                m,
                dates,
                journeys.day_keys(dates),
                j.scanned_until,
                now,
                0,
                9,
            )
            query = q["find_birthday"]
        else:
            w = journeys.window(j, now, expire_days=rules.points_expire_days)
            assert w is not None
            query = q[f"find_{kind}"]
            args = (j.id, m, w.lo, w.hi)
            if kind == "tier_up":
                args += ("Gold", rules.above("Gold"))
            elif kind == "points_expiring":
                args += (w.offset, 7 * DAY)
            else:
                args += (w.offset,)
        nodes = await _plan(conn, query, *args)
        scans = {n["Relation Name"]: n["Node Type"] for n in nodes if "Relation Name" in n}
        read = {t: s for t, s in scans.items() if t in SCANNED}
        assert read and all(s != "Seq Scan" for s in read.values()), (kind, read)
    # Runs pile up as journeys fire; the pending ones are few.
    await conn.execute(
        "INSERT INTO journey_runs (merchant_id, journey_id, shopper_id, occurrence, occurs_at,"
        " due_at, state) SELECT merchant_id, $2, id, 'welcome', created_at, created_at,"
        " CASE WHEN id % 1000 = 0 THEN 'pending' ELSE 'done' END"
        " FROM shoppers WHERE merchant_id = $1",
        m,
        int(jid),
    )
    await conn.execute("ANALYZE journey_runs")
    nodes = await _plan(conn, q["due_runs"], now, 500)
    assert [n.get("Index Name") for n in nodes if n.get("Relation Name") == "journey_runs"] == [
        "ix__journey_runs__due"
    ], nodes


@pytest.fixture
async def pools(database_url: str) -> AsyncIterator[list[asyncpg.Pool]]:
    a = await db.create_pool(database_url, min_size=1, max_size=2)
    b = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        yield [a, b]
    finally:
        await a.close()
        await b.close()


async def test_two_replicas_schedulers_fire_a_winback_once(
    shop: Shop, conn: asyncpg.Connection, pools: list[asyncpg.Pool]
) -> None:
    offer, jid = await _offer_and_journey(shop, "winback", inactive_days=14)
    await conn.execute(
        "UPDATE shopper_activity SET last_active_at = $2 WHERE shopper_id = $1",
        shop.tenant.shopper_id,
        T0 + MINUTE,
    )
    due = T0 + 14 * DAY + 2 * MINUTE

    # Two replicas' job runners, each with its own pool, round after round.
    runners = [
        periodic.Runner(pool, [scheduler.job(every_seconds=0)], clock_=clock.FixedClock(due))
        for pool in pools
    ]
    for r in runners:
        r.start()
    try:
        for _ in range(600):
            state = await conn.fetchval(
                "SELECT state FROM journey_runs WHERE journey_id = $1", int(jid)
            )
            if state == "done":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # more rounds on both
    finally:
        for r in runners:
            await r.stop()

    # And two schedulers that skip the advisory lock altogether, at the same moment:
    # the unique run key and the run's row lock still let one decide.
    await conn.execute("UPDATE journeys SET scanned_until = $2 WHERE id = $1", int(jid), T0)
    async with db.acquire(pools[0]) as c1, db.acquire(pools[1]) as c2:
        a, b = await asyncio.gather(scheduler.run(c1, due), scheduler.run(c2, due))
    assert a.found + b.found == 0 and not a.outcomes and not b.outcomes

    rows = await conn.fetch(
        "SELECT state, outcome FROM journey_runs WHERE journey_id = $1", int(jid)
    )
    assert [(r["state"], r["outcome"]) for r in rows] == [("done", "sent")]
    n = await conn.fetchval("SELECT count(*) FROM decisions WHERE offer_id = $1", int(offer))
    assert n == 1
    assert await conn.fetchval("SELECT count(*) FROM coupons WHERE offer_id = $1", int(offer)) == 1


async def test_the_race_without_locks_on_fresh_occurrences_still_sends_once(
    shop: Shop, conn: asyncpg.Connection, pools: list[asyncpg.Pool]
) -> None:
    offer, _ = await _offer_and_journey(shop, "welcome", delay_minutes=0)
    await conn.execute(
        "INSERT INTO shoppers (merchant_id, marketing_consent, created_at) "
        "SELECT $1, true, $2::timestamptz + g * interval '1 second' FROM generate_series(1, 40) g",
        shop.tenant.merchant_id,
        T0,
    )
    at = T0 + 5 * MINUTE
    async with db.acquire(pools[0]) as c1, db.acquire(pools[1]) as c2:
        a, b = await asyncio.gather(scheduler.run(c1, at), scheduler.run(c2, at))
    assert a.outcomes.get("sent", 0) + b.outcomes.get("sent", 0) == 40
    sent = await conn.fetchval(
        "SELECT count(*) FROM decisions WHERE offer_id = $1 AND outcome = 'sent'", int(offer)
    )
    shoppers = await conn.fetchval(
        "SELECT count(DISTINCT shopper_id) FROM coupons WHERE offer_id = $1", int(offer)
    )
    assert (sent, shoppers) == (40, 40)


async def test_report_gives_sends_opens_redemptions_and_uplift_per_journey(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    offer, jid = await _offer_and_journey(shop, "welcome", delay_minutes=0, holdout_pct=50)
    ids = [
        r["id"]
        for r in await conn.fetch(
            "INSERT INTO shoppers (merchant_id, marketing_consent, created_at) "
            "SELECT $1, true, $2::timestamptz + g * interval '1 second' "
            "FROM generate_series(1, 60) g RETURNING id",
            shop.tenant.merchant_id,
            T0,
        )
    ]
    at = T0 + 5 * MINUTE
    done = await scheduler.run(conn, at)
    sent, held = done.outcomes.get("sent", 0), done.outcomes.get("holdout", 0)
    assert sent + held == 60 and sent > 0 and held > 0, done.outcomes
    # Every shopper buys at the store the next day: the sent and the held out alike.
    for sid in ids[:30]:
        await conn.execute(
            "SELECT record_conversion($1, $2, $3, 'purchase', 5, $4)",
            shop.tenant.merchant_id,
            sid,
            shop.tenant.store_ids[0],
            at + DAY,
        )
    # One coupon opened and redeemed.
    code = await conn.fetchval(
        "SELECT c.code FROM coupons c WHERE c.offer_id = $1 ORDER BY id LIMIT 1", int(offer)
    )
    delivery = await conn.fetchval(
        "SELECT id FROM deliveries WHERE offer_id = $1 ORDER BY created_at LIMIT 1", int(offer)
    )
    await conn.execute(
        "UPDATE deliveries SET delivered_at = $2, opened_at = $2 WHERE id = $1", delivery, at
    )
    r = await shop.redeem(code, key="journey-redeem")
    assert r.status == 201, r.body
    r = await shop.api.get(f"/v1/reports/journeys/{jid}", token=shop.token("reviewer"))
    assert r.status == 200, r.body
    funnel = r.json["funnel"]
    assert funnel["sent"] == sent
    assert (funnel["delivered"], funnel["opened"], funnel["redeemed"]) == (1, 1, 1)
    holdout = funnel["holdout"]
    assert holdout["treatment"]["decisions"] == sent
    assert holdout["holdout"]["decisions"] == held
    # Half the shoppers bought: each group's conversions are its shoppers among them.
    buyers = set(ids[:30])
    decided = await conn.fetch(
        "SELECT shopper_id, outcome FROM decisions WHERE offer_id = $1", int(offer)
    )
    treated = sum(1 for d in decided if d["outcome"] == "sent" and d["shopper_id"] in buyers)
    control = sum(1 for d in decided if d["outcome"] != "sent" and d["shopper_id"] in buyers)
    assert (holdout["treatment"]["converted"], holdout["holdout"]["converted"]) == (
        treated,
        control,
    )
    assert "interval" in str(holdout["uplift"]) or holdout["uplift"], holdout
    assert r.json["runs"]["done"] == {"sent": sent, "holdout": held}
    assert r.json["journey"]["offer_id"] == offer
    listed = await shop.api.get("/v1/reports/journeys", token=shop.token("reviewer"))
    assert [i["journey"]["id"] for i in listed.json["items"]] == [jid]
    assert listed.json["items"][0]["funnel"]["sent"] == sent
