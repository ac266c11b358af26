"""The decision preview: which offers a ping entering at a point would fire, and why not."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import pydantic
from aiohttp import web

from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api
from gateway.http.api import Endpoint, Reply
from gateway.http.handlers import offers as offer_handlers
from gateway.http.handlers import pings as ping_handlers
from gateway.pingpath import pings as pingpath
from gateway.pingpath import preview
from gateway.pingpath.geoindex import GEO_INDEX
from gateway.pingpath.pings import PINGS
from offers import models as offer_models


class ShopperIn(api.Model):
    tier: offer_handlers.Tag | None = None
    points: offer_handlers.Points = 0
    tags: Annotated[list[offer_handlers.Tag], pydantic.Field(max_length=100)] = []
    marketing_consent: bool = pydantic.Field(
        default=True, description="False previews a shopper who refused marketing"
    )
    timezone: api.TimeZone | None = pydantic.Field(
        default=None, description="For quiet hours; the store's when not given"
    )


class PreviewIn(api.Model):
    lat: Annotated[float, pydantic.Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, pydantic.Field(ge=-180, le=180, allow_inf_nan=False)]
    accuracy_m: Annotated[
        float,
        pydantic.Field(gt=0, le=100_000, allow_inf_nan=False, description="68% radius, metres"),
    ] = 10.0
    at: pydantic.AwareDatetime | None = pydantic.Field(
        default=None, description="The moment of the ping (RFC 3339); now when not given"
    )
    weather: ping_handlers.Weather | None = None
    shopper: ShopperIn = ShopperIn()
    trigger: Literal["enter", "dwell"] = pydantic.Field(
        default="enter",
        description="enter: the ping that opens a visit; dwell: the ping that completes a "
        "dwell (the shopper entered GATEWAY_DWELL_SECONDS earlier)",
    )


class PreviewFenceOut(api.Out):
    geofence_id: str
    store_id: str
    inside: bool = pydantic.Field(description="The point is within the fence")
    distance_m: float = pydantic.Field(description="From the point to the fence, 0 inside")
    enters: bool = pydantic.Field(
        description="Within the ping's accuracy: a ping there opens a visit (fences farther "
        "out, within the exit reach, only keep an open visit going)"
    )


class PreviewOfferOut(api.Out):
    offer_id: str
    name: str
    title: str
    store_id: str
    geofence_id: str
    trigger: Literal["enter", "dwell"]
    priority: int
    fires: bool
    reason: offer_models.Reason | None = pydantic.Field(
        description="Why it would not fire (the first rule it fails, as a real ping records "
        "it); null when it fires"
    )
    holdout_pct: float = pydantic.Field(
        description="Not drawn in a preview: this share of real shoppers would be held out"
    )


class PreviewOut(api.Out):
    at: dt.datetime
    status: Literal["accepted", "ignored"] = pydantic.Field(
        description="ignored: the accuracy is worse than GATEWAY_MAX_ACCURACY_M, so a real "
        "ping would match no fence"
    )
    reason: Literal["poor_accuracy"] | None
    fences: list[PreviewFenceOut]
    offers: list[PreviewOfferOut]


async def preview_offers(request: web.Request) -> web.Response:
    p = api.principal(request)
    req = await api.body(request, PreviewIn)
    app = request.app
    at = req.at or app[CLOCK].now()
    ping = pingpath.Ping(
        lat=req.lat,
        lon=req.lon,
        accuracy_m=req.accuracy_m,
        ts=at,
        weather_condition=req.weather.condition if req.weather else None,
        temp_c=req.weather.temp_c if req.weather else None,
    )
    s = req.shopper
    result = await preview.preview(
        app[POOL],
        app[GEO_INDEX].index,
        app[PINGS],
        merchant_id=p.merchant_id,
        ping=ping,
        profile=preview.Profile(
            tier=s.tier,
            points=s.points,
            tags=frozenset(s.tags),
            marketing_consent=s.marketing_consent,
            timezone=s.timezone,
        ),
        trigger=req.trigger,
    )
    # A store-scoped key sees its stores' fences, and the offers within its stores.
    fences = [f for f in result.fences if p.can_reach_store(f.store_id)]
    verdicts = [
        v
        for v in result.verdicts
        if p.can_reach_store(v.decision.store_id) and p.can_reach_stores(v.offer.scope_store_ids)
    ]
    return api.json(
        {
            "at": at.isoformat(),
            "status": result.status,
            "reason": result.reason,
            "fences": [
                {
                    "geofence_id": str(f.fence_id),
                    "store_id": str(f.store_id),
                    "inside": f.distance_m == 0,
                    "distance_m": round(f.distance_m, 1),
                    "enters": f.enters,
                }
                for f in fences
            ],
            "offers": [
                {
                    "offer_id": str(v.offer.id),
                    "name": v.offer.name,
                    "title": v.offer.title,
                    "store_id": str(v.decision.store_id),
                    "geofence_id": str(v.decision.fence_id),
                    "trigger": v.offer.trigger,
                    "priority": v.offer.priority,
                    "fires": v.fires,
                    "reason": v.decision.reason,
                    "holdout_pct": v.holdout_pct,
                }
                for v in verdicts
            ],
        }
    )


ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/v1/offers/preview",
        handler=preview_offers,
        tag="offers",
        summary="Preview the decision: which offers a ping entering here would fire, and why not",
        description="Runs what a real ping runs (the fence index, the enter/dwell rules, the "
        "offer candidates and the decision engine) for a hypothetical shopper with the given "
        "profile, at the given time and weather, and answers one entry per candidate offer "
        "with its reason code when it would not fire (the codes a real ping records: "
        f"{', '.join(offer_models.REASONS)}). Nothing is sent, written or logged: no decision, "
        "coupon or delivery, no cap or budget used. The hypothetical shopper has no history, "
        "so per-shopper caps and the daily cap count zero sends; budgets use their current "
        "counts. Holdout is not drawn: an offer that passes every rule is reported as firing, "
        "with holdout_pct, the share of real shoppers it would be held out for. Paused, "
        "archived and ended offers are not candidates and are not listed. A store-scoped key "
        "sees only its stores' fences and offers.",
        roles=offer_handlers.READERS,
        body=PreviewIn,
        replies={
            200: Reply(
                description="The fences in reach and the offers considered", model=PreviewOut
            )
        },
    ),
]
