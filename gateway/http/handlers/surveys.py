"""Surveys with the NPS question: managers define them; each one's invitation is an offer
of its own (no places), decided and delivered like any offer after a visit's exit or a
redemption. Shoppers read the form and answer (gateway/http/handlers/survey_answers.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Principal, Role
from gateway.db import POOL
from gateway.http import api, errors, paging
from gateway.http.api import Endpoint, Reply
from gateway.http.handlers.offers import (
    READERS,
    WRITERS,
    Body,
    CapIn,
    Channels,
    CouponIn,
    PlaceIds,
    Text,
    _unique_channels,
)
from offers import store as offers_store
from offers import survey_store, surveys

QuestionId = Annotated[str, pydantic.StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Choice = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=100)]


class QuestionIn(api.Model):
    id: QuestionId
    kind: Literal["choice", "text"]
    text: Text
    choices: Annotated[list[Choice], pydantic.Field(max_length=20)] = []
    required: bool = False

    @pydantic.model_validator(mode="after")
    def _fits_kind(self) -> QuestionIn:
        if self.kind == "choice" and (
            len(self.choices) < 2 or len(set(self.choices)) != len(self.choices)
        ):
            raise ValueError("a choice question needs at least two distinct choices")
        if self.kind == "text" and self.choices:
            raise ValueError("a text question has no choices")
        return self


def _unique_questions(value: list[QuestionIn] | None) -> list[QuestionIn] | None:
    if value is not None and len({q.id for q in value}) != len(value):
        raise ValueError("each question id at most once")
    return value


Questions = Annotated[
    list[QuestionIn], pydantic.Field(max_length=10), pydantic.AfterValidator(_unique_questions)
]


def _default_caps() -> list[CapIn]:
    return [CapIn(max=1, days=30)]


class InvitationIn(api.Model):
    """The invitation: an offer of its own, with its caps, holdout and validity."""

    title: Text
    body: Body
    channels: Annotated[Channels, pydantic.AfterValidator(_unique_channels)] = ["inbox"]
    # How long the shopper may answer: the invitation coupon's validity.
    valid_minutes: Annotated[int, pydantic.Field(ge=1, le=60 * 24 * 60)] = 60 * 24 * 7
    caps: Annotated[list[CapIn], pydantic.Field(max_length=10)] = pydantic.Field(
        default_factory=_default_caps
    )
    holdout_pct: Annotated[float, pydantic.Field(ge=0, le=100)] = 0


class RecoveryIn(api.Model):
    """A recovery offer made for the survey: it has no places (no ping sends it) and its
    coupon is valid at the survey's stores (every store when the survey names none)."""

    title: Text
    body: Body
    coupon: CouponIn
    channels: Annotated[Channels, pydantic.AfterValidator(_unique_channels)] = ["inbox"]
    caps: Annotated[list[CapIn], pydantic.Field(max_length=10)] = pydantic.Field(
        default_factory=_default_caps
    )
    holdout_pct: Annotated[float, pydantic.Field(ge=0, le=100)] = 0


Delay = Annotated[int, pydantic.Field(ge=0, le=10080)]
Points = Annotated[int, pydantic.Field(ge=0, le=1_000_000)]


class SurveyCreate(api.Model):
    name: Text
    nps_question: Text = surveys.NPS_QUESTION
    questions: Questions = []
    trigger: Literal["redemption", "exit"]
    store_ids: PlaceIds = []
    delay_minutes: Delay = 30
    points: Points = 0
    status: Literal["active", "paused"] = "active"
    recovery_offer_id: api.Id | None = None
    recovery: RecoveryIn | None = None
    invitation: InvitationIn

    @pydantic.model_validator(mode="after")
    def _one_recovery(self) -> SurveyCreate:
        if self.recovery is not None and self.recovery_offer_id is not None:
            raise ValueError("give recovery_offer_id or recovery, not both")
        return self


class SurveyPatch(api.Model):
    name: Text | None = None
    nps_question: Text | None = None
    questions: Questions | None = None
    trigger: Literal["redemption", "exit"] | None = None
    store_ids: PlaceIds | None = None
    delay_minutes: Delay | None = None
    points: Points | None = None
    status: Literal["active", "paused"] | None = None
    recovery_offer_id: api.Id | None = None
    invitation: InvitationIn | None = None


class QuestionOut(api.Out):
    id: str
    kind: Literal["choice", "text"]
    text: str
    choices: list[str]
    required: bool


class InvitationOut(api.Out):
    title: str
    body: str
    channels: list[str]
    valid_minutes: int
    caps: list[dict[str, int]]
    holdout_pct: float


class SurveyOut(api.Out):
    id: str
    name: str
    nps_question: str
    questions: list[QuestionOut]
    trigger: Literal["redemption", "exit"]
    store_ids: list[str]
    delay_minutes: int
    points: int
    status: Literal["active", "paused"]
    offer_id: str
    recovery_offer_id: str | None
    invitation: InvitationOut
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, s: surveys.Survey, invitation: offers_store.OfferRecord) -> SurveyOut:
        o = invitation.offer
        return cls.model_construct(
            id=str(s.id),
            name=s.name,
            nps_question=s.nps_question,
            questions=[QuestionOut.model_construct(**q.as_json()) for q in s.questions],
            trigger=s.trigger,
            store_ids=[str(i) for i in sorted(s.store_ids)],
            delay_minutes=s.delay_minutes,
            points=s.points,
            status=s.status,
            offer_id=str(s.offer_id),
            recovery_offer_id=api.ident(s.recovery_offer_id),
            invitation=InvitationOut.model_construct(
                title=o.title,
                body=o.body,
                channels=list(o.channels),
                valid_minutes=o.coupon.valid_minutes,
                caps=[{"max": c.max, "seconds": c.seconds} for c in o.caps],
                holdout_pct=o.holdout_pct,
            ),
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


class SurveyList(api.Out):
    items: list[SurveyOut]
    next_cursor: str | None


class FormOut(api.Out):
    """What the shopper's app shows: the questions, and the points an answer earns."""

    id: str
    nps_question: str
    questions: list[QuestionOut]
    points: int


def _invitation_offer(name: str, status: str, inv: InvitationIn | RecoveryIn) -> dict[str, Any]:
    """The invitation's offer columns: no places (no ping makes it a candidate), coupons
    valid at no till (the coupon is the shopper's ticket to answer), sent at any hour
    of the store's (the shopper has left), quiet hours still apply."""
    return {
        "name": f"Survey: {name}"[:200],
        "title": inv.title,
        "body": inv.body,
        "image_url": None,
        "channels": list(inv.channels),
        "trigger": "enter",
        "status": status,
        "geofence_ids": [],
        "store_ids": [],
        "scope_store_ids": [],
        "starts_at": None,
        "ends_at": None,
        "schedule": None,
        "weather": None,
        "audience": None,
        "caps": [{"max": c.max, "seconds": c.seconds} for c in inv.caps],
        "budget_issued": None,
        "budget_redeemed": None,
        "priority": 0,
        "holdout_pct": inv.holdout_pct,
        "coupon": {
            "discount": "Survey",
            "valid_minutes": getattr(inv, "valid_minutes", 60),
            "barcode_format": "qr",
        },
        "fire_when_closed": True,
    }


def _recovery_offer(name: str, rec: RecoveryIn, valid_at: list[int]) -> dict[str, Any]:
    return {
        **_invitation_offer(name, "active", rec),
        "name": f"Recovery: {name}"[:200],
        "scope_store_ids": valid_at,
        "coupon": rec.coupon.model_dump(),
    }


async def _check_places(
    conn: Any, p: Principal, store_ids: list[int], recovery_offer_id: int | None
) -> None:
    if p.store_ids is not None and not store_ids:
        raise errors.Forbidden(
            "a store-scoped key must name the survey's store_ids", code="out_of_scope"
        )
    await offers_store.resolve_scope(conn, p.merchant_id, [], store_ids)
    if not p.can_reach_stores(set(store_ids)):
        raise errors.Forbidden("this token is not scoped to those stores", code="out_of_scope")
    if recovery_offer_id is not None:
        rec = await offers_store.get_offer(conn, p.merchant_id, recovery_offer_id)
        if rec is None:
            raise errors.ValidationFailed(
                "no such offer", fields={"recovery_offer_id": "no such offer"}
            )


def _survey_values(req: SurveyCreate) -> dict[str, Any]:
    return {
        "name": req.name,
        "nps_question": req.nps_question,
        "questions": [q.model_dump() for q in req.questions],
        "trigger": req.trigger,
        "store_ids": sorted(set(req.store_ids)),
        "delay_minutes": req.delay_minutes,
        "points": req.points,
        "status": req.status,
        "recovery_offer_id": req.recovery_offer_id,
    }


async def create_survey(request: web.Request) -> web.Response:
    p = api.principal(request)
    req = await api.body(request, SurveyCreate)
    values = _survey_values(req)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        await _check_places(conn, p, values["store_ids"], req.recovery_offer_id)
        if req.recovery is not None:
            valid_at = values["store_ids"] or sorted(
                await offers_store.store_hours(conn, p.merchant_id)
            )
            made = await offers_store.insert_offer(
                conn, p.merchant_id, _recovery_offer(req.name, req.recovery, valid_at)
            )
            values["recovery_offer_id"] = made.offer.id
        offer = await offers_store.insert_offer(
            conn, p.merchant_id, _invitation_offer(req.name, req.status, req.invitation)
        )
        survey = await survey_store.insert_survey(conn, p.merchant_id, offer.offer.id, values)
    return api.json(SurveyOut.of(survey, offer), status=201)


def _visible(p: Principal, s: surveys.Survey) -> bool:
    return p.store_ids is None or (bool(s.store_ids) and s.store_ids <= p.store_ids)


async def visible_survey(
    request: web.Request, conn: Any, *, lock: bool = False
) -> tuple[surveys.Survey, offers_store.OfferRecord]:
    """The survey named in the path, if the token reaches all of its stores."""
    p = api.principal(request)
    s = await survey_store.get_survey(
        conn, p.merchant_id, api.path_id(request, "survey_id"), lock=lock
    )
    if s is None:
        raise errors.NotFound("no such survey")
    if not _visible(p, s):
        raise errors.Forbidden(
            "this token is not scoped to this survey's stores", code="out_of_scope"
        )
    offer = await offers_store.get_offer(conn, p.merchant_id, s.offer_id)
    assert offer is not None  # archived together
    return s, offer


async def get_survey(request: web.Request) -> web.Response:
    async with db.acquire(request.app[POOL]) as conn:
        s, offer = await visible_survey(request, conn)
    return api.json(SurveyOut.of(s, offer))


async def list_surveys(request: web.Request) -> web.Response:
    p = api.principal(request)
    limit = paging.limit(request, 100, 1000)
    async with db.acquire(request.app[POOL]) as conn:
        found = await survey_store.list_surveys(
            conn, p.merchant_id, p.store_ids, after=paging.cursor(request), limit=limit
        )
        items = []
        for s in found:
            offer = await offers_store.get_offer(conn, p.merchant_id, s.offer_id)
            assert offer is not None
            items.append(SurveyOut.of(s, offer))
    next_cursor = paging.next_cursor([i.id for i in items], limit)
    return api.json(SurveyList.model_construct(items=items, next_cursor=next_cursor))


def _changes(req: SurveyPatch, current: surveys.Survey) -> dict[str, Any]:
    given = req.model_fields_set
    values: dict[str, Any] = {
        "name": current.name,
        "nps_question": current.nps_question,
        "questions": [q.as_json() for q in current.questions],
        "trigger": current.trigger,
        "store_ids": sorted(current.store_ids),
        "delay_minutes": current.delay_minutes,
        "points": current.points,
        "status": current.status,
        "recovery_offer_id": current.recovery_offer_id,
    }
    for name in values:
        if name in given:
            value = getattr(req, name)
            if value is None and name != "recovery_offer_id":
                raise errors.ValidationFailed(
                    "bad field", fields={name: "cannot be null; leave it out to keep it"}
                )
            if name == "questions":
                value = [q.model_dump() for q in value]
            elif name == "store_ids":
                value = sorted(set(value))
            values[name] = value
    return values


async def patch_survey(request: web.Request) -> web.Response:
    p = api.principal(request)
    req = await api.body(request, SurveyPatch)
    if "invitation" in req.model_fields_set and req.invitation is None:
        raise errors.ValidationFailed("bad field", fields={"invitation": "cannot be null"})
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        current, offer = await visible_survey(request, conn, lock=True)
        values = _changes(req, current)
        await _check_places(conn, p, values["store_ids"], values["recovery_offer_id"])
        changes: dict[str, Any] = {"status": values["status"]}
        if req.invitation is not None:
            changes = _invitation_offer(values["name"], values["status"], req.invitation)
        elif values["name"] != current.name:
            changes["name"] = f"Survey: {values['name']}"[:200]
        updated_offer = await offers_store.update_offer(
            conn, p.merchant_id, offer.offer.id, changes
        )
        survey = await survey_store.update_survey(conn, p.merchant_id, current.id, values)
    assert survey is not None and updated_offer is not None
    return api.json(SurveyOut.of(survey, updated_offer))


async def delete_survey(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        s, _ = await visible_survey(request, conn, lock=True)
        await survey_store.archive_survey(conn, p.merchant_id, s.id)
    return web.Response(status=204)


async def survey_form(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn:
        s = await survey_store.get_survey(conn, p.merchant_id, api.path_id(request, "survey_id"))
    if s is None:
        raise errors.NotFound("no such survey")
    return api.json(
        FormOut.model_construct(
            id=str(s.id),
            nps_question=s.nps_question,
            questions=[QuestionOut.model_construct(**q.as_json()) for q in s.questions],
            points=s.points,
        )
    )


_ABOUT = (
    "A survey asks the standard NPS question (0-10) and up to ten optional questions "
    "(single choice or free text). A visit's exit (trigger exit) or a redemption "
    "(trigger redemption) at one of its store_ids (none: every store) schedules an "
    "invitation, due delay_minutes later, decided like an offer: the invitation is an "
    "offer of its own (offer_id) with the invitation's caps, holdout and channels, under "
    "the program's consent, quiet hours and daily cap; it lands in the shopper's inbox. "
    "Answering earns points once per survey and shopper. A detractor's answer (0-6) "
    "decides recovery_offer_id, if set, at the store of the answer; or give recovery "
    "(title, body, coupon, channels, caps) to make a recovery offer with no places, whose "
    "coupon is valid at the survey's stores."
)

ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/v1/surveys",
        handler=create_survey,
        tag="surveys",
        summary="Create a survey (NPS plus optional questions), asked after an exit or a "
        "redemption",
        description=_ABOUT,
        roles=WRITERS,
        body=SurveyCreate,
        replies={201: Reply(description="The survey", model=SurveyOut)},
    ),
    Endpoint(
        method="GET",
        path="/v1/surveys",
        handler=list_surveys,
        tag="surveys",
        summary="List surveys (a store-scoped key sees those asked only at its stores)",
        roles=READERS,
        replies={200: Reply(description="A page of surveys", model=SurveyList)},
        errors=(422,),
        parameters=paging.PAGING,
    ),
    Endpoint(
        method="GET",
        path="/v1/surveys/{survey_id}",
        handler=get_survey,
        tag="surveys",
        summary="Get a survey",
        roles=READERS,
        replies={200: Reply(description="The survey", model=SurveyOut)},
        errors=(404,),
    ),
    Endpoint(
        method="PATCH",
        path="/v1/surveys/{survey_id}",
        handler=patch_survey,
        tag="surveys",
        summary="Change a survey (only the fields given; invitation replaces the whole invitation)",
        roles=WRITERS,
        body=SurveyPatch,
        replies={200: Reply(description="The survey", model=SurveyOut)},
        errors=(404,),
    ),
    Endpoint(
        method="DELETE",
        path="/v1/surveys/{survey_id}",
        handler=delete_survey,
        tag="surveys",
        summary="Archive a survey (its answers and reports stay)",
        roles=WRITERS,
        replies={204: Reply(description="Archived", content_type="")},
        errors=(404,),
    ),
    Endpoint(
        method="GET",
        path="/v1/surveys/{survey_id}/form",
        handler=survey_form,
        tag="surveys",
        summary="The survey's questions as the shopper's app shows them",
        roles=frozenset({Role.SHOPPER}),
        replies={200: Reply(description="The form", model=FormOut)},
        errors=(404,),
    ),
]
