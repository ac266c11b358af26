"""Lifecycle journeys: managers define when an offer goes out on time and behaviour (a
welcome, a win-back, a tier-up, a birthday, points about to expire); reviewers read each
journey's funnel and uplift (its offer's report) and what became of its occurrences."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors, paging
from gateway.http.api import Endpoint, Reply
from gateway.http.handlers import reports
from offers import journey_store, journeys, report
from offers import store as offers_store
from offers.journeys import Journey

WRITERS = frozenset({Role.ADMIN, Role.MANAGER})
READERS = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})

Name = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)]
Tier = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=64)]
DelayMinutes = Annotated[int, pydantic.Field(ge=0, le=525_600)]
InactiveDays = Annotated[int, pydantic.Field(ge=1, le=3650)]
DaysBefore = Annotated[int, pydantic.Field(ge=0, le=365)]
GraceMinutes = Annotated[int, pydantic.Field(ge=1, le=43_200)]

# The parameter each kind takes, and its default (None: required).
PARAMS: dict[str, tuple[str, int | None]] = {
    "welcome": ("delay_minutes", 60),
    "winback": ("inactive_days", None),
    "tier_up": ("tier", None),
    "birthday": ("days_before", 0),
    "points_expiring": ("days_before", 7),
}
PARAM_NAMES = ("delay_minutes", "inactive_days", "tier", "days_before")
DESCRIPTION = (
    "kind and its parameter: welcome (delay_minutes after enrolment, default 60), winback "
    "(inactive_days without a geofence entry or a transaction at a till), tier_up (tier: "
    "the first time the shopper reaches it from below), birthday (days_before, default 0: "
    "09:00 in the shopper's time zone, UTC when unset; once a year), points_expiring "
    "(days_before the loyalty program's points_expire_days run out on points still unused, "
    "default 7). offer_id: an offer with trigger journey (its content, coupon, channels, "
    "audience, caps, budget and holdout_pct apply), owned by this journey alone. "
    "grace_minutes (default 1440): an occurrence not sent within this long is recorded as "
    "occurrence_lapsed. A new or resumed journey starts from now: it never reaches back."
)


def _check_params(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """The kind's parameter (with its default), refusing the other kinds' ones."""
    wanted, default = PARAMS[kind]
    for name in PARAM_NAMES:
        if name != wanted and given.get(name) is not None:
            raise errors.ValidationFailed(
                "bad field", fields={name: f"does not apply to {kind} journeys"}
            )
    value = given.get(wanted, default)
    if value is None:
        raise errors.ValidationFailed(
            "bad field", fields={wanted: f"{kind} journeys need {wanted}"}
        )
    return {name: value if name == wanted else None for name in PARAM_NAMES}


class JourneyCreate(api.Model):
    name: Name
    kind: Literal["welcome", "winback", "tier_up", "birthday", "points_expiring"]
    offer_id: api.Id
    status: Literal["active", "paused"] = "active"
    delay_minutes: DelayMinutes | None = None
    inactive_days: InactiveDays | None = None
    tier: Tier | None = None
    days_before: DaysBefore | None = None
    grace_minutes: GraceMinutes = 1440


class JourneyPatch(api.Model):
    name: Name | None = None
    status: Literal["active", "paused"] | None = None
    delay_minutes: DelayMinutes | None = None
    inactive_days: InactiveDays | None = None
    tier: Tier | None = None
    days_before: DaysBefore | None = None
    grace_minutes: GraceMinutes | None = None


class JourneyOut(api.Out):
    id: str
    name: str
    kind: Literal["welcome", "winback", "tier_up", "birthday", "points_expiring"]
    offer_id: str
    status: Literal["active", "paused"]
    delay_minutes: int | None
    inactive_days: int | None
    tier: str | None
    days_before: int | None
    grace_minutes: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, j: Journey) -> JourneyOut:
        return cls.model_construct(
            id=str(j.id),
            name=j.name,
            kind=j.kind,
            offer_id=str(j.offer_id),
            status=j.status,
            delay_minutes=j.delay_minutes,
            inactive_days=j.inactive_days,
            tier=j.tier,
            days_before=j.days_before,
            grace_minutes=j.grace_minutes,
            created_at=j.created_at,
            updated_at=j.updated_at,
        )


class JourneyList(api.Out):
    items: list[JourneyOut]
    next_cursor: str | None


class JourneyReport(api.Out):
    journey: JourneyOut
    from_: dt.date | None = pydantic.Field(alias="from")
    to: dt.date | None
    by: str | None
    funnel: reports.Counts
    breakdown: list[reports.Group]
    runs: dict[str, dict[str, int]] = pydantic.Field(
        description="The journey's occurrences by state (pending, done, cancelled), then "
        "by outcome: sent, a decision reason (holdout, fatigue_capped, occurrence_lapsed...) "
        "or why it was cancelled (superseded: the shopper came back before a win-back; "
        "journey_stopped: the journey or its offer was paused)."
    )


class JourneyReports(api.Out):
    items: list[JourneyReport]


def _merchant_wide(request: web.Request) -> int:
    p = api.principal(request)
    api.require_merchant_wide(p, "journeys")
    return p.merchant_id


async def _journey_offer(conn: Any, merchant_id: int, offer_id: int) -> None:
    rec = await offers_store.get_offer(conn, merchant_id, offer_id)
    if rec is None:
        raise errors.ValidationFailed("bad field", fields={"offer_id": "no such offer"})
    if rec.offer.trigger != "journey":
        raise errors.ValidationFailed(
            "bad field",
            fields={"offer_id": "must be an offer with trigger journey (never sent on a ping)"},
        )


async def create_journey(request: web.Request) -> web.Response:
    merchant_id = _merchant_wide(request)
    req = await api.body(request, JourneyCreate)
    values = {
        "name": req.name,
        "kind": req.kind,
        "offer_id": req.offer_id,
        "status": req.status,
        "grace_minutes": req.grace_minutes,
        **_check_params(req.kind, req.model_dump(include=set(PARAM_NAMES), exclude_none=True)),
    }
    now = request.app[CLOCK].now()
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        await _journey_offer(conn, merchant_id, req.offer_id)
        journey = await journey_store.insert_journey(conn, merchant_id, values, now)
    return api.json(JourneyOut.of(journey), status=201)


async def list_journeys(request: web.Request) -> web.Response:
    merchant_id = _merchant_wide(request)
    limit = paging.limit(request, 100, 1000)
    async with db.acquire(request.app[POOL]) as conn:
        found = await journey_store.list_journeys(
            conn, merchant_id, after=paging.cursor(request), limit=limit
        )
    items = [JourneyOut.of(j) for j in found]
    return api.json(
        JourneyList.model_construct(
            items=items, next_cursor=paging.next_cursor([i.id for i in items], limit)
        )
    )


async def _visible(request: web.Request, conn: Any, *, lock: bool = False) -> Journey:
    merchant_id = _merchant_wide(request)
    journey_id = api.path_id(request, "journey_id")
    journey = await journey_store.get_journey(conn, merchant_id, journey_id, lock=lock)
    if journey is None:
        raise errors.NotFound("no such journey")
    return journey


async def get_journey(request: web.Request) -> web.Response:
    async with db.acquire(request.app[POOL]) as conn:
        journey = await _visible(request, conn)
    return api.json(JourneyOut.of(journey))


async def patch_journey(request: web.Request) -> web.Response:
    req = await api.body(request, JourneyPatch)
    for name in ("name", "status", "grace_minutes"):
        if name in req.model_fields_set and getattr(req, name) is None:
            raise errors.ValidationFailed("bad field", fields={name: "cannot be null"})
    changes = req.model_dump(include=req.model_fields_set)
    now = request.app[CLOCK].now()
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        current = await _visible(request, conn, lock=True)
        params = {n: changes[n] for n in PARAM_NAMES if n in changes}
        if params:
            merged = {n: getattr(current, n) for n in PARAM_NAMES} | params
            wanted = PARAMS[current.kind][0]
            changes |= _check_params(current.kind, {wanted: merged[wanted], **params})
        journey = await journey_store.update_journey(conn, current, changes, now)
    if journey is None:
        raise errors.NotFound("no such journey")
    return api.json(JourneyOut.of(journey))


async def delete_journey(request: web.Request) -> web.Response:
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        journey = await _visible(request, conn, lock=True)
        await journey_store.archive_journey(conn, journey.merchant_id, journey.id)
    return web.Response(status=204)


async def _report(
    conn: Any, journey: Journey, first: dt.date | None, last: dt.date | None, by: str | None
) -> dict[str, Any]:
    rows = await offers_store.funnel_rows(
        conn, journey.offer_id, first or dt.date.min, last or dt.date.max
    )
    total, breakdown = report.funnel(rows, by)  # type: ignore[arg-type]
    return {
        "journey": JourneyOut.of(journey).model_dump(),
        "from": first.isoformat() if first else None,
        "to": last.isoformat() if last else None,
        "by": by,
        "funnel": total,
        "breakdown": breakdown,
        "runs": await journey_store.run_counts(conn, journey.id),
    }


def _range(request: web.Request) -> tuple[dt.date | None, dt.date | None]:
    return reports.query_date(request, "from"), reports.query_date(request, "to")


async def journey_report(request: web.Request) -> web.Response:
    first, last = _range(request)
    by = request.query.get("by")
    if by not in (None, "store", "channel", "day"):
        raise errors.ValidationFailed(
            "bad query parameter", fields={"by": "must be store, channel or day"}
        )
    async with db.acquire(request.app[POOL]) as conn:
        journey = await _visible(request, conn)
        out = await _report(conn, journey, first, last, by)
    return api.json(out)


async def journey_reports(request: web.Request) -> web.Response:
    merchant_id = _merchant_wide(request)
    first, last = _range(request)
    items = []
    async with db.acquire(request.app[POOL]) as conn:
        # At most a few dozen journeys per program: one page covers them.
        for journey in await journey_store.list_journeys(conn, merchant_id, after=0, limit=1000):
            items.append(await _report(conn, journey, first, last, None))
    return api.json({"items": items})


def _q(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_RANGE = (
    _q("from", {"type": "string", "format": "date"}),
    _q("to", {"type": "string", "format": "date"}),
)
_PATH = "/v1/journeys/{journey_id}"
KIND_WORDS = ", ".join(journeys.KINDS)

ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/v1/journeys",
        handler=create_journey,
        tag="journeys",
        summary=f"Create a lifecycle journey ({KIND_WORDS})",
        description=DESCRIPTION + " Journeys are merchant-wide: a store-scoped key gets 403.",
        roles=WRITERS,
        body=JourneyCreate,
        replies={201: Reply(description="The journey", model=JourneyOut)},
        errors=(409,),
    ),
    Endpoint(
        method="GET",
        path="/v1/journeys",
        handler=list_journeys,
        tag="journeys",
        summary="List the journeys",
        roles=READERS,
        replies={200: Reply(description="A page of journeys", model=JourneyList)},
        errors=(422,),
        parameters=paging.PAGING,
    ),
    Endpoint(
        method="GET",
        path=_PATH,
        handler=get_journey,
        tag="journeys",
        summary="Get a journey",
        roles=READERS,
        replies={200: Reply(description="The journey", model=JourneyOut)},
        errors=(404,),
    ),
    Endpoint(
        method="PATCH",
        path=_PATH,
        handler=patch_journey,
        tag="journeys",
        summary="Change a journey's name, status, parameter or grace (not its kind or offer)",
        description="Pausing stops it finding and sending; resuming starts again from now.",
        roles=WRITERS,
        body=JourneyPatch,
        replies={200: Reply(description="The journey", model=JourneyOut)},
        errors=(404,),
    ),
    Endpoint(
        method="DELETE",
        path=_PATH,
        handler=delete_journey,
        tag="journeys",
        summary="Archive a journey (its pending occurrences are cancelled; its report stays)",
        roles=WRITERS,
        replies={204: Reply(description="Archived", content_type="")},
        errors=(404,),
    ),
    Endpoint(
        method="GET",
        path="/v1/reports/journeys",
        handler=journey_reports,
        tag="reports",
        summary="Every journey's funnel (sent, opened, redeemed) and holdout uplift",
        roles=READERS,
        replies={200: Reply(description="One report per journey", model=JourneyReports)},
        errors=(422,),
        parameters=_RANGE,
    ),
    Endpoint(
        method="GET",
        path="/v1/reports/journeys/{journey_id}",
        handler=journey_report,
        tag="reports",
        summary="A journey's funnel, holdout uplift and occurrences",
        description="The funnel and uplift are its offer's (GET /v1/reports/offers/{id}): "
        "the offer is the journey's own.",
        roles=READERS,
        replies={200: Reply(description="The report", model=JourneyReport)},
        errors=(404, 422),
        parameters=(*_RANGE, _q("by", {"enum": ["store", "channel", "day"]})),
    ),
]
