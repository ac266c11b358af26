"""The demo's lifecycle journeys: a welcome for the members who join this morning and a
win-back for regulars last seen a month ago. The scheduler decides them as the morning
passes (every few simulated minutes, in the walk's order, so a seed plays the same
morning), lapsed shoppers who got the win-back may come back for it, and the journeys'
reports join the summary."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import asyncpg

from gateway import db
from gateway.jobs import journeys as scheduler

# The simulation's Demo (gateway.demo.simulation imports this module, so it is not
# imported back): its clock range, rng, stores, walkers, tokens, call() and summary.
Demo = Any

# Shares of the shoppers: new members enrolled during the morning, and regulars last
# seen a month ago (some of them walk in before their win-back is due).
NEW_SHARE = 0.2
LAPSED_SHARE = 0.2
INACTIVE_DAYS = 30
EVERY = dt.timedelta(minutes=5)


def _rng(demo: Demo, salt: int) -> random.Random:
    """A seeded generator of its own, so the journeys leave the walk's draws as they were."""
    return random.Random(demo.o.seed * 1_000_003 + salt)


def _offer(name: str, title: str, body: str, stores: list[str], minutes: int) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "body": body,
        "trigger": "journey",
        "store_ids": stores,
        "channels": ["inbox", "webpush"],
        "holdout_pct": 20,
        "coupon": {"discount": title, "valid_minutes": minutes},
    }


async def define(demo: Demo) -> None:
    """The two journeys and their offers, through the API, as a manager would."""
    manager = demo.tokens["manager"]
    stores = [s.id for s in demo.stores]
    plans = [
        (
            _offer("Welcome", "A coffee on us", "Welcome to Corner Coffee", stores, 7 * 1440),
            {"name": "Welcome", "kind": "welcome", "delay_minutes": 30},
        ),
        (
            _offer("Win-back", "We miss you: 30% off", "Come back this week", stores, 7 * 1440),
            {"name": "Win-back", "kind": "winback", "inactive_days": INACTIVE_DAYS},
        ),
    ]
    for offer, journey in plans:
        _, made = await demo.call("POST", "/v1/offers", manager, offer)
        demo.journey_offers.add(made["id"])
        await demo.call("POST", "/v1/journeys", manager, {**journey, "offer_id": made["id"]})


async def seed_history(demo: Demo, pool: asyncpg.Pool) -> None:
    """The city's past: when some shoppers joined, and when the lapsed were last seen."""
    span = (demo.end - demo.start).total_seconds()
    rng = _rng(demo, 1)
    async with db.acquire(pool) as conn:
        for w in demo.walkers:
            roll = rng.random()
            if roll < NEW_SHARE:
                joined = demo.start + dt.timedelta(seconds=rng.uniform(0, span * 0.6))
                await conn.execute(
                    "UPDATE shoppers SET created_at = $2 WHERE id = $1", int(w.id), joined
                )
            elif roll < NEW_SHARE + LAPSED_SHARE:
                seen = demo.start - dt.timedelta(days=INACTIVE_DAYS)
                seen += dt.timedelta(seconds=rng.uniform(0, span * 0.8))
                await conn.execute(
                    "UPDATE shopper_activity SET last_active_at = $2 WHERE shopper_id = $1",
                    int(w.id),
                    seen,
                )


async def tick(demo: Demo, pool: asyncpg.Pool, now: dt.datetime) -> None:
    """A scheduler round every few simulated minutes, and one at the end of the morning."""
    if (now - demo.start) % EVERY and now < demo.end:
        return
    async with db.acquire(pool) as conn:
        await scheduler.run(conn, now)


async def come_back(demo: Demo) -> None:
    """Shoppers with a journey's coupon in their inbox may open it and come to redeem it."""
    pos = demo.tokens["pos"]
    rng = _rng(demo, 2)
    for w in demo.walkers:
        _, inbox = await demo.call("GET", "/v1/inbox", w.token)
        for item in inbox["items"]:
            if item["offer_id"] not in demo.journey_offers or item["coupon"]["redeemed"]:
                continue
            if rng.random() > 0.5:
                continue
            await demo.call("POST", f"/v1/inbox/{item['delivery_id']}/open", w.token)
            if rng.random() < 0.5:
                body = {"code": item["coupon"]["code"], "store_id": demo.stores[w.store].id}
                await demo.call("POST", "/v1/redemptions", pos, body, idempotency=True)
                demo.summary.journey_redemptions += 1


async def results(demo: Demo) -> None:
    _, rep = await demo.call("GET", "/v1/reports/journeys", demo.tokens["reviewer"])
    for item in rep["items"]:
        j = item["journey"]
        demo.summary.journeys.append(
            {"id": j["id"], "name": j["name"], "kind": j["kind"], "runs": item["runs"]}
            | item["funnel"]
        )
