"""The points report for reviewers: points issued, spent, expired and outstanding per
month, and the program's liability (outstanding points at the point value)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

from aiohttp import web

from gateway import db
from gateway.accounts.auth import Role
from gateway.db import POOL
from gateway.http import api, errors
from gateway.http.api import Endpoint, Reply
from wallet import loyalty
from wallet.store import ledger as wallet_ledger
from wallet.store import till

READERS = frozenset({Role.ADMIN, Role.MANAGER, Role.REVIEWER})
_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")


class MonthOut(api.Out):
    month: str
    issued: int
    spent: int
    expired: int
    outstanding: int
    liability: str


class PointsReport(api.Out):
    point_value: str
    months: list[MonthOut]
    totals: dict[str, int | str]


def _month(request: web.Request, name: str) -> dt.date | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    m = _MONTH.match(raw)
    if m is None:
        raise errors.ValidationFailed("bad query parameter", fields={name: "a month: YYYY-MM"})
    return dt.date(int(m.group(1)), int(m.group(2)), 1)


def _liability(points: int, rules: loyalty.Rules) -> str:
    return format(loyalty.points_value(points, rules), "f")


CSV_HEADER = ("month", "issued", "spent", "expired", "outstanding", "liability")


async def points_report(request: web.Request) -> web.Response:
    p = api.principal(request)
    first, last = _month(request, "from"), _month(request, "to")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise errors.ValidationFailed("bad query parameter", fields={"format": "json or csv"})
    async with db.acquire(request.app[POOL]) as conn:
        rules = await wallet_ledger.rules(conn, p.merchant_id)
        months = await till.points_by_month(conn, p.merchant_id)
    # Outstanding is a running balance over every month; the window only picks rows.
    shown = [
        m
        for m in months
        if (first is None or m.month >= first) and (last is None or m.month <= last)
    ]
    rows = [
        MonthOut.model_construct(
            month=m.month.strftime("%Y-%m"),
            issued=m.issued,
            spent=m.spent,
            expired=m.expired,
            outstanding=m.outstanding,
            liability=_liability(m.outstanding, rules),
        )
        for m in shown
    ]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_HEADER)
        writer.writerows([getattr(r, k) for k in CSV_HEADER] for r in rows)
        return web.Response(
            text=buffer.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="points.csv"'},
        )
    outstanding = shown[-1].outstanding if shown else 0
    totals: dict[str, int | str] = {
        "issued": sum(m.issued for m in shown),
        "spent": sum(m.spent for m in shown),
        "expired": sum(m.expired for m in shown),
        "outstanding": outstanding,
        "liability": _liability(outstanding, rules),
    }
    return api.json(
        PointsReport.model_construct(
            point_value=format(Decimal(rules.point_value).normalize(), "f"),
            months=rows,
            totals=totals,
        )
    )


def _q(name: str, schema: dict[str, object]) -> dict[str, object]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


ENDPOINTS = [
    Endpoint(
        method="GET",
        path="/v1/reports/points",
        handler=points_report,
        tag="reports",
        summary="Points issued, spent, expired and outstanding per month, and the "
        "program's liability; ?format=csv for CSV",
        description="Months are UTC calendar months (YYYY-MM), from and to inclusive. issued: "
        "points earned and positive adjustments (a voided points payment gives its points "
        "back as one); spent: spends (rewards, points payments) and negative adjustments; "
        "expired: points expired; outstanding: the balance of every shopper at the month's "
        "end; liability: outstanding x point_value, in the program's currency. "
        f"CSV columns: {', '.join(CSV_HEADER)}.",
        roles=READERS,
        replies={
            200: Reply(
                description="The months with ledger entries, and their totals",
                model=PointsReport,
                alternatives={
                    "text/csv": {"type": "string", "description": "CSV with a header row"}
                },
            )
        },
        errors=(422,),
        parameters=(
            _q("from", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
            _q("to", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
            _q("format", {"enum": ["json", "csv"]}),
        ),
    ),
]
