"""Batched uploads answer what single pings answer: the same walk, sent both ways, gives
the same per-ping results, transitions, offers and rows."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import asyncpg
import orjson

from gateway.db import POOL
from gateway.http.handlers import pings as handlers
from gateway.http.handlers.pings import PingIn
from gateway.pingpath.geoindex import GEO_INDEX
from gateway.pingpath.pings import PINGS
from tests.gateway import test_pings
from tests.gateway.test_pings import World
from tests.support.fences import offset

# The fixture of the ping tests: their fences, settings and fixed clock.
world = test_pings.world


def walk(seed: int, start: dt.datetime) -> list[dict[str, Any]]:
    """One shopper's scripted walk, in time order: from the west into the 100 m circle,
    a stay long enough to dwell, on east into the square, with a too-vague fix, a jump
    no one could make and one fix far too old on the way."""
    rng = random.Random(seed)
    pings = []
    x = -400.0 + rng.uniform(-30, 30)
    for k in range(40):
        if k < 8:
            x += 50
        elif k < 20:
            x = rng.uniform(-40, 40)  # inside the circle for 4 minutes
        else:
            x = min(1100.0, x + 60)
        lat, lon = offset(x, rng.uniform(-20, 20))
        ts = start + dt.timedelta(seconds=20 * k + rng.uniform(0, 5))
        ping = {"lat": lat, "lon": lon, "accuracy_m": rng.choice([8, 15, 30]), "ts": ts.isoformat()}
        if k == 11:
            ping["accuracy_m"] = 500  # ignored
        if k == 25:
            ping["lat"], ping["lon"] = offset(60_000, 0)  # flagged
        if k == 30:
            ping["ts"] = (start - dt.timedelta(days=3)).isoformat()  # rejected
        if k % 7 == 3:
            ping["weather"] = {"condition": "rain", "temp_c": 7.5}
        pings.append(ping)
    return pings


async def enrol(world: World) -> tuple[int, str]:
    r = await world.api.post(
        "/v1/shoppers", token=world.tenant.tokens["app"], json={"marketing_consent": True}
    )
    assert r.status == 201, r.json
    return int(r.json["id"]), r.json["token"]


def _answer(status: str, reason: str | None, transitions: list[dict[str, Any]]) -> Any:
    return (status, reason, [(t["geofence_id"], t["event"], t["at"]) for t in transitions])


Sent = tuple[list[Any], list[str]]  # each ping's answer; the offers sent, in order


async def send_singly(world: World, token: str, pings: list[dict[str, Any]]) -> Sent:
    out, offers = [], []
    for ping in pings:
        world.clock.set(max(dt.datetime.fromisoformat(ping["ts"]), world.clock.now()))
        r = await world.api.post("/v1/pings", token=token, json=ping)
        if r.status == 422:
            out.append(_answer("rejected", "too_old", []))
            continue
        assert r.status == 200, r.json
        offers += [o["offer_id"] for o in r.json["offers"]]
        out.append(_answer(r.json["status"], r.json["reason"], r.json["transitions"]))
    return out, offers


async def send_batched(
    world: World, token: str, pings: list[dict[str, Any]], sizes: list[int]
) -> Sent:
    out: list[Any] = []
    offers: list[str] = []
    rng = random.Random(len(pings))
    start = 0
    for size in sizes:
        chunk = pings[start : start + size]
        start += size
        newest = max(dt.datetime.fromisoformat(p["ts"]) for p in chunk)
        world.clock.set(max(newest, world.clock.now()))
        order = list(range(len(chunk)))
        rng.shuffle(order)  # sent in any order, processed in time order
        r = await world.api.post(
            "/v1/pings/batch", token=token, json={"pings": [chunk[i] for i in order]}
        )
        assert r.status == 200, r.json
        answers: list[Any] = [None] * len(chunk)
        for i, result in zip(order, r.json["results"], strict=True):
            answers[i] = _answer(result["status"], result["reason"], result["transitions"])
        out += answers
        offers += [o["offer_id"] for o in r.json["offers"]]
    assert start == len(pings)
    return out, offers


async def send_to_the_reference(
    world: World, shopper_id: int, pings: list[dict[str, Any]], sizes: list[int]
) -> Sent:
    """The same batches through `PingService.handle`, the one-ping-at-a-time path."""
    out: list[Any] = []
    offers: list[str] = []
    start = 0
    for size in sizes:
        chunk = [PingIn.model_validate_json(orjson.dumps(p)) for p in pings[start : start + size]]
        start += size
        world.clock.set(max(max(p.ts for p in chunk), world.clock.now()))
        outcome = await world.app[PINGS].handle(
            world.app[POOL],
            world.app[GEO_INDEX].index,
            merchant_id=world.tenant.merchant_id,
            shopper_id=shopper_id,
            pings=[handlers._ping(p) for p in chunk],
            now=world.clock.now(),
        )
        for r in outcome.results:
            transitions = [
                {"geofence_id": str(t.fence_id), "event": t.event, "at": t.at.isoformat()}
                for t in r.transitions
            ]
            out.append(_answer(r.status, r.reason, transitions))
        offers += [str(sent.offer_id) for sent in outcome.sent]
    return out, offers


async def rows(conn: asyncpg.Connection, shopper_id: int) -> dict[str, list[Any]]:
    pings = await conn.fetch(
        "SELECT ts, lat, lon, accuracy_m, weather_condition, temp_c, verdict, transitions "
        "FROM pings WHERE shopper_id = $1 ORDER BY ts, lat",
        shopper_id,
    )
    events = await conn.fetch(
        "SELECT geofence_id, event, at FROM geofence_events WHERE shopper_id = $1 ORDER BY at, id",
        shopper_id,
    )
    decisions = await conn.fetch(
        "SELECT offer_id, geofence_id, reason FROM decisions WHERE shopper_id = $1 ORDER BY id",
        shopper_id,
    )
    return {
        "pings": [tuple(r) for r in pings],
        "events": [tuple(r) for r in events],
        "decisions": [tuple(r) for r in decisions],
    }


async def test_batches_answer_and_record_what_single_pings_do(
    world: World, conn: asyncpg.Connection
) -> None:
    start = world.clock.now()
    walks = [walk(seed, start) for seed in range(3)]
    singles = [await enrol(world) for _ in walks]
    batched = [await enrol(world) for _ in walks]
    referred = [await enrol(world) for _ in walks]
    # Each walk goes once ping by ping, and once more in uneven batches, by another shopper.
    single_answers = [
        await send_singly(world, t, w) for (_, t), w in zip(singles, walks, strict=True)
    ]
    sizes = ([40], [1, 12, 7, 20], [9, 9, 9, 9, 4])
    world.clock.set(start)
    batch_answers = [
        await send_batched(world, t, w, n)
        for (_, t), w, n in zip(batched, walks, sizes, strict=True)
    ]
    world.clock.set(start)
    reference = [
        await send_to_the_reference(world, s, w, n)
        for (s, _), w, n in zip(referred, walks, sizes, strict=True)
    ]
    # Each ping's answer is the one it gets alone. Offers are decided at the moment of the
    # upload, so a batch's may differ from its pings' sent alone (a trigger too old by
    # then decides nothing): they are those of the one-at-a-time path given the batch.
    assert [answers for answers, _ in batch_answers] == [a for a, _ in single_answers]
    assert batch_answers == reference
    # The walk did what it is for: enters, a dwell, exits, an offer, and each kind of refusal.
    seen = [a for answers, _ in single_answers for a in answers]
    assert {t[1] for _, _, ts in seen for t in ts} == {"enter", "dwell", "exit"}
    assert all(offers for _, offers in single_answers)
    assert {(s, r) for s, r, _ in seen} >= {
        ("accepted", None),
        ("ignored", "poor_accuracy"),
        ("flagged", "impossible_travel"),
        ("rejected", "too_old"),
    }
    assert any(offers for _, offers in batch_answers)
    await world.app[PINGS].log.flush()
    for (one, _), (other, _), (third, _) in zip(singles, batched, referred, strict=True):
        logged = await rows(conn, other)
        assert logged == await rows(conn, third)
        alone = await rows(conn, one)
        assert (logged["pings"], logged["events"]) == (alone["pings"], alone["events"])


# -- resends ------------------------------------------------------------------------------


async def counts(conn: asyncpg.Connection, shopper_id: int) -> tuple[int, int, int, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM pings WHERE shopper_id = $1),"
        " (SELECT count(*) FROM geofence_events WHERE shopper_id = $1),"
        " (SELECT count(*) FROM decisions WHERE shopper_id = $1),"
        " (SELECT count(*) FROM coupons WHERE shopper_id = $1)",
        shopper_id,
    )
    assert row is not None
    return tuple(row)  # type: ignore[return-value]


async def test_a_resent_ping_gets_the_first_answer_and_is_done_once(
    world: World, conn: asyncpg.Connection
) -> None:
    shopper, token = await enrol(world)
    lat, lon = offset(0, 0)
    enter = {
        "lat": lat,
        "lon": lon,
        "accuracy_m": 10,
        "ts": world.clock.now().isoformat(),
        "id": str(uuid.uuid4()),
    }
    first = await world.api.post("/v1/pings", token=token, json=enter)
    assert first.status == 200 and first.json["offers"], first.json
    world.clock.advance(seconds=30)
    again = await world.api.post("/v1/pings", token=token, json=enter)
    assert again.json == first.json  # the coupon too
    await world.app[PINGS].log.flush()
    once = await counts(conn, shopper)
    assert once == (1, 1, 1, 1)

    # In a batch, with new pings: the resend repeats its answer and offers, the new ones run.
    lat, lon = offset(20, 0)
    inside = {**enter, "lat": lat, "lon": lon, "ts": world.clock.now().isoformat()}
    fresh = [{**inside, "id": str(uuid.uuid4())}, {**inside, "id": None}]
    r = await world.api.post("/v1/pings/batch", token=token, json={"pings": [enter, *fresh]})
    assert r.status == 200, r.json
    assert r.json["results"][0] == {k: first.json[k] for k in ("status", "reason", "transitions")}
    assert r.json["offers"] == first.json["offers"]
    await world.app[PINGS].log.flush()
    assert await counts(conn, shopper) == (once[0] + 2, *once[1:])
    # The same batch again: only the ping without an id is new.
    again_batch = await world.api.post(
        "/v1/pings/batch", token=token, json={"pings": [enter, *fresh]}
    )
    assert again_batch.json["results"] == r.json["results"]
    await world.app[PINGS].log.flush()
    assert await counts(conn, shopper) == (once[0] + 3, *once[1:])


async def test_the_same_id_twice_in_one_batch_is_one_ping(
    world: World, conn: asyncpg.Connection
) -> None:
    shopper, token = await enrol(world)
    lat, lon = offset(0, 0)
    ping = {"lat": lat, "lon": lon, "accuracy_m": 10, "ts": world.clock.now().isoformat()}
    ping["id"] = str(uuid.uuid4())
    r = await world.api.post("/v1/pings/batch", token=token, json={"pings": [ping, ping]})
    assert r.status == 200, r.json
    assert r.json["results"][0] == r.json["results"][1]
    await world.app[PINGS].log.flush()
    assert (await counts(conn, shopper))[:2] == (1, 1)


async def test_a_ping_with_an_id_is_logged_in_its_receipts_transaction(
    database_url: str, conn: asyncpg.Connection, tenant_a: Any, tmp_path: Any, spec: Any
) -> None:
    """A receipt and its ping's log row commit together: a process killed after the
    answer cannot leave a receipt (which answers the resend) without the logged ping.
    Pings without an id still go through the spool (an hour's flush here: not yet)."""
    async with test_pings.make_world(
        database_url, conn, tenant_a, tmp_path, spec, ping_log_flush_seconds=3600
    ) as world:
        shopper, token = await enrol(world)
        lat, lon = offset(3000, 3000)  # away from every fence: no unit of work
        ping = {"lat": lat, "lon": lon, "accuracy_m": 10, "ts": world.clock.now().isoformat()}
        r = await world.api.post("/v1/pings", token=token, json={**ping, "id": str(uuid.uuid4())})
        assert r.status == 200, r.json
        assert (await counts(conn, shopper))[0] == 1  # no flush: logged with the receipt
        near = dict(zip(("lat", "lon"), offset(0, 0), strict=True))
        batch = [{**ping, **near, "id": str(uuid.uuid4())}, {**ping, "id": None}]
        r = await world.api.post("/v1/pings/batch", token=token, json={"pings": batch})
        assert r.status == 200, r.json
        assert (await counts(conn, shopper))[0] == 3  # the batch's pings, with its receipts
        r = await world.api.post("/v1/pings", token=token, json=ping)  # no id
        assert r.status == 200, r.json
        assert (await counts(conn, shopper))[0] == 3  # spooled, not yet in the table
        await world.app[PINGS].log.flush()
        assert (await counts(conn, shopper))[0] == 4
