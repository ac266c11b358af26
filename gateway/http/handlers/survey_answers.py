"""A shopper answers a survey: once per survey, points on the wallet's ledger, and for a
detractor the survey's recovery offer through the decision engine. The gateway
orchestrates here because the answer touches both offers and wallet.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import orjson
import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors, idempotency
from gateway.http.api import Endpoint, Reply
from gateway.http.handlers.surveys import FormOut, QuestionOut
from gateway.pingpath import surveying
from gateway.pingpath.offering import OFFERS
from geo import store as geo_store
from offers import errors as offer_errors
from offers import store as offers_store
from offers import survey_store, surveys
from wallet.store import ledger

AnswerText = Annotated[str, pydantic.StringConstraints(max_length=surveys.TEXT_MAX)]


class AnswerIn(api.Model):
    score: Annotated[int, pydantic.Field(ge=0, le=10, description="The NPS answer, 0 to 10")]
    answers: Annotated[dict[str, AnswerText], pydantic.Field(max_length=10)] = {}


class ResponseOut(api.Out):
    id: str
    survey_id: str
    store_id: str
    score: int
    category: str
    answers: dict[str, str]
    points: int
    answered_at: dt.datetime
    # The service-recovery offer a detractor's answer sent now, if any (also in the inbox).
    recovery: dict[str, Any] | None

    @classmethod
    def of(cls, r: survey_store.Response, recovery: dict[str, Any] | None) -> ResponseOut:
        return cls.model_construct(
            id=str(r.id),
            survey_id=str(r.survey_id),
            store_id=str(r.store_id),
            score=r.score,
            category=surveys.category(r.score),
            answers=dict(r.answers),
            points=r.points,
            answered_at=r.answered_at,
            recovery=recovery,
        )


class OpenInvitation(api.Out):
    survey_id: str
    offer_id: str
    # The inbox item that carries the invitation (null when it went out on no inbox).
    delivery_id: str | None
    expires_at: dt.datetime
    form: FormOut


class OpenInvitations(api.Out):
    items: list[OpenInvitation]


async def my_surveys(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    async with db.acquire(request.app[POOL]) as conn:
        rows = await survey_store.open_invitations(conn, p.shopper_id, request.app[CLOCK].now())
    items = [
        OpenInvitation.model_construct(
            survey_id=str(r["survey_id"]),
            offer_id=str(r["offer_id"]),
            delivery_id=None if r["delivery_id"] is None else str(r["delivery_id"]),
            expires_at=r["expires_at"],
            form=FormOut.model_construct(
                id=str(r["survey_id"]),
                nps_question=r["nps_question"],
                questions=[
                    QuestionOut.model_construct(**surveys.Question.from_json(q).as_json())
                    for q in r["questions"]
                ],
                points=r["points"],
            ),
        )
        for r in rows
    ]
    return api.json(OpenInvitations.model_construct(items=items))


async def _recover(
    request: web.Request, conn: Any, survey: surveys.Survey, response: survey_store.Response
) -> tuple[survey_store.Response, dict[str, Any] | None]:
    """Decide the survey's recovery offer for a detractor, at the store of the answer."""
    if survey.recovery_offer_id is None or not surveys.is_detractor(response.score):
        return response, None
    rec = await offers_store.get_offer(conn, survey.merchant_id, survey.recovery_offer_id)
    if rec is None or rec.offer.status != "active":
        closed = survey_store.Closed(outcome="stopped")
    else:
        moment = await surveying.decide_one(
            conn,
            request.app[OFFERS],
            offer=rec.offer,
            shopper_id=response.shopper_id,
            store_id=response.store_id,
            fence_id=None,
            trigger="recovery",
            now=response.answered_at,
        )
        closed = surveying.outcome_of(moment)
        if moment.sent:
            response = await survey_store.set_recovery(conn, response.id, "sent", closed.coupon_id)
            return response, moment.sent[0].as_json()
    outcome = closed.reason or closed.outcome
    return await survey_store.set_recovery(conn, response.id, outcome, None), None


async def answer_survey(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None  # a shopper token names its shopper
    survey_id = api.path_id(request, "survey_id")
    async with db.acquire(request.app[POOL]) as conn:
        if await survey_store.get_survey(conn, p.merchant_id, survey_id) is None:
            raise errors.NotFound("no such survey")
    key = idempotency.key(request)
    req = await api.body(request, AnswerIn)
    fingerprint = idempotency.request_hash(
        survey_id, req.score, orjson.dumps(req.answers, option=orjson.OPT_SORT_KEYS).decode()
    )
    now = request.app[CLOCK].now()
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        # The shopper's decision lock first (as the ping path takes it, then the points
        # row): answers of one shopper, retries included, run one at a time.
        await geo_store.lock_shopper_geo(conn, p.shopper_id, p.merchant_id)
        earlier = await survey_store.response_by_key(conn, p.shopper_id, key)
        if earlier is not None:
            if earlier.request_hash != fingerprint:
                raise offer_errors.IdempotencyKeyReused()
            return idempotency.answer(ResponseOut.of(earlier, None), created=False)
        survey = await survey_store.get_survey(conn, p.merchant_id, survey_id)
        if survey is None:
            raise errors.NotFound("no such survey")
        if await survey_store.response_of(conn, survey.id, p.shopper_id) is not None:
            raise offer_errors.AlreadyAnswered()
        answers = surveys.check_answers(survey, req.answers)
        invitation = await survey_store.live_invitation(conn, p.shopper_id, survey.id, now)
        if invitation is None:
            raise offer_errors.NotInvited()
        response = await survey_store.insert_response(
            conn,
            merchant_id=p.merchant_id,
            survey_id=survey.id,
            shopper_id=p.shopper_id,
            invitation_id=invitation["id"],
            store_id=invitation["store_id"],
            score=req.score,
            answers=answers,
            points=survey.points,
            idempotency_key=key,
            request_hash=fingerprint,
            at=now,
        )
        if survey.points > 0:
            await ledger.change_points(
                conn,
                merchant_id=p.merchant_id,
                shopper_id=p.shopper_id,
                kind="earn",
                points=survey.points,
                reason=f"survey:{survey.id}",
                at=now,
                key_id=p.key_id,
            )
        response, recovery = await _recover(request, conn, survey, response)
    return idempotency.answer(ResponseOut.of(response, recovery), created=True)


ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/me/surveys",
        handler=my_surveys,
        tag="surveys",
        summary="The shopper's open survey invitations, with their forms",
        description="Sent, still valid and not answered yet, newest first. delivery_id and "
        "offer_id name the inbox item that carries the invitation, so the app can open the "
        "form from it.",
        roles=frozenset({Role.SHOPPER}),
        replies={200: Reply(description="The open invitations", model=OpenInvitations)},
    ),
    Endpoint(
        method="POST",
        path="/v1/surveys/{survey_id}/responses",
        handler=answer_survey,
        tag="surveys",
        summary="Answer a survey (once per survey; earns its points once)",
        description="Needs an Idempotency-Key header: a retry with the same key and body "
        "answers the first result again (Idempotent-Replayed: true) and earns nothing more; "
        "the key reused with another body answers 422. The shopper needs a live invitation "
        "(sent after a visit or a redemption, valid as long as its coupon): 409 not_invited "
        "otherwise, 409 already_answered for a second answer. answers maps question ids to "
        "the chosen choice or the text. A detractor's score (0-6) decides the survey's "
        "recovery offer, returned in recovery when it is sent.",
        roles=frozenset({Role.SHOPPER}),
        body=AnswerIn,
        replies={201: Reply(description="The response", model=ResponseOut)},
        errors=(404, 409, 422),
        parameters=(idempotency.PARAMETER,),
    ),
]
