"""Surveys with the Net Promoter Score question: their values, the check of an answer
against its survey, and the NPS with its confidence interval.

Pure: the SQL is in `survey_store`, the wiring (points, recovery offers) in the gateway.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from offers import errors

SurveyTrigger = Literal["redemption", "exit"]
QuestionKind = Literal["choice", "text"]
SurveyStatus = Literal["active", "paused"]

# The standard question; its 0-10 answer is the `score` of every response.
NPS_QUESTION = "How likely are you to recommend us to a friend or colleague?"
# The normal quantile of the two-sided 95 % interval.
Z95 = 1.959963984540054
TEXT_MAX = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    """An optional question after the NPS one: one choice among `choices`, or free text."""

    id: str
    kind: QuestionKind
    text: str
    choices: tuple[str, ...] = ()
    required: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "choices": list(self.choices),
            "required": self.required,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Question:
        return cls(
            id=raw["id"],
            kind=raw["kind"],
            text=raw["text"],
            choices=tuple(raw.get("choices") or ()),
            required=bool(raw.get("required", False)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Survey:
    """A survey as stored. Its invitation is the offer `offer_id` (content, channels,
    caps, holdout and validity are that offer's)."""

    id: int
    merchant_id: int
    name: str
    nps_question: str
    questions: tuple[Question, ...]
    trigger: SurveyTrigger
    store_ids: frozenset[int]
    delay_minutes: int
    points: int
    status: SurveyStatus
    offer_id: int
    recovery_offer_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


def category(score: int) -> Literal["promoter", "passive", "detractor"]:
    """9-10 promoter, 7-8 passive, 0-6 detractor (the standard NPS bands)."""
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


def is_detractor(score: int) -> bool:
    return category(score) == "detractor"


def check_answers(survey: Survey, answers: Mapping[str, Any]) -> dict[str, str]:
    """The answers to the optional questions, checked against the survey.

    Raises AnswerInvalid naming every problem: an unknown question, a choice not
    offered, text too long, or a required question left out.
    """
    problems: dict[str, str] = {}
    by_id = {q.id: q for q in survey.questions}
    kept: dict[str, str] = {}
    for qid, value in answers.items():
        q = by_id.get(qid)
        if q is None:
            problems[f"answers.{qid}"] = "no such question in this survey"
        elif not isinstance(value, str):
            problems[f"answers.{qid}"] = "must be a string"
        elif q.kind == "choice" and value not in q.choices:
            problems[f"answers.{qid}"] = f"must be one of: {', '.join(q.choices)}"
        elif q.kind == "text" and len(value) > TEXT_MAX:
            problems[f"answers.{qid}"] = f"at most {TEXT_MAX} characters"
        else:
            kept[qid] = value
    for q in survey.questions:
        if q.required and q.id not in answers:
            problems[f"answers.{q.id}"] = "this question needs an answer"
    if problems:
        raise errors.AnswerInvalid(problems)
    return kept


@dataclass(frozen=True, slots=True, kw_only=True)
class Nps:
    """The Net Promoter Score of `responses` answers, in points from -100 to 100.

    The interval is the normal (Wald) interval of the mean of the per-answer score
    +1 (promoter), 0 (passive), -1 (detractor), whose mean is the NPS / 100:
    variance = (p + d) - (p - d)^2 with p, d the promoter and detractor shares;
    NPS ± z * 100 * sqrt(variance / n), clipped to [-100, 100]. None without answers.
    """

    responses: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    low: float | None
    high: float | None
    confidence: float = 0.95

    def as_json(self) -> dict[str, Any]:
        return {
            "nps": _round(self.nps),
            "responses": self.responses,
            "promoters": self.promoters,
            "passives": self.passives,
            "detractors": self.detractors,
            "interval": {
                "low": _round(self.low),
                "high": _round(self.high),
                "confidence": self.confidence,
                "method": "wald",
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def nps(promoters: int, passives: int, detractors: int, *, z: float = Z95) -> Nps:
    n = promoters + passives + detractors
    if n == 0:
        return Nps(
            responses=0, promoters=0, passives=0, detractors=0, nps=None, low=None, high=None
        )
    p, d = promoters / n, detractors / n
    mean = p - d
    variance = max(0.0, (p + d) - mean * mean)
    half = z * math.sqrt(variance / n)
    return Nps(
        responses=n,
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        nps=100 * mean,
        low=100 * max(-1.0, mean - half),
        high=100 * min(1.0, mean + half),
    )
