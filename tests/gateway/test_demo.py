"""`gateway demo` on a small seed: its summary agrees with the database, the same seed
plays the same morning, the funnel obeys its definitions, every uplift carries the API's
interval, and the HTML report renders at desktop and phone widths."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from gateway import demo
from gateway.demo import report as text
from offers import report as funnel
from offers import store as offers_store
from offers.models import REASONS
from tests.support import browser
from tests.support.pg import PgServer
from tests.support.shop import make_settings


async def _play(url: str, tmp_path: Path, seed: int, shoppers: int = 30) -> demo.Summary:
    options = demo.Options(
        seed=seed, shoppers=shoppers, stores=6, hours=7.0, out=tmp_path / f"report-{seed}.html"
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

    # The pings' offers; the survey's invitations and recoveries, and the journeys', are
    # checked below.
    decided = await conn.fetch(
        "SELECT offer_id, outcome, reason, count(*) AS n FROM decisions "
        "WHERE trigger IN ('enter', 'dwell') GROUP BY offer_id, outcome, reason"
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

    assert summary.redemptions + summary.journey_redemptions == await conn.fetchval(
        "SELECT count(*) FROM redemptions WHERE voided_at IS NULL"
    )
    assert sum(o["redeemed"] for o in summary.offers) == summary.redemptions
    assert summary.opened == sum(o["opened"] for o in summary.offers)
    assert summary.purchases == await conn.fetchval(
        "SELECT count(*) FROM purchases WHERE amount < 100"
    )
    # Points spent: regulars bought the coffee reward; one paid with points at the till.
    assert summary.rewards_bought == await conn.fetchval("SELECT count(*) FROM reward_grants") > 0
    assert summary.points_payments == await conn.fetchval("SELECT count(*) FROM point_payments")
    assert summary.points_outstanding == await conn.fetchval("SELECT sum(points) FROM shoppers")
    await _check_referrals(summary, conn)
    pushed = await conn.fetchval(
        "SELECT count(*) FROM delivery_events WHERE channel = 'webpush' AND kind = 'delivered'"
    )
    assert summary.pushes_received == pushed
    # The welcome and the win-back went out in the morning, and their report shows them.
    journeys = {j["kind"]: j for j in summary.journeys}
    assert set(journeys) == {"welcome", "winback"}
    runs = await conn.fetch(
        "SELECT j.kind, r.outcome, count(*) AS n FROM journey_runs r "
        "JOIN journeys j ON j.id = r.journey_id GROUP BY j.kind, r.outcome"
    )
    for kind, j in journeys.items():
        sent = sum(r["n"] for r in runs if r["kind"] == kind and r["outcome"] == "sent")
        assert j["sent"] == sent > 0, (kind, runs)
    assert sum(j["redeemed"] for j in summary.journeys) == summary.journey_redemptions
    assert summary.report is not None
    page = summary.report.read_text()
    assert "Lifecycle journeys" in page and "Win-back" in page
    assert page.startswith("<!doctype html>") and "<svg" in page and "Cold mornings" in page
    assert "<script" not in page  # one file that works offline, opened from disk

    # The survey: invitations after exits, answers, and the NPS as the API computes it.
    survey = summary.survey
    answered = await conn.fetch("SELECT score FROM survey_responses")
    assert survey["responses"] == len(answered) > 0
    assert survey["invitations_sent"] == await conn.fetchval(
        "SELECT count(*) FROM survey_invitations WHERE outcome = 'sent'"
    )
    promoters = sum(r["score"] >= 9 for r in answered)
    detractors = sum(r["score"] <= 6 for r in answered)
    assert survey["nps"] == round(100 * (promoters - detractors) / len(answered), 1)
    assert survey["recoveries"] == await conn.fetchval(
        "SELECT count(*) FROM survey_responses WHERE recovery_outcome = 'sent'"
    )
    assert text.render_summary(summary).count("NPS") == 1
    assert f"n = {survey['responses']} answers" in page


async def _check_referrals(summary: demo.Summary, conn: asyncpg.Connection) -> None:
    """The chain of friends was rewarded and the second account on one phone refused."""
    counts = summary.referrals
    assert counts["invitations_used"] == await conn.fetchval("SELECT count(*) FROM referrals")
    assert counts["rewarded"] == await conn.fetchval(
        "SELECT count(*) FROM referrals WHERE status = 'rewarded'"
    )
    assert counts["rewarded"] >= 1 and counts["refused"]["shared_device"] == 1
    paid = await conn.fetchval(
        "SELECT coalesce(sum(points), 0) FROM points_ledger WHERE reason LIKE 'referral:%'"
    )
    assert counts["points_paid"] == paid > 0


async def test_the_funnel_obeys_its_definitions_after_the_demo(
    database_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    summary = await _play(database_url, tmp_path, seed=3)
    by_name = {o["name"]: o for o in summary.offers}
    for o in summary.offers:
        assert o["candidates"] >= o["eligible"] >= o["sent"], o["name"]
        assert o["sent"] >= o["delivered"] >= o["opened"], o["name"]
        assert o["eligible"] == o["candidates"] - o["suppressed"]["not_eligible"]
    # Every coupon went back in a ping's answer: each one was delivered in the app.
    assert sum(o["delivered"] for o in summary.offers) == summary.offers_received
    # The simulated day is a Wednesday: the weekend offer was a candidate, never eligible.
    brunch = by_name["Weekend brunch"]
    assert brunch["candidates"] > 0 and brunch["eligible"] == 0
    # Per shop, the figures add up to the offers'.
    for metric in ("candidates", "eligible", "sent", "redeemed"):
        assert sum(c[metric] for c in summary.shops.values()) == sum(
            o[metric] for o in summary.offers
        )
    words = text.render_summary(summary)
    assert all(r not in words for r in REASONS if "_" in r)  # reasons in words, not codes


_SIGNED = r"([+\u2212-][\d.]+)"
_INTERVAL = re.compile(rf"{_SIGNED} pt \(95 % interval {_SIGNED} to {_SIGNED} pt, p = ([\d.]+)\)")


def _number(s: str) -> float:
    return float(s.replace("\u2212", "-"))


async def test_the_reports_uplift_interval_equals_the_apis(
    database_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    # Enough shoppers for the Latte test's 20 % holdout to hold some out.
    summary = await _play(database_url, tmp_path, seed=3, shoppers=100)
    # The welcome and the win-back went out in the morning, and their report shows them.
    journeys = {j["kind"]: j for j in summary.journeys}
    assert set(journeys) == {"welcome", "winback"}
    runs = await conn.fetch(
        "SELECT j.kind, r.outcome, count(*) AS n FROM journey_runs r "
        "JOIN journeys j ON j.id = r.journey_id GROUP BY j.kind, r.outcome"
    )
    for kind, j in journeys.items():
        sent = sum(r["n"] for r in runs if r["kind"] == kind and r["outcome"] == "sent")
        assert j["sent"] == sent > 0, (kind, runs)
    assert sum(j["redeemed"] for j in summary.journeys) == summary.journey_redemptions
    assert summary.report is not None
    page = summary.report.read_text()
    assert "Lifecycle journeys" in page and "Win-back" in page
    terminal = text.render_summary(summary)
    checked = 0
    for o in summary.offers:
        # What GET /v1/reports/offers/{id} computes, straight from the database.
        rows = await offers_store.funnel_rows(conn, int(o["id"]), dt.date.min, dt.date.max)
        api = funnel.funnel(rows)[0]["holdout"]["uplift"]
        if api["ci_low"] is None:
            continue
        checked += 1
        figure = page.index(f'<figure class="uplift" data-offer="{o["id"]}"')
        row = page.index(f'<tr data-offer="{o["id"]}"')
        line = next(
            line for line in terminal.splitlines() if line.strip().startswith(o["name"] + ":")
        )
        for found in (
            _INTERVAL.search(page, figure),
            _INTERVAL.search(page, row),
            _INTERVAL.search(line),
        ):
            assert found is not None
            estimate, low, high, p = found.groups()
            assert _number(estimate) == pytest.approx(100 * api["absolute"], abs=0.05)
            assert _number(low) == pytest.approx(100 * api["ci_low"], abs=0.05)
            assert _number(high) == pytest.approx(100 * api["ci_high"], abs=0.05)
            assert float(p) == pytest.approx(api["p_value"], abs=0.0005)
        if api["ci_low"] <= 0 <= api["ci_high"]:
            assert "not significant: the interval includes zero" in line
    assert checked >= 1  # the Latte test's holdout


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_the_report_renders_without_errors_or_sideways_scrolling(
    database_url: str, tmp_path: Path, size: str
) -> None:
    browser.require()
    summary = await _play(database_url, tmp_path, seed=3)
    assert summary.report is not None
    with browser.launch("file://", size) as b:
        b.open(str(summary.report.resolve()))
        b.testid("summary")
        scroll, client = b.driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert scroll <= client, f"{scroll - client} px of sideways scrolling at {size} width"
        # Nothing sticks out of its card, and the map fits the page.
        wider = b.driver.execute_script(
            "const w = document.documentElement.clientWidth;"
            "return [...document.querySelectorAll('section, table, .map, figure')]"
            ".filter((e) => e.getBoundingClientRect().right > w).map((e) => e.className)"
        )
        assert wider == []
        assert b.console_errors() == []
        names = b.visible(".map .name")
        assert (len(names) > 0) == (size == "desktop")  # names beside pins where they fit
        assert len(b.visible(".map .pin")) == 6 and b.visible(".map .scale")
        b.screenshot(f"demo-report-{size}", full=True)


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
