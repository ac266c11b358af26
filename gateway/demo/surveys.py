"""The demo's survey: an NPS survey asked after a visit, its invitations sent by the survey
job's own function on the simulated clock, shoppers who answer through the API, and the
NPS report in the summary and the HTML page."""

from __future__ import annotations

import datetime as dt
import html
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import asyncpg

from gateway import db
from gateway.pingpath import offering, surveying

SURVEY = {
    "name": "How was your visit?",
    "trigger": "exit",
    "delay_minutes": 20,
    "points": 20,
    "questions": [
        {
            "id": "had",
            "kind": "choice",
            "text": "What did you have?",
            "choices": ["coffee", "tea", "pastry"],
        },
    ],
    "invitation": {"title": "How was your coffee?", "body": "One question, 20 points"},
    "recovery": {
        "title": "Sorry about that",
        "body": "Your next coffee is on us",
        "coupon": {"discount": "a free coffee", "valid_minutes": 2880},
    },
}
# Minutes of simulated time between two rounds of the survey job.
EVERY = dt.timedelta(minutes=5)
ANSWER_SHARE = 0.6

Call = Callable[..., Awaitable[tuple[int, Any]]]


class _Walker(Protocol):
    id: str
    token: str
    coupons: list[dict[str, Any]]


def score(rng: random.Random, redeemed: bool) -> int:
    """A shopper's 0-10 answer: those who used a coupon are happier."""
    promoter, passive = (0.6, 0.25) if redeemed else (0.4, 0.3)
    roll = rng.random()
    if roll < promoter:
        return rng.choice([9, 10])
    if roll < promoter + passive:
        return rng.choice([7, 8])
    return rng.randint(0, 6)


class DemoSurvey:
    def __init__(self, call: Call, rng: random.Random) -> None:
        self.call = call
        self.rng = rng
        self.survey: dict[str, Any] = {}
        self.answers = 0
        self.recoveries = 0
        self._next: dt.datetime | None = None

    async def define(self, manager: str) -> None:
        _, self.survey = await self.call("POST", "/v1/surveys", manager, SURVEY)

    async def tick(
        self,
        pool: asyncpg.Pool,
        books: offering.OfferBooks,
        now: dt.datetime,
        walkers: Sequence[_Walker],
    ) -> None:
        """Every EVERY: send the invitations due; the invited shoppers read their inbox
        and some answer."""
        if self._next is not None and now < self._next:
            return
        self._next = now + EVERY
        await surveying.invite_due(pool, books, now)
        async with db.acquire(pool) as conn:
            # Who got one now: the app would learn it from the inbox's live feed.
            invited = {
                str(r["shopper_id"])
                for r in await conn.fetch(
                    "SELECT shopper_id FROM survey_invitations WHERE outcome = 'sent' "
                    "AND done_at = $1 AND survey_id = $2",
                    now,
                    int(self.survey["id"]),
                )
            }
        for w in walkers:
            if w.id in invited:
                await self._answer(w)

    async def _answer(self, w: _Walker) -> None:
        _, inbox = await self.call("GET", "/v1/inbox", w.token)
        if not any(i["offer_id"] == self.survey["offer_id"] for i in inbox["items"]):
            return
        if self.rng.random() >= ANSWER_SHARE:
            return
        redeemed = any(c.get("done") for c in w.coupons)
        body = {
            "score": score(self.rng, redeemed),
            "answers": {"had": self.rng.choice(["coffee", "coffee", "tea", "pastry"])},
        }
        _, answered = await self.call(
            "POST", f"/v1/surveys/{self.survey['id']}/responses", w.token, body, idempotency=True
        )
        self.answers += 1
        self.recoveries += answered["recovery"] is not None

    async def report(self, reviewer: str) -> dict[str, Any]:
        _, figures = await self.call(
            "GET", f"/v1/reports/nps?survey_id={self.survey['id']}", reviewer
        )
        return {
            **figures,
            "name": self.survey["name"],
            "recoveries": self.recoveries,
        }


def _signed(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:+.1f}".replace("-", "\u2212")


def nps_text(s: dict[str, Any]) -> str:
    """The NPS as it must always be shown: score, interval with its method, sample size."""
    if not s:
        return "no survey"
    i = s["interval"]
    rate = "-" if s["response_rate"] is None else f"{100 * s['response_rate']:.0f} %"
    return (
        f"Survey \u201c{s['name']}\u201d: NPS {_signed(s['nps'])} (95 % interval "
        f"{_signed(i['low'])} to {_signed(i['high'])}, Wald; n = {s['responses']} answers: "
        f"{s['promoters']} promoters, {s['passives']} passives, {s['detractors']} detractors) "
        f"from {s['invitations_sent']} invitations sent, response rate {rate}; "
        f"recovery coupons sent to detractors {s['recoveries']}"
    )


def section(s: dict[str, Any]) -> str:
    """The HTML report's survey section."""
    definition = (
        "NPS = % promoters (9\u201310) \u2212 % detractors (0\u20136), from \u2212100 to 100. "
        "The interval is the normal (Wald) 95 % interval of the mean of the +1/0/\u22121 score."
    )
    return (
        f'<p data-testid="nps">{html.escape(nps_text(s))}.</p>'
        f'<p class="note">{html.escape(definition)}</p>'
    )
