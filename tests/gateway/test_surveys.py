"""Surveys with NPS end to end: an exit schedules an invitation, the survey job decides
and sends it after the delay, the shopper answers once (points once, whatever the
retries), a detractor gets the recovery offer through the decision engine, and the
reviewer reads the NPS with its interval and the answers as CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import asyncpg
import pytest

from gateway.db import POOL
from gateway.pingpath import surveying
from gateway.pingpath.offering import OFFERS
from offers import surveys
from tests.support.shop import Shop, offer_body
from tests.support.surveys import add_survey


def _survey_body(shop: Shop, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "After the visit",
        "trigger": "exit",
        "store_ids": [str(shop.tenant.store_ids[0])],
        "delay_minutes": 30,
        "points": 25,
        "questions": [
            {"id": "speed", "kind": "choice", "text": "Quick?", "choices": ["yes", "no"]},
            {"id": "comment", "kind": "text", "text": "Anything else?"},
        ],
        "invitation": {"title": "How was your coffee?", "body": "Two questions, 25 points"},
    }
    body.update(extra)
    return body


async def _invite_due(shop: Shop) -> int:
    return await surveying.invite_due(shop.app[POOL], shop.app[OFFERS], shop.clock.now())


async def _invited(shop: Shop, **extra: Any) -> dict[str, Any]:
    """A survey asked at store 0 after an exit, its invitation sent: the survey."""
    body = _survey_body(shop, **extra)
    r = await shop.api.post("/v1/surveys", token=shop.token("manager"), json=body)
    assert r.status == 201, r.body
    survey = r.json
    await shop.walk_in()
    await shop.walk_out()
    assert await _invite_due(shop) == 0  # not due before the delay
    shop.clock.advance(minutes=31)
    assert await _invite_due(shop) == 1
    return dict(survey)


async def test_an_exit_invites_after_the_delay_through_the_decision_engine(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    await add_survey(conn, shop.tenant)  # another survey, already sent
    survey = await _invited(shop)
    inbox = await shop.api.get("/v1/inbox", token=shop.token("shopper"))
    assert [i["offer_id"] for i in inbox.json["items"]] == [survey["offer_id"]]
    # The app finds the form from the inbox item; the fixture's survey is open too.
    mine = await shop.api.get("/v1/me/surveys", token=shop.token("shopper"))
    opened = {i["survey_id"]: i for i in mine.json["items"]}
    assert set(opened) == {survey["id"], str(shop.tenant.survey_id)}
    assert opened[survey["id"]]["delivery_id"] == inbox.json["items"][0]["delivery_id"]
    assert [q["id"] for q in opened[survey["id"]]["form"]["questions"]] == ["speed", "comment"]
    decisions = await shop.api.get(
        f"/v1/logs/decisions?offer_id={survey['offer_id']}", token=shop.token("reviewer")
    )
    [decision] = decisions.json["items"]
    assert (decision["trigger"], decision["outcome"], decision["reason"]) == ("exit", "sent", None)
    row = await conn.fetchrow(
        "SELECT outcome, source, due_at - triggered_at AS delay FROM survey_invitations "
        "WHERE survey_id = $1",
        int(survey["id"]),
    )
    assert (row["outcome"], row["source"], row["delay"].total_seconds()) == ("sent", "exit", 1800)
    # The invitation's coupon is the ticket to answer, not a discount at the till.
    code = inbox.json["items"][0]["coupon"]["code"]
    r = await shop.redeem(code, key="survey-ticket")
    assert r.status == 403, r.body


async def test_a_second_invitation_is_capped_and_audited(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    survey = await _invited(shop)
    await shop.walk_in()
    await shop.walk_out()
    shop.clock.advance(minutes=31)
    assert await _invite_due(shop) == 1
    reasons = await conn.fetch(
        "SELECT outcome, reason FROM survey_invitations WHERE survey_id = $1 ORDER BY id",
        int(survey["id"]),
    )
    assert [(r["outcome"], r["reason"]) for r in reasons] == [
        ("sent", None),
        ("suppressed", "frequency_capped"),
    ]
    logged = await shop.api.get(
        f"/v1/logs/decisions?offer_id={survey['offer_id']}&reason=frequency_capped",
        token=shop.token("reviewer"),
    )
    assert len(logged.json["items"]) == 1


async def test_no_consent_means_no_invitation(shop: Shop, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "UPDATE shoppers SET marketing_consent = false WHERE id = $1", shop.tenant.shopper_id
    )
    r = await shop.api.post("/v1/surveys", token=shop.token("manager"), json=_survey_body(shop))
    await shop.walk_in()
    await shop.walk_out()
    shop.clock.advance(minutes=31)
    assert await _invite_due(shop) == 1
    row = await conn.fetchrow(
        "SELECT outcome, reason FROM survey_invitations WHERE survey_id = $1", int(r.json["id"])
    )
    assert (row["outcome"], row["reason"]) == ("suppressed", "no_consent")
    answer = await shop.api.post(
        f"/v1/surveys/{r.json['id']}/responses",
        token=shop.token("shopper"),
        json={"score": 9},
        headers={"Idempotency-Key": "a"},
    )
    assert (answer.status, answer.error_code) == (409, "not_invited")


async def test_a_redemption_schedules_the_redemption_surveys(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    # A survey asked after any redemption; the tenant's coupon is redeemed now.
    await add_survey(conn, shop.tenant)
    r = await shop.redeem(shop.tenant.coupon_code, key="redeem-1")
    assert r.status == 201, r.body
    row = await conn.fetchrow(
        "SELECT source, store_id, done_at FROM survey_invitations "
        "WHERE survey_id = $1 AND done_at IS NULL",
        shop.tenant.survey_id,
    )
    assert (row["source"], row["store_id"]) == ("redemption", shop.tenant.store_ids[0])


async def test_parallel_retries_of_one_answer_earn_once(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    survey = await _invited(shop)
    body = {"score": 10, "answers": {"speed": "yes", "comment": "lovely"}}

    async def answer() -> Any:
        return await shop.api.post(
            f"/v1/surveys/{survey['id']}/responses",
            token=shop.token("shopper"),
            json=body,
            headers={"Idempotency-Key": "answer-1"},
        )

    replies = await asyncio.gather(*[answer() for _ in range(8)])
    mine = await shop.api.get("/v1/me/surveys", token=shop.token("shopper"))
    assert survey["id"] not in {i["survey_id"] for i in mine.json["items"]}
    assert {r.status for r in replies} == {201}
    assert sum("Idempotent-Replayed" not in r.headers for r in replies) == 1
    assert len({r.json["id"] for r in replies}) == 1
    earned = await conn.fetch(
        "SELECT points FROM points_ledger WHERE shopper_id = $1 AND reason = $2",
        shop.tenant.shopper_id,
        f"survey:{survey['id']}",
    )
    assert [e["points"] for e in earned] == [25]
    # Another key, same survey: answered already; the same key, another body: refused.
    again = await shop.api.post(
        f"/v1/surveys/{survey['id']}/responses",
        token=shop.token("shopper"),
        json=body,
        headers={"Idempotency-Key": "answer-2"},
    )
    assert (again.status, again.error_code) == (409, "already_answered")
    reused = await shop.api.post(
        f"/v1/surveys/{survey['id']}/responses",
        token=shop.token("shopper"),
        json={"score": 1},
        headers={"Idempotency-Key": "answer-1"},
    )
    assert (reused.status, reused.error_code) == (422, "idempotency_key_reused")


async def test_export_has_the_answers_and_erasure_keeps_only_the_score(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    survey = await _invited(shop)
    r = await shop.api.post(
        f"/v1/surveys/{survey['id']}/responses",
        token=shop.token("shopper"),
        json={"score": 8, "answers": {"comment": "ask for Ada"}},
        headers={"Idempotency-Key": "erase-me"},
    )
    assert r.status == 201, r.body
    exported = await shop.api.get("/v1/me/export", token=shop.token("shopper"))
    [mine] = exported.json["offers"]["survey_responses"]
    assert (mine["score"], mine["answers"]) == (8, {"comment": "ask for Ada"})
    gone = await shop.api.delete("/v1/me", token=shop.token("shopper"))
    assert gone.status == 200, gone.body
    row = await conn.fetchrow(
        "SELECT score, answers FROM survey_responses WHERE id = $1", int(r.json["id"])
    )
    assert (row["score"], row["answers"]) == (8, {})


async def test_answers_are_checked_against_the_survey(shop: Shop) -> None:
    survey = await _invited(shop)
    r = await shop.api.post(
        f"/v1/surveys/{survey['id']}/responses",
        token=shop.token("shopper"),
        json={"score": 7, "answers": {"speed": "maybe", "colour": "red"}},
        headers={"Idempotency-Key": "bad"},
    )
    assert r.status == 422
    assert set(r.json["error"]["fields"]) == {"answers.speed", "answers.colour"}


async def test_a_detractor_gets_the_recovery_offer_and_the_report_shows_it(
    shop: Shop, conn: asyncpg.Connection
) -> None:
    survey = await _invited(shop)
    store = str(shop.tenant.store_ids[0])
    # Made after the visit, so no ping of the walk made it a candidate.
    made = await shop.api.post(
        "/v1/offers",
        token=shop.token("manager"),
        json=offer_body(
            {"store_ids": [store]},
            name="Sorry",
            title="A coffee on us",
            channels=["inbox"],
            fire_when_closed=True,
        ),
    )
    patched = await shop.api.patch(
        f"/v1/surveys/{survey['id']}",
        token=shop.token("manager"),
        json={"recovery_offer_id": made.json["id"]},
    )
    assert patched.status == 200, patched.body
    r = await shop.api.post(
        f"/v1/surveys/{survey['id']}/responses",
        token=shop.token("shopper"),
        json={"score": 3, "answers": {"speed": "no", "comment": 'cold, slow; "sad"'}},
        headers={"Idempotency-Key": "detractor"},
    )
    assert r.status == 201, r.body
    assert r.json["category"] == "detractor"
    assert r.json["recovery"]["offer_id"] == made.json["id"]
    decisions = await shop.api.get(
        f"/v1/logs/decisions?offer_id={made.json['id']}", token=shop.token("reviewer")
    )
    assert [(d["trigger"], d["outcome"]) for d in decisions.json["items"]] == [("recovery", "sent")]
    inbox = await shop.api.get("/v1/inbox", token=shop.token("shopper"))
    assert made.json["id"] in {i["offer_id"] for i in inbox.json["items"]}

    report = await shop.api.get(
        f"/v1/reports/nps?store_id={store}&survey_id={survey['id']}", token=shop.token("reviewer")
    )
    assert report.status == 200, report.body
    figures = report.json
    assert (figures["nps"], figures["responses"], figures["detractors"]) == (-100.0, 1, 1)
    assert (figures["invitations_sent"], figures["response_rate"]) == (1, 1.0)
    assert figures["interval"]["method"] == "wald"
    [by_store] = figures["stores"]
    assert (by_store["store_id"], by_store["responses"]) == (store, 1)
    daily = await shop.api.get("/v1/reports/nps?by=day", token=shop.token("reviewer"))
    assert [(p["period"], p["responses"]) for p in daily.json["series"]] == [("2026-01-12", 1)]

    exported = await shop.api.get(
        f"/v1/reports/surveys/{survey['id']}/answers", token=shop.token("reviewer")
    )
    assert exported.status == 200
    rows = list(csv.reader(io.StringIO(exported.body.decode())))
    assert rows[0][-2:] == ["speed", "comment"]
    assert rows[1][5:9] == ["3", "detractor", "25", "sent"]
    assert rows[1][-1] == 'cold, slow; "sad"'


async def test_a_recovery_offer_made_with_the_survey_is_redeemable_at_its_stores(
    shop: Shop,
) -> None:
    recovery = {
        "title": "Sorry about that",
        "body": "Your next coffee is on us",
        "coupon": {"discount": "free coffee", "valid_minutes": 1440},
    }
    survey = await _invited(shop, recovery=recovery)
    assert survey["recovery_offer_id"] is not None
    r = await shop.api.post(
        f"/v1/surveys/{survey['id']}/responses",
        token=shop.token("shopper"),
        json={"score": 0},
        headers={"Idempotency-Key": "zero"},
    )
    assert r.status == 201, r.body
    sent = r.json["recovery"]
    assert sent["offer_id"] == survey["recovery_offer_id"]
    redeemed = await shop.redeem(sent["coupon"]["code"], key="recovered")
    assert redeemed.status == 201, redeemed.body
    # One recovery or the other, not both.
    both = _survey_body(shop, recovery=recovery, recovery_offer_id=survey["recovery_offer_id"])
    refused = await shop.api.post("/v1/surveys", token=shop.token("manager"), json=both)
    assert refused.status == 422


async def test_nps_is_empty_without_answers(shop: Shop) -> None:
    r = await shop.api.get("/v1/reports/nps", token=shop.token("reviewer"))
    assert r.status == 200
    assert (r.json["nps"], r.json["responses"], r.json["interval"]["low"]) == (None, 0, None)


@pytest.mark.parametrize(
    ("p", "s", "d", "nps", "low", "high"),
    [
        # p = .6, d = .2: variance = .8 - .16 = .64, half-width 1.96 * sqrt(.064) = .4958
        (6, 2, 2, 40.0, -9.6, 89.6),
        (10, 0, 0, 100.0, 100.0, 100.0),
        (1, 0, 1, 0.0, -100.0, 100.0),  # half-width 1.96 > 1: clipped
    ],
)
def test_the_nps_interval_is_the_wald_interval_of_the_score(
    p: int, s: int, d: int, nps: float, low: float, high: float
) -> None:
    figure = surveys.nps(p, s, d).as_json()
    assert (figure["nps"], figure["interval"]["low"], figure["interval"]["high"]) == (
        nps,
        low,
        high,
    )
    assert figure["responses"] == p + s + d
