"""Campaign reports for reviewers: an offer's funnel with uplift, and the redemption and
decision logs (cursor-paged JSON, or streamed CSV)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pydantic
from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.db import POOL
from gateway.http import api, errors, paging
from gateway.http.api import Endpoint, Reply
from gateway.http.handlers import offers, redemptions
from offers import report
from offers import store as offers_store
from offers.models import REASONS

READERS = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})
CSV_CHUNK = 64 * 1024


class Counts(api.Out):
    candidates: int
    eligible: int
    suppressed: dict[str, Any]
    sent: int
    delivered: int
    opened: int
    dismissed: int
    failed: int
    # {"total", "by_wallet": {"apple", "google"}, "removed": {"apple", "google"}}
    saved: dict[str, Any]
    redeemed: int
    rates: dict[str, float | None]
    holdout: dict[str, Any]


class Group(Counts):
    key: str


class FunnelOut(api.Out):
    offer_id: str
    from_: dt.date | None = pydantic.Field(alias="from")
    to: dt.date | None
    by: str | None
    funnel: Counts
    breakdown: list[Group]


def query_date(request: web.Request, name: str) -> dt.date | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise errors.ValidationFailed(
            "bad query parameter", fields={name: "must be a date such as 2026-11-24"}
        ) from None


async def offer_report(request: web.Request) -> web.Response:
    first = query_date(request, "from")
    last = query_date(request, "to")
    by = request.query.get("by")
    if by not in (None, "store", "channel", "day"):
        raise errors.ValidationFailed(
            "bad query parameter", fields={"by": "must be store, channel or day"}
        )
    async with db.acquire(request.app[POOL]) as conn:
        rec = await offers.visible_offer(request, conn)
        rows = await offers_store.funnel_rows(
            conn, rec.offer.id, first or dt.date.min, last or dt.date.max
        )
    p = api.principal(request)
    if p.store_ids is not None:
        rows = [r for r in rows if r["store_id"] in p.store_ids]
    total, breakdown = report.funnel(rows, by)  # type: ignore[arg-type]
    return api.json(
        {
            "offer_id": str(rec.offer.id),
            "from": first.isoformat() if first else None,
            "to": last.isoformat() if last else None,
            "by": by,
            "funnel": total,
            "breakdown": breakdown,
        }
    )


def _instant(request: web.Request, name: str) -> dt.datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise errors.ValidationFailed(
            "bad query parameter",
            fields={name: "must be an RFC 3339 time with an offset, e.g. 2026-11-24T08:00:00Z"},
        )
    return value


def _filter(request: web.Request) -> offers_store.LogFilter:
    p = api.principal(request)
    store_id = paging.query_id(request, "store_id", "not a store id")
    if store_id is not None:
        api.require_store(p, store_id)
    outcome = request.query.get("outcome")
    if outcome not in (None, "sent", "suppressed"):
        raise errors.ValidationFailed(
            "bad query parameter", fields={"outcome": "must be sent or suppressed"}
        )
    reason = request.query.get("reason")
    if reason is not None and reason not in REASONS:
        raise errors.ValidationFailed(
            "bad query parameter", fields={"reason": f"must be one of {', '.join(REASONS)}"}
        )
    status = request.query.get("status")
    if status not in (None, "active", "voided"):
        raise errors.ValidationFailed(
            "bad query parameter", fields={"status": "must be active or voided"}
        )
    return offers_store.LogFilter(
        merchant_id=p.merchant_id,
        offer_id=paging.query_id(request, "offer_id", "not an offer id"),
        store_id=store_id,
        store_ids=p.store_ids,
        since=_instant(request, "from"),
        until=_instant(request, "to"),
        outcome=outcome,
        reason=reason,
        status=status,
    )


def _format(request: web.Request) -> Literal["json", "csv"]:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise errors.ValidationFailed("bad query parameter", fields={"format": "json or csv"})
    return fmt  # type: ignore[return-value]


async def _stream_csv(
    request: web.Request,
    *,
    filename: str,
    query: str,
    args: Sequence[Any],
    header: Sequence[str],
    row: Callable[[Any], Sequence[Any]],
) -> web.StreamResponse:
    """Rows straight from a server-side cursor to the socket: memory stays flat."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
        }
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    async with db.acquire(request.app[POOL]) as conn, conn.transaction():
        # Before the first byte: a database failure here is still a clean 503.
        cursor = conn.cursor(query, *args, prefetch=500)
        if not await api.prepare_stream(request, response):
            return response
        async for record in cursor:
            writer.writerow(row(record))
            if buffer.tell() >= CSV_CHUNK:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


REDEMPTION_CSV = (
    "id",
    "redeemed_at",
    "offer_id",
    "store_id",
    "coupon_id",
    "code",
    "order_ref",
    "amount",
    "voided_at",
    "voided_by",
    "void_reason",
)


def _redemption_item(r: Any) -> dict[str, Any]:
    return redemptions.RedemptionOut.of(offers_store.Redemption.from_row(r)).model_dump()


DECISION_FIELDS = (
    "id",
    "decided_at",
    "offer_id",
    "shopper_id",
    "store_id",
    "geofence_id",
    "trigger",
    "outcome",
    "reason",
    "converted_at",
)


def _decision(r: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in DECISION_FIELDS:
        v = r[k]
        if isinstance(v, int):
            v = str(v)
        elif isinstance(v, dt.datetime):
            v = v.isoformat()
        out[k] = v
    return out


def _cell(value: Any) -> Any:
    """A CSV cell: empty for null, times as in the JSON answers."""
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, dt.datetime) else value


async def _log(
    request: web.Request,
    *,
    query_for: Callable[[offers_store.LogFilter, int, int | None], tuple[str, list[Any]]],
    item: Callable[[Any], dict[str, Any]],
    columns: Sequence[str],
    filename: str,
) -> web.StreamResponse:
    """One log endpoint: a cursor page as JSON, or everything as streamed CSV."""
    f = _filter(request)
    if _format(request) == "csv":
        query, args = query_for(f, 0, None)

        def row(r: Any) -> list[Any]:
            out = item(r)
            return [_cell(out[k]) for k in columns]

        return await _stream_csv(
            request, filename=filename, query=query, args=args, header=columns, row=row
        )
    limit = paging.limit(request, 100, 1000)
    query, args = query_for(f, paging.cursor(request), limit)
    async with db.acquire(request.app[POOL]) as conn:
        rows = await conn.fetch(query, *args)
    items = [item(r) for r in rows]
    return api.json(
        {"items": items, "next_cursor": paging.next_cursor([i["id"] for i in items], limit)}
    )


async def redemption_log(request: web.Request) -> web.StreamResponse:
    return await _log(
        request,
        query_for=offers_store.redemption_log_query,
        item=_redemption_item,
        columns=REDEMPTION_CSV,
        filename="redemptions.csv",
    )


async def decision_log(request: web.Request) -> web.StreamResponse:
    return await _log(
        request,
        query_for=offers_store.decision_log_query,
        item=_decision,
        columns=DECISION_FIELDS,
        filename="decisions.csv",
    )


class RedemptionLog(api.Out):
    items: list[redemptions.RedemptionOut]
    next_cursor: str | None


class DecisionOut(api.Out):
    id: str
    decided_at: dt.datetime
    offer_id: str
    shopper_id: str
    store_id: str
    geofence_id: str | None
    # enter or dwell for a ping's offers; exit or redemption for a survey's invitation,
    # recovery for a detractor's recovery offer (gateway/pingpath/surveying.py); referral:
    # a referral reward's coupon (offers/referrals.py), logged at a fence of the offer;
    # journey: a lifecycle journey's offer (gateway/jobs/journeys.py), at no fence.
    trigger: Literal["enter", "dwell", "exit", "redemption", "recovery", "referral", "journey"]
    outcome: Literal["sent", "suppressed"]
    reason: str | None
    converted_at: dt.datetime | None


class DecisionLog(api.Out):
    items: list[DecisionOut]
    next_cursor: str | None


CSV_SCHEMA = {"type": "string", "description": "CSV (RFC 4180) with a header row"}


def _q(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_LOG_FILTERS = (
    *paging.PAGING,
    _q("offer_id", {"type": "string"}),
    _q("store_id", {"type": "string"}),
    _q("from", {"type": "string", "format": "date-time"}),
    _q("to", {"type": "string", "format": "date-time"}),
    _q("format", {"enum": ["json", "csv"]}),
)

ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/reports/offers/{offer_id}",
        handler=offer_report,
        tag="reports",
        summary="An offer's funnel: candidates, eligible, suppressed by reason, sent, "
        "delivered, opened, saved to wallet, redeemed; the holdout comparison and uplift",
        description="Days are local to the store where things happened; from and to are "
        "inclusive dates. by=store|channel|day adds one funnel per group. The stages:\n\n"
        + "".join(f"- **{label}** (`{key}`): {text}.\n" for key, label, text in report.STAGES)
        + "\n`suppressed.not_eligible` counts the targeting reasons (candidates minus "
        "eligible), `suppressed.eligible_not_sent` the rest. sent ≥ delivered ≥ opened. "
        "`saved` gives `total`, `by_wallet` (`apple`, `google`) and `removed` by wallet.",
        roles=READERS,
        replies={200: Reply(description="The funnel", model=FunnelOut)},
        errors=(404, 422),
        parameters=(
            _q("from", {"type": "string", "format": "date"}),
            _q("to", {"type": "string", "format": "date"}),
            _q("by", {"enum": ["store", "channel", "day"]}),
        ),
    ),
    Endpoint(
        method="GET",
        path="/v1/logs/redemptions",
        handler=redemption_log,
        tag="reports",
        summary="The redemption log, filtered; ?format=csv streams all of it",
        description=f"CSV columns: {', '.join(REDEMPTION_CSV)}.",
        roles=READERS,
        replies={
            200: Reply(
                description="A page of redemptions, or with format=csv all of them as CSV",
                model=RedemptionLog,
                alternatives={"text/csv": CSV_SCHEMA},
            )
        },
        errors=(422,),
        parameters=(*_LOG_FILTERS, _q("status", {"enum": ["active", "voided"]})),
    ),
    Endpoint(
        method="GET",
        path="/v1/logs/decisions",
        handler=decision_log,
        tag="reports",
        summary="The decision log: every decision, sent or suppressed, with its reason",
        description=f"CSV columns: {', '.join(DECISION_FIELDS)}.",
        roles=READERS,
        replies={
            200: Reply(
                description="A page of decisions, or with format=csv all of them as CSV",
                model=DecisionLog,
                alternatives={"text/csv": CSV_SCHEMA},
            )
        },
        errors=(422,),
        parameters=(
            *_LOG_FILTERS,
            _q("outcome", {"enum": ["sent", "suppressed"]}),
            _q("reason", {"enum": list(REASONS)}),
        ),
    ),
]
