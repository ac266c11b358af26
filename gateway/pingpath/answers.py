"""What a processed ping leaves behind: its ping log row, its answer as the API gives it,
and the record of that answer that a resend of the ping (same client id) is given."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

from gateway.pingpath import offering
from geo import store as geo_store
from geo.models import Transition

if TYPE_CHECKING:
    import datetime as dt


class PingLike(Protocol):
    """What the ping path reads of a ping: a `Ping`, or an upload decoded straight into
    objects with the same attributes (a batch is mostly its pings' objects)."""

    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...
    @property
    def accuracy_m(self) -> float: ...
    @property
    def ts(self) -> dt.datetime: ...
    @property
    def speed_mps(self) -> float | None: ...
    @property
    def weather_condition(self) -> str | None: ...
    @property
    def temp_c(self) -> float | None: ...
    @property
    def id(self) -> uuid.UUID | None: ...


class Result(Protocol):
    """A ping's result (`pings.PingResult`)."""

    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def transitions(self) -> Sequence[Transition]: ...


class Request(Protocol):
    """Whose pings, and when they were received (`pings._Request`)."""

    @property
    def merchant_id(self) -> int: ...
    @property
    def shopper_id(self) -> int: ...
    @property
    def pings(self) -> Sequence[PingLike]: ...
    @property
    def now(self) -> dt.datetime: ...


def transitions_json(transitions: Sequence[Transition]) -> list[dict[str, Any]]:
    """Transitions as the API answers them."""
    return [
        {
            "geofence_id": str(t.fence_id),
            "store_id": str(t.store_id) if t.store_id is not None else None,
            "event": t.event,
            "at": t.at.isoformat(),
        }
        for t in transitions
    ]


def of(
    pings: Sequence[PingLike],
    results: Sequence[Result],
    moments: Sequence[offering.Moment],
) -> dict[uuid.UUID, dict[str, Any]]:
    """Each recorded ping with a client id: the answer a resend of it gets."""
    offers: dict[int, list[dict[str, object]]] = {}
    for m in moments:
        offers.setdefault(m.owner, []).extend(s.as_json() for s in m.sent)
    return {
        ping.id: {
            "status": result.status,
            "reason": result.reason,
            "transitions": transitions_json(result.transitions),
            "offers": offers.get(i, []),
        }
        for i, (ping, result) in enumerate(zip(pings, results, strict=True))
        if ping.id is not None and result.status != "rejected"
    }


async def record(
    conn: asyncpg.Connection,
    request: Request,
    results: Sequence[Result],
    moments: Sequence[offering.Moment],
) -> None:
    """Record the answers of the request's pings that carry a client id, and log the
    request's pings, in the caller's transaction (which took `geo_store.share_ping_log`
    first).

    Logged here rather than through the spool: a receipt committed without its ping's
    log row (a process killed between the two) would answer the resend from the receipt
    and the ping would never be logged. Together, both are kept or neither is, and the
    resend is then processed as new.
    """
    answers = of(request.pings, results, moments)
    if answers:
        await geo_store.record_receipts(
            conn,
            merchant_id=request.merchant_id,
            shopper_id=request.shopper_id,
            received_at=request.now,
            answers=answers,
        )
    await geo_store.write_pings(conn, log_rows(request, results), shared=True)


def log_rows(request: Request, results: Sequence[Result]) -> list[geo_store.PingRecord]:
    """The ping log rows of the recorded pings (all but the rejected ones)."""
    merchant_id, shopper_id, pings, now = (
        request.merchant_id,
        request.shopper_id,
        request.pings,
        request.now,
    )
    new = tuple.__new__  # PingRecord's own constructor costs more than the row
    return [
        new(
            geo_store.PingRecord,
            (
                merchant_id,
                shopper_id,
                ping.ts,
                now,
                ping.lat,
                ping.lon,
                ping.accuracy_m,
                ping.speed_mps,
                ping.weather_condition,
                ping.temp_c,
                "ok" if result.status == "accepted" else str(result.reason),
                len(result.transitions),
            ),
        )
        for ping, result in zip(pings, results, strict=True)
        if result.status != "rejected"
    ]
