"""Offer rules: where, when and to whom an offer applies, and the coupon it issues."""

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
from gateway.http.handlers import stores
from offers import models as offer_models
from offers import store as offers_store

WRITERS = frozenset({Role.ADMIN, Role.MANAGER})
READERS = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})

Text = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=200)]
Body = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=2000)]
MAX_PLACES = 1000
MAX_CAP_DAYS = 365


def _check_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or len(value) > 2000 or " " in value:
        raise ValueError("must be an http(s) URL of at most 2000 characters")
    return value


Url = Annotated[str, pydantic.AfterValidator(_check_url)]
Temp = Annotated[float, pydantic.Field(ge=-90, le=70, allow_inf_nan=False)]
FireWhenClosed = Annotated[
    bool,
    pydantic.Field(
        description="By default an offer is not sent while the store where it triggered is "
        "closed by its opening_hours (decision reason store_closed). true sends it at any "
        "hour, e.g. for an offer that invites the shopper back tomorrow."
    ),
]


class ScheduleIn(api.Model):
    starts_at: pydantic.AwareDatetime | None = None
    ends_at: pydantic.AwareDatetime | None = None
    weekly: stores.OpeningHours = None

    @pydantic.model_validator(mode="after")
    def _order(self) -> ScheduleIn:
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self


class WeatherIn(api.Model):
    conditions: Annotated[list[api.WEATHER], pydantic.Field(min_length=1)] | None = None
    min_temp_c: Temp | None = None
    max_temp_c: Temp | None = None

    @pydantic.model_validator(mode="after")
    def _sane(self) -> WeatherIn:
        if self.conditions is None and self.min_temp_c is None and self.max_temp_c is None:
            raise ValueError("give conditions, min_temp_c or max_temp_c (or leave weather out)")
        if (
            self.min_temp_c is not None
            and self.max_temp_c is not None
            and self.min_temp_c > self.max_temp_c
        ):
            raise ValueError("min_temp_c must not exceed max_temp_c")
        return self


Tag = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=64)]
Points = Annotated[int, pydantic.Field(ge=0, le=10**12)]


class AudienceIn(api.Model):
    tiers: Annotated[list[Tag], pydantic.Field(min_length=1, max_length=20)] | None = None
    min_points: Points | None = None
    max_points: Points | None = None
    tags: Annotated[list[Tag], pydantic.Field(min_length=1, max_length=100)] | None = None
    exclude_tags: Annotated[list[Tag], pydantic.Field(max_length=100)] = []

    @pydantic.model_validator(mode="after")
    def _range(self) -> AudienceIn:
        if (
            self.min_points is not None
            and self.max_points is not None
            and self.min_points > self.max_points
        ):
            raise ValueError("min_points must not exceed max_points")
        return self


class CapIn(api.Model):
    max: Annotated[int, pydantic.Field(ge=1, le=1000)]
    hours: Annotated[int, pydantic.Field(ge=1, le=MAX_CAP_DAYS * 24)] | None = None
    days: Annotated[int, pydantic.Field(ge=1, le=MAX_CAP_DAYS)] | None = None

    @pydantic.model_validator(mode="after")
    def _one_window(self) -> CapIn:
        if (self.hours is None) == (self.days is None):
            raise ValueError("give the window as exactly one of hours or days")
        return self

    @property
    def seconds(self) -> int:
        return (self.hours or 0) * 3600 + (self.days or 0) * 86400


class BudgetIn(api.Model):
    max_issued: Annotated[int, pydantic.Field(ge=1, le=10**9)] | None = None
    max_redeemed: Annotated[int, pydantic.Field(ge=1, le=10**9)] | None = None


class CouponIn(api.Model):
    discount: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=100)]
    valid_minutes: Annotated[int, pydantic.Field(ge=1, le=60 * 24 * 366)]
    barcode_format: Literal["qr", "pdf417", "aztec", "code128"] = "qr"
    discount_pct: Annotated[float, pydantic.Field(gt=0, le=100)] | None = None
    discount_amount: Annotated[float, pydantic.Field(gt=0, le=10**9)] | None = None


Channels = Annotated[
    list[Literal["inbox", "webpush", "wallet"]], pydantic.Field(min_length=1, max_length=3)
]
PlaceIds = Annotated[list[api.Id], pydantic.Field(max_length=MAX_PLACES)]


def _unique_channels(value: list[str] | None) -> list[str] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("each channel at most once")
    return value


class OfferCreate(api.Model):
    name: Text
    title: Text
    body: Body
    image_url: Url | None = None
    geofence_ids: PlaceIds = []
    store_ids: PlaceIds = []
    trigger: Literal["enter", "dwell", "journey"]
    schedule: ScheduleIn | None = None
    weather: WeatherIn | None = None
    audience: AudienceIn | None = None
    caps: Annotated[list[CapIn], pydantic.Field(max_length=10)] = []
    budget: BudgetIn | None = None
    priority: Annotated[int, pydantic.Field(ge=-1000, le=1000)] = 0
    holdout_pct: Annotated[float, pydantic.Field(ge=0, le=100)] = 0
    channels: Annotated[Channels, pydantic.AfterValidator(_unique_channels)]
    coupon: CouponIn
    status: Literal["active", "paused"] = "active"
    fire_when_closed: FireWhenClosed = False

    @pydantic.model_validator(mode="after")
    def _somewhere(self) -> OfferCreate:
        if not self.geofence_ids and not self.store_ids:
            raise ValueError("say where: give geofence_ids or store_ids")
        return self


class OfferPatch(api.Model):
    name: Text | None = None
    title: Text | None = None
    body: Body | None = None
    image_url: Url | None = None
    geofence_ids: PlaceIds | None = None
    store_ids: PlaceIds | None = None
    trigger: Literal["enter", "dwell", "journey"] | None = None
    schedule: ScheduleIn | None = None
    weather: WeatherIn | None = None
    audience: AudienceIn | None = None
    caps: Annotated[list[CapIn], pydantic.Field(max_length=10)] | None = None
    budget: BudgetIn | None = None
    priority: Annotated[int, pydantic.Field(ge=-1000, le=1000)] | None = None
    holdout_pct: Annotated[float, pydantic.Field(ge=0, le=100)] | None = None
    channels: Annotated[Channels, pydantic.AfterValidator(_unique_channels)] | None = None
    coupon: CouponIn | None = None
    status: Literal["active", "paused"] | None = None
    fire_when_closed: FireWhenClosed | None = None


def _schedule(o: offer_models.Offer) -> dict[str, Any] | None:
    if not (o.starts_at or o.ends_at or o.schedule is not None):
        return None
    return {
        "starts_at": o.starts_at.isoformat() if o.starts_at else None,
        "ends_at": o.ends_at.isoformat() if o.ends_at else None,
        "weekly": o.schedule,
    }


def _weather(o: offer_models.Offer) -> dict[str, Any] | None:
    if o.weather is None:
        return None
    return {
        "conditions": sorted(o.weather.conditions) if o.weather.conditions else None,
        "min_temp_c": o.weather.min_temp_c,
        "max_temp_c": o.weather.max_temp_c,
    }


def _audience(o: offer_models.Offer) -> dict[str, Any] | None:
    a = o.audience
    if a is None:
        return None
    return {
        "tiers": sorted(a.tiers) if a.tiers is not None else None,
        "min_points": a.min_points,
        "max_points": a.max_points,
        "tags": sorted(a.tags) if a.tags is not None else None,
        "exclude_tags": sorted(a.exclude_tags),
    }


class OfferOut(api.Out):
    id: str
    name: str
    title: str
    body: str
    image_url: str | None
    geofence_ids: list[str]
    store_ids: list[str]
    trigger: Literal["enter", "dwell", "journey"]
    status: Literal["active", "paused"]
    schedule: dict[str, Any] | None
    weather: dict[str, Any] | None
    audience: dict[str, Any] | None
    caps: list[dict[str, int]]
    budget: dict[str, int | None]
    priority: int
    holdout_pct: float
    channels: list[str]
    coupon: dict[str, Any]
    fire_when_closed: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, rec: offers_store.OfferRecord) -> OfferOut:
        o = rec.offer
        return cls.model_construct(
            id=str(o.id),
            name=o.name,
            title=o.title,
            body=o.body,
            image_url=o.image_url,
            geofence_ids=[str(i) for i in sorted(o.geofence_ids)],
            store_ids=[str(i) for i in sorted(o.store_ids)],
            trigger=o.trigger,
            status=o.status,
            schedule=_schedule(o),
            weather=_weather(o),
            audience=_audience(o),
            caps=[{"max": c.max, "seconds": c.seconds} for c in o.caps],
            budget={
                "max_issued": o.budget_issued,
                "max_redeemed": o.budget_redeemed,
                "issued": o.issued_count,
                "redeemed": o.redeemed_count,
            },
            priority=o.priority,
            holdout_pct=o.holdout_pct,
            channels=list(o.channels),
            coupon={
                "discount": o.coupon.discount,
                "valid_minutes": o.coupon.valid_minutes,
                "barcode_format": o.coupon.barcode_format,
                "discount_pct": o.coupon.discount_pct,
                "discount_amount": o.coupon.discount_amount,
            },
            fire_when_closed=o.fire_when_closed,
            created_at=rec.created_at,
            updated_at=rec.updated_at,
        )


class OfferList(api.Out):
    items: list[OfferOut]
    next_cursor: str | None


def _columns(req: OfferCreate | OfferPatch) -> dict[str, Any]:
    """The request's fields as offer columns (only those the request set, for a patch)."""
    given = req.model_fields_set
    out: dict[str, Any] = {}
    for name in (
        "name",
        "title",
        "body",
        "image_url",
        "trigger",
        "priority",
        "holdout_pct",
        "fire_when_closed",
    ):
        if name in given or isinstance(req, OfferCreate):
            out[name] = getattr(req, name)
    if "channels" in given or isinstance(req, OfferCreate):
        out["channels"] = req.channels
    for name in ("geofence_ids", "store_ids"):
        if name in given or isinstance(req, OfferCreate):
            out[name] = sorted(set(getattr(req, name) or []))
    if "status" in given or isinstance(req, OfferCreate):
        out["status"] = req.status
    if "schedule" in given or isinstance(req, OfferCreate):
        s = req.schedule
        out["starts_at"] = s.starts_at if s else None
        out["ends_at"] = s.ends_at if s else None
        out["schedule"] = s.weekly if s else None
    if "weather" in given or isinstance(req, OfferCreate):
        out["weather"] = req.weather.model_dump() if req.weather else None
    if "audience" in given or isinstance(req, OfferCreate):
        out["audience"] = req.audience.model_dump() if req.audience else None
    if "caps" in given or isinstance(req, OfferCreate):
        out["caps"] = [{"max": c.max, "seconds": c.seconds} for c in req.caps or []]
    if "budget" in given or isinstance(req, OfferCreate):
        out["budget_issued"] = req.budget.max_issued if req.budget else None
        out["budget_redeemed"] = req.budget.max_redeemed if req.budget else None
    if "coupon" in given or isinstance(req, OfferCreate):
        out["coupon"] = req.coupon.model_dump() if req.coupon else None
    return out


def _not_null(req: OfferPatch) -> None:
    for name in (
        "name",
        "title",
        "body",
        "trigger",
        "channels",
        "coupon",
        "status",
        "priority",
        "fire_when_closed",
    ):
        if name in req.model_fields_set and getattr(req, name) is None:
            raise errors.ValidationFailed("bad field", fields={name: "cannot be null"})


async def _scope(conn: Any, p: Principal, geofence_ids: list[int], store_ids: list[int]) -> Any:
    scope = await offers_store.resolve_scope(conn, p.merchant_id, geofence_ids, store_ids)
    if not p.can_reach_stores(set(scope)):
        raise errors.Forbidden(
            "this token is not scoped to every store the offer touches", code="out_of_scope"
        )
    return scope


def _check_budget_fits(values: dict[str, Any], current: offers_store.OfferRecord | None) -> None:
    if current is None:
        return
    issued = values.get("budget_issued", current.offer.budget_issued)
    redeemed = values.get("budget_redeemed", current.offer.budget_redeemed)
    if issued is not None and issued < current.offer.issued_count:
        raise errors.Conflict(
            f"{current.offer.issued_count} coupons were already issued; the budget cannot "
            "go below that",
            code="budget_below_usage",
        )
    if redeemed is not None and redeemed < current.offer.redeemed_count:
        raise errors.Conflict(
            f"{current.offer.redeemed_count} coupons were already redeemed; the budget "
            "cannot go below that",
            code="budget_below_usage",
        )


async def create_offer(request: web.Request) -> web.Response:
    p = api.principal(request)
    req = await api.body(request, OfferCreate)
    values = _columns(req)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        values["scope_store_ids"] = sorted(
            await _scope(conn, p, values["geofence_ids"], values["store_ids"])
        )
        rec = await offers_store.insert_offer(conn, p.merchant_id, values)
    return api.json(OfferOut.of(rec), status=201)


async def list_offers(request: web.Request) -> web.Response:
    p = api.principal(request)
    limit = paging.limit(request, 100, 1000)
    status = request.query.get("status")
    if status not in (None, "active", "paused"):
        raise errors.ValidationFailed(
            "bad query parameter", fields={"status": "must be active or paused"}
        )
    async with db.acquire(request.app[POOL]) as conn:
        recs = await offers_store.list_offers(
            conn,
            p.merchant_id,
            p.store_ids,
            status=status,
            after=paging.cursor(request),
            limit=limit,
        )
    items = [OfferOut.of(r) for r in recs]
    next_cursor = paging.next_cursor([i.id for i in items], limit)
    return api.json(OfferList.model_construct(items=items, next_cursor=next_cursor))


async def visible_offer(
    request: web.Request, conn: Any, *, lock: bool = False
) -> offers_store.OfferRecord:
    """The offer named in the path, if the token reaches all of its stores."""
    p = api.principal(request)
    rec = await offers_store.get_offer(
        conn, p.merchant_id, api.path_id(request, "offer_id"), lock=lock
    )
    if rec is None:
        raise errors.NotFound("no such offer")
    if not p.can_reach_stores(set(rec.scope_store_ids)):
        raise errors.Forbidden(
            "this token is not scoped to this offer's stores", code="out_of_scope"
        )
    return rec


async def get_offer(request: web.Request) -> web.Response:
    async with db.acquire(request.app[POOL]) as conn:
        rec = await visible_offer(request, conn)
    return api.json(OfferOut.of(rec))


async def _update(request: web.Request, changes: dict[str, Any]) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        current = await visible_offer(request, conn, lock=True)
        if "geofence_ids" in changes or "store_ids" in changes:
            fences = changes.get("geofence_ids", sorted(current.offer.geofence_ids))
            stores = changes.get("store_ids", sorted(current.offer.store_ids))
            if not fences and not stores:
                raise errors.ValidationFailed(
                    "say where: give geofence_ids or store_ids",
                    fields={"geofence_ids": "the offer would apply nowhere"},
                )
            changes["scope_store_ids"] = sorted(await _scope(conn, p, fences, stores))
        starts = changes.get("starts_at", current.offer.starts_at)
        ends = changes.get("ends_at", current.offer.ends_at)
        if starts and ends and starts >= ends:
            raise errors.ValidationFailed(
                "bad field", fields={"schedule": "starts_at must be before ends_at"}
            )
        _check_budget_fits(changes, current)
        rec = await offers_store.update_offer(conn, p.merchant_id, current.offer.id, changes)
    if rec is None:
        raise errors.NotFound("no such offer")
    return api.json(OfferOut.of(rec))


async def patch_offer(request: web.Request) -> web.Response:
    req = await api.body(request, OfferPatch)
    _not_null(req)
    return await _update(request, _columns(req))


async def pause_offer(request: web.Request) -> web.Response:
    return await _update(request, {"status": "paused"})


async def resume_offer(request: web.Request) -> web.Response:
    return await _update(request, {"status": "active"})


async def delete_offer(request: web.Request) -> web.Response:
    p = api.principal(request)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        rec = await visible_offer(request, conn, lock=True)
        await offers_store.archive_offer(conn, p.merchant_id, rec.offer.id)
    return web.Response(status=204)


ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/v1/offers",
        handler=create_offer,
        tag="offers",
        summary="Create an offer rule",
        description="Where (geofence_ids and/or store_ids), trigger (enter or dwell; journey: sent "
        "only by a lifecycle journey, /v1/journeys, and valid at its stores), when "
        "(schedule: validity period and weekly windows in the store's time zone), weather, "
        "audience, per-shopper caps, budget, priority, holdout and the coupon it issues. "
        "An offer is not sent while its store is closed by the store's opening_hours "
        "(reason store_closed) unless fire_when_closed is true. "
        f"Channels: {', '.join(offer_models.CHANNELS)}. A store-scoped key can only create "
        "offers on its stores.",
        roles=WRITERS,
        body=OfferCreate,
        replies={201: Reply(description="The offer", model=OfferOut)},
    ),
    Endpoint(
        method="GET",
        path="/v1/offers",
        handler=list_offers,
        tag="offers",
        summary="List offers (a store-scoped key sees the offers within its stores)",
        roles=READERS,
        replies={200: Reply(description="A page of offers", model=OfferList)},
        errors=(422,),
        parameters=(
            *paging.PAGING,
            {
                "name": "status",
                "in": "query",
                "required": False,
                "schema": {"enum": ["active", "paused"]},
            },
        ),
    ),
    Endpoint(
        method="GET",
        path="/v1/offers/{offer_id}",
        handler=get_offer,
        tag="offers",
        summary="Get an offer",
        roles=READERS,
        replies={200: Reply(description="The offer", model=OfferOut)},
        errors=(404,),
    ),
    Endpoint(
        method="PATCH",
        path="/v1/offers/{offer_id}",
        handler=patch_offer,
        tag="offers",
        summary="Change an offer (only the fields given; null clears an optional rule)",
        roles=WRITERS,
        body=OfferPatch,
        replies={200: Reply(description="The offer", model=OfferOut)},
        errors=(404, 409),
    ),
    Endpoint(
        method="POST",
        path="/v1/offers/{offer_id}/pause",
        handler=pause_offer,
        tag="offers",
        summary="Pause an offer: it decides nothing until resumed",
        roles=WRITERS,
        replies={200: Reply(description="The offer", model=OfferOut)},
        errors=(404,),
    ),
    Endpoint(
        method="POST",
        path="/v1/offers/{offer_id}/resume",
        handler=resume_offer,
        tag="offers",
        summary="Resume a paused offer",
        roles=WRITERS,
        replies={200: Reply(description="The offer", model=OfferOut)},
        errors=(404,),
    ),
    Endpoint(
        method="DELETE",
        path="/v1/offers/{offer_id}",
        handler=delete_offer,
        tag="offers",
        summary="Archive an offer (its coupons stay redeemable and its reports stay)",
        roles=WRITERS,
        replies={204: Reply(description="Archived", content_type="")},
        errors=(404,),
    ),
]
