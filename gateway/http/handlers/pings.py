"""Shopper pings: where the app is, how sure it is, and what the weather is doing."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from typing import Annotated, Literal, TypeVar

import msgspec
import pydantic
from aiohttp import web

from gateway import metrics
from gateway.accounts.auth import Role
from gateway.clock import CLOCK
from gateway.db import POOL
from gateway.http import api, errors
from gateway.http.api import Endpoint, Reply
from gateway.http.ratelimit import PING_LIMITER
from gateway.pingpath import answers, pings
from gateway.pingpath.geoindex import GEO_INDEX
from gateway.pingpath.pings import PINGS
from gateway.settings import SETTINGS

MAX_BATCH = 500


class Weather(api.Model):
    condition: api.WEATHER
    temp_c: Annotated[float, pydantic.Field(ge=-90, le=70, allow_inf_nan=False)]


class PingIn(api.Model):
    lat: Annotated[float, pydantic.Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, pydantic.Field(ge=-180, le=180, allow_inf_nan=False)]
    accuracy_m: Annotated[
        float,
        pydantic.Field(gt=0, le=100_000, allow_inf_nan=False, description="68% radius, metres"),
    ]
    ts: pydantic.AwareDatetime = pydantic.Field(description="When the fix was taken (RFC 3339)")
    speed_mps: Annotated[float, pydantic.Field(ge=0, le=1000, allow_inf_nan=False)] | None = None
    weather: Weather | None = None
    id: uuid.UUID | None = pydantic.Field(
        None,
        description="The app's own id of this fix (a UUID). A ping whose id this shopper "
        "already sent within GATEWAY_PING_RETENTION_DAYS is neither logged nor processed "
        "again: it gets the answer the first attempt got, coupon included.",
    )


class PingBatchIn(api.Model):
    pings: Annotated[list[PingIn], pydantic.Field(min_length=1, max_length=MAX_BATCH)]


# The batch body decoded by msgspec, with the same limits as PingBatchIn (which stays the
# documented schema and gives the error answers): a batch is mostly decoding.
class _WireWeather(msgspec.Struct, forbid_unknown_fields=True):
    condition: api.WEATHER
    temp_c: Annotated[float, msgspec.Meta(ge=-90, le=70)]


class _WirePing(msgspec.Struct, forbid_unknown_fields=True):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    accuracy_m: Annotated[float, msgspec.Meta(gt=0, le=100_000)]
    ts: Annotated[dt.datetime, msgspec.Meta(tz=True)]
    speed_mps: Annotated[float, msgspec.Meta(ge=0, le=1000)] | None = None
    weather: _WireWeather | None = None
    id: uuid.UUID | None = None

    # What pings.PingLike reads: the service takes these objects as they come.
    @property
    def weather_condition(self) -> str | None:
        return None if self.weather is None else self.weather.condition

    @property
    def temp_c(self) -> float | None:
        return None if self.weather is None else self.weather.temp_c


class _WireBatch(msgspec.Struct, forbid_unknown_fields=True):
    pings: Annotated[list[_WirePing], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


_BATCH = msgspec.json.Decoder(_WireBatch)
_ONE = msgspec.json.Decoder(_WirePing)
# A time with more than six digits of a second: msgspec rounds them, pydantic truncates.
_SUB_MICROSECOND = re.compile(rb"\d:\d\d\.\d{7}")
W = TypeVar("W", _WireBatch, _WirePing)


def _wire(raw: bytes, decoder: msgspec.json.Decoder[W]) -> W | None:
    """msgspec's reading of a body; None when it refuses it or might read it otherwise
    than pydantic: the documented model then reads it, and gives the one error answer.
    tests/gateway/test_ping_body.py fuzzes the single ping's two readings against each
    other."""
    if _SUB_MICROSECOND.search(raw):
        return None
    try:
        return decoder.decode(raw)
    except msgspec.MsgspecError:
        return None


def _batch(raw: bytes) -> Sequence[pings.PingLike]:
    """The pings of a batch body."""
    wire = _wire(raw, _BATCH)
    if wire is not None:
        found: Sequence[pings.PingLike] = wire.pings
        return found
    return [_ping(p) for p in api.parse(raw, PingBatchIn).pings]


def decode_ping(raw: bytes) -> pings.PingLike:
    """The ping of a POST /v1/pings body: on the hot path, straight from the bytes."""
    wire = _wire(raw, _ONE)
    return wire if wire is not None else _ping(api.parse(raw, PingIn))


class TransitionOut(api.Out):
    geofence_id: str
    store_id: str | None
    event: Literal["enter", "dwell", "exit"]
    at: dt.datetime


class CouponOut(api.Out):
    id: str
    code: str = pydantic.Field(description="Human-typeable, with a check symbol")
    expires_at: dt.datetime


class SentOfferOut(api.Out):
    offer_id: str
    delivery_id: str
    coupon: CouponOut


class PingOut(api.Out):
    status: Literal["accepted", "flagged", "ignored"]
    reason: str | None
    transitions: list[TransitionOut]
    offers: list[SentOfferOut]


class PingItemOut(api.Out):
    status: Literal["accepted", "flagged", "ignored", "rejected"]
    reason: str | None
    transitions: list[TransitionOut]


class PingBatchOut(api.Out):
    results: list[PingItemOut]
    transitions: list[TransitionOut]
    offers: list[SentOfferOut]


def _ping(p: PingIn) -> pings.Ping:
    return pings.Ping(
        lat=p.lat,
        lon=p.lon,
        accuracy_m=p.accuracy_m,
        ts=p.ts,
        speed_mps=p.speed_mps,
        weather_condition=p.weather.condition if p.weather else None,
        temp_c=p.weather.temp_c if p.weather else None,
        id=p.id,
    )


def _rate_limit(request: web.Request, shopper_id: int) -> None:
    buckets = request.app[PING_LIMITER]
    wait = buckets.take(shopper_id)
    if wait:
        raise errors.RateLimited(
            f"too many pings; this shopper may send {buckets.rate:g} per second "
            f"(bursts of {buckets.burst})",
            headers={"Retry-After": buckets.retry_after(wait)},
        )


async def _process(
    request: web.Request, items: Sequence[pings.PingLike], *, batch: bool
) -> pings.Outcome:
    p = api.principal(request)
    assert p.shopper_id is not None
    app = request.app
    return await app[PINGS].handle(
        app[POOL],
        app[GEO_INDEX].index,
        merchant_id=p.merchant_id,
        shopper_id=p.shopper_id,
        pings=items,
        now=app[CLOCK].now(),
        batched=batch,
    )


async def post_ping(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    _rate_limit(request, p.shopper_id)
    raw = await api.read_body(request, limit=request.app[SETTINGS].max_body_bytes)
    outcome = await _process(request, [decode_ping(raw)], batch=False)
    result = outcome.results[0]
    # Out-of-window timestamps are refused outright (nothing was recorded).
    if result.reason == "future":
        raise errors.ValidationFailed(
            "the ping's timestamp is in the future; check the device clock",
            fields={"ts": "in the future"},
        )
    if result.reason == "too_old":
        limit = request.app[PINGS].spoof_config.max_age_s
        raise errors.ValidationFailed(
            f"the ping is older than the accepted window of {limit:g} s",
            fields={"ts": "too old"},
        )
    if result.replay is not None:
        return api.json(result.replay)  # a resend: what the first attempt answered
    return api.json(
        {
            "status": result.status,
            "reason": result.reason,
            # All of them: a visit that timed out exits at its last sighting, not now.
            "transitions": answers.transitions_json(outcome.transitions),
            "offers": [s.as_json() for s in outcome.sent],
        }
    )


async def post_ping_batch(request: web.Request) -> web.Response:
    p = api.principal(request)
    assert p.shopper_id is not None
    _rate_limit(request, p.shopper_id)
    raw = await api.read_body(request, limit=request.app[SETTINGS].max_body_bytes)
    batch = _batch(raw)
    metrics.batch_received(len(batch))
    outcome = await _process(request, batch, batch=True)
    transitions = answers.transitions_json(outcome.transitions)
    offers = [s.as_json() for s in outcome.sent]
    results = []
    for r in outcome.results:
        if r.replay is None:
            results.append(
                {
                    "status": r.status,
                    "reason": r.reason,
                    "transitions": answers.transitions_json(r.transitions),
                }
            )
            continue
        # A resend: its answer, transitions and offers as its first attempt got them.
        replay = r.replay
        results.append(
            {k: replay[k] for k in ("status", "reason", "transitions")},
        )
        transitions += replay["transitions"]
        offers += replay["offers"]
    return api.json({"results": results, "transitions": transitions, "offers": offers})


_LIMITS = (
    "Each shopper may send GATEWAY_PING_RATE requests per second (default 2) with bursts "
    "of GATEWAY_PING_BURST (default 20), per gateway process; beyond that, 429 with "
    "Retry-After."
)

ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/v1/pings",
        handler=post_ping,
        tag="pings",
        summary="Report where the shopper is; answers the geofence transitions and offers",
        description="Entry counts when the point is within accuracy_m of a geofence; exit "
        "needs two consecutive pings clearly outside; dwell fires after "
        "GATEWAY_DWELL_SECONDS inside. A ping less accurate than GATEWAY_MAX_ACCURACY_M is "
        "recorded but triggers nothing (status ignored); one that implies impossible travel "
        "is recorded and flagged. A timestamp in the future or older than the accepted "
        "window is refused with 422. " + _LIMITS,
        roles=frozenset({Role.SHOPPER}),
        body=PingIn,
        replies={200: Reply(description="What the ping caused", model=PingOut)},
        errors=(429,),
    ),
    Endpoint(
        method="POST",
        path="/v1/pings/batch",
        handler=post_ping_batch,
        tag="pings",
        summary="Report pings the app buffered while offline (processed in ts order)",
        description=f"Up to {MAX_BATCH} pings. Each gets its own result; pings outside the "
        "accepted time window are rejected individually and not recorded. " + _LIMITS,
        roles=frozenset({Role.SHOPPER}),
        body=PingBatchIn,
        replies={200: Reply(description="Per-ping results, in the order sent", model=PingBatchOut)},
        errors=(429,),
    ),
]
