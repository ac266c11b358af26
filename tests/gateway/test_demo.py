"""`gateway demo` on a small seed: its summary agrees with the database, the same seed
plays the same morning, and the report file is written."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import asyncpg

from gateway import demo
from tests.support.pg import PgServer
from tests.support.shop import make_settings


async def _play(url: str, tmp_path: Path, seed: int) -> demo.Summary:
    options = demo.Options(
        seed=seed, shoppers=30, stores=6, hours=7.0, out=tmp_path / f"report-{seed}.html"
    )
    return await demo.run(options, server_url=url, cfg=make_settings(tmp_path), fresh=False)


async def test_the_demo_summary_agrees_with_the_database(
    database_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    summary = await _play(database_url, tmp_path, seed=3)

    assert summary.pings == await conn.fetchval("SELECT count(*) FROM pings") > 100
    statuses = await conn.fetch("SELECT verdict, count(*) AS n FROM pings GROUP BY verdict")
    logged = {r["verdict"]: r["n"] for r in statuses}
    assert summary.ping_status["accepted"] == logged.get("ok", 0)
    assert summary.ping_status["ignored"] == logged.get("poor_accuracy", 0)
    events = await conn.fetch("SELECT event, count(*) AS n FROM geofence_events GROUP BY event")
    assert dict(summary.transitions) == {r["event"]: r["n"] for r in events}

    decided = await conn.fetch(
        "SELECT offer_id, outcome, reason, count(*) AS n FROM decisions "
        "GROUP BY offer_id, outcome, reason"
    )
    sent = Counter({str(r["offer_id"]): r["n"] for r in decided if r["outcome"] == "sent"})
    assert {o["id"]: o["sent"] for o in summary.offers if o["sent"]} == dict(sent)
    assert summary.offers_received == sum(sent.values()) > 0
    reasons: Counter[str] = Counter()
    for r in decided:
        if r["outcome"] == "suppressed":
            reasons[r["reason"]] += r["n"]
    assert summary.suppressed == reasons
    # The rules the demo is there to show all happened.
    assert {"quiet_hours", "weather_mismatch", "audience_mismatch"} <= set(reasons)

    assert summary.redemptions == await conn.fetchval(
        "SELECT count(*) FROM redemptions WHERE voided_at IS NULL"
    )
    assert sum(o["redeemed"] for o in summary.offers) == summary.redemptions
    assert summary.opened == sum(o["opened"] for o in summary.offers)
    assert summary.purchases == await conn.fetchval(
        "SELECT count(*) FROM purchases WHERE amount < 100"
    )
    pushed = await conn.fetchval(
        "SELECT count(*) FROM delivery_events WHERE channel = 'webpush' AND kind = 'delivered'"
    )
    assert summary.pushes_received == pushed
    assert summary.report is not None
    page = summary.report.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "Cold mornings" in page


async def test_the_same_seed_plays_the_same_morning(pg: PgServer, tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        name, url = await pg.create()
        try:
            runs.append(await _play(url, tmp_path, seed=11))
        finally:
            await pg.drop(name)
    a, b = runs
    assert (a.pings, a.ping_status, a.transitions) == (b.pings, b.ping_status, b.transitions)
    assert [(o["name"], o["sent"], o["eligible"]) for o in a.offers] == [
        (o["name"], o["sent"], o["eligible"]) for o in b.offers
    ]
    assert a.suppressed == b.suppressed and a.redemptions == b.redemptions
