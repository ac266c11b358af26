"""Survey reports for reviewers: the NPS per store and over time with its interval and
sample size, response rates, and a survey's answers as CSV."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from aiohttp import web

from gateway import db
from gateway.db import POOL
from gateway.http import api, errors, paging
from gateway.http.api import Endpoint, Reply
from gateway.http.handlers import reports
from gateway.http.handlers.surveys import visible_survey
from offers import survey_store, surveys

PERIODS = ("day", "week", "month")


class NpsFigures(api.Out):
    nps: float | None
    responses: int
    promoters: int
    passives: int
    detractors: int
    # {"low", "high", "confidence", "method"}
    interval: dict[str, Any]


class StoreNps(NpsFigures):
    store_id: str
    invitations_sent: int
    response_rate: float | None


class PeriodNps(NpsFigures):
    period: dt.date


class NpsReport(NpsFigures):
    store_id: str | None
    survey_id: str | None
    invitations_sent: int
    invitations_suppressed: int
    response_rate: float | None
    by: str | None
    stores: list[StoreNps]
    series: list[PeriodNps]


def _rate(responses: int, sent: int) -> float | None:
    return None if sent == 0 else round(responses / sent, 4)


def _sum(rows: list[Any]) -> surveys.Nps:
    return surveys.nps(
        sum(r["promoters"] for r in rows),
        sum(r["passives"] for r in rows),
        sum(r["detractors"] for r in rows),
    )


def _filter(request: web.Request) -> survey_store.ReportFilter:
    p = api.principal(request)
    store_id = paging.query_id(request, "store_id", "not a store id")
    if store_id is not None:
        api.require_store(p, store_id)
    return survey_store.ReportFilter(
        merchant_id=p.merchant_id,
        store_id=store_id,
        store_ids=p.store_ids,
        survey_id=paging.query_id(request, "survey_id", "not a survey id"),
        since=reports._instant(request, "from"),
        until=reports._instant(request, "to"),
    )


async def nps_report(request: web.Request) -> web.Response:
    f = _filter(request)
    by = request.query.get("by")
    if by is not None and by not in PERIODS:
        raise errors.ValidationFailed(
            "bad query parameter", fields={"by": "must be day, week or month"}
        )
    async with db.acquire(request.app[POOL]) as conn:
        rows = await survey_store.nps_counts(conn, f, by)
        invited = await survey_store.invitation_counts(conn, f)
    sent = {r["store_id"]: int(r["sent"]) for r in invited}
    by_store: dict[int, list[Any]] = defaultdict(list)
    by_period: dict[dt.date, list[Any]] = defaultdict(list)
    for r in rows:
        by_store[r["store_id"]].append(r)
        if by is not None:
            by_period[r["period"]].append(r)
    total = _sum(rows)
    stores = []
    for store_id in sorted(set(by_store) | set(sent)):
        figure = _sum(by_store.get(store_id, []))
        stores.append(
            {
                "store_id": str(store_id),
                **figure.as_json(),
                "invitations_sent": sent.get(store_id, 0),
                "response_rate": _rate(figure.responses, sent.get(store_id, 0)),
            }
        )
    all_sent = sum(sent.values())
    return api.json(
        {
            **total.as_json(),
            "store_id": api.ident(f.store_id),
            "survey_id": api.ident(f.survey_id),
            "invitations_sent": all_sent,
            "invitations_suppressed": sum(int(r["suppressed"]) for r in invited),
            "response_rate": _rate(total.responses, all_sent),
            "by": by,
            "stores": stores,
            "series": [
                {"period": period.isoformat(), **_sum(by_period[period]).as_json()}
                for period in sorted(by_period)
            ],
        }
    )


ANSWER_CSV = (
    "id",
    "answered_at",
    "survey_id",
    "store_id",
    "shopper_id",
    "score",
    "category",
    "points",
    "recovery_outcome",
)


async def survey_answers(request: web.Request) -> web.StreamResponse:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn:
        survey, _ = await visible_survey(request, conn)
    question_ids = [q.id for q in survey.questions]
    query, args = survey_store.answers_query(
        p.merchant_id, survey.id, None if p.store_ids is None else sorted(p.store_ids)
    )

    def row(r: Any) -> list[Any]:
        answers = r["answers"] or {}
        return [
            r["id"],
            reports._cell(r["answered_at"]),
            r["survey_id"],
            r["store_id"],
            r["shopper_id"],
            r["score"],
            surveys.category(r["score"]),
            r["points"],
            reports._cell(r["recovery_outcome"]),
            *[answers.get(q, "") for q in question_ids],
        ]

    return await reports._stream_csv(
        request,
        filename=f"survey-{survey.id}-answers.csv",
        query=query,
        args=args,
        header=[*ANSWER_CSV, *question_ids],
        row=row,
    )


_q = reports._q
_NPS_DOC = (
    "NPS = % promoters (9-10) minus % detractors (0-6), from -100 to 100, with `responses` "
    "its sample size. The interval is the normal (Wald) 95 % interval of the mean of the "
    "per-answer score +1/0/-1: NPS ± 1.96 · 100 · sqrt(((p + d) - (p - d)²) / n), clipped to "
    "[-100, 100]; null without answers. response_rate = responses / invitations sent, in "
    "the same period (by answer time and by decision time). Answers count at the store "
    "whose visit or redemption invited them. by=day|week|month adds a series over time "
    "(periods start in UTC)."
)

ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/reports/nps",
        handler=nps_report,
        tag="reports",
        summary="Net Promoter Score per store and over time, with its interval and sample "
        "size, and response rates",
        description=_NPS_DOC,
        roles=reports.READERS,
        replies={200: Reply(description="The NPS report", model=NpsReport)},
        errors=(422,),
        parameters=(
            _q("store_id", {"type": "string"}),
            _q("survey_id", {"type": "string"}),
            _q("from", {"type": "string", "format": "date-time"}),
            _q("to", {"type": "string", "format": "date-time"}),
            _q("by", {"enum": list(PERIODS)}),
        ),
    ),
    Endpoint(
        method="GET",
        path="/v1/reports/surveys/{survey_id}/answers",
        handler=survey_answers,
        tag="reports",
        summary="A survey's answers as CSV (one column per optional question)",
        description=f"CSV columns: {', '.join(ANSWER_CSV)}, then one per question id.",
        roles=reports.READERS,
        replies={
            200: Reply(
                description="Every answer", content_type="text/csv", schema=reports.CSV_SCHEMA
            )
        },
        errors=(404,),
    ),
]
