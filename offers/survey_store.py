"""SQL access for surveys, their invitations and responses, and the NPS counts.

Functions take a connection inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from geo import sql
from offers import surveys

_Q = sql.load("offers", "surveys.sql")

# The columns a survey write sets, in the order of update_survey's $3 onwards.
SURVEY_FIELDS = (
    "name",
    "nps_question",
    "questions",
    "trigger",
    "store_ids",
    "delay_minutes",
    "points",
    "status",
    "recovery_offer_id",
)


def survey_from_row(row: Any) -> surveys.Survey:
    return surveys.Survey(
        id=row["id"],
        merchant_id=row["merchant_id"],
        name=row["name"],
        nps_question=row["nps_question"],
        questions=tuple(surveys.Question.from_json(q) for q in row["questions"]),
        trigger=row["trigger"],
        store_ids=frozenset(row["store_ids"]),
        delay_minutes=row["delay_minutes"],
        points=row["points"],
        status=row["status"],
        offer_id=row["offer_id"],
        recovery_offer_id=row["recovery_offer_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def insert_survey(
    conn: asyncpg.Connection, merchant_id: int, offer_id: int, values: Mapping[str, Any]
) -> surveys.Survey:
    row = await conn.fetchrow(
        _Q["insert_survey"],
        merchant_id,
        values["name"],
        values["nps_question"],
        values["questions"],
        values["trigger"],
        values["store_ids"],
        values["delay_minutes"],
        values["points"],
        values["status"],
        offer_id,
        values["recovery_offer_id"],
    )
    assert row is not None
    return survey_from_row(row)


async def get_survey(
    conn: asyncpg.Connection, merchant_id: int, survey_id: int, *, lock: bool = False
) -> surveys.Survey | None:
    row = await conn.fetchrow(_Q["lock_survey" if lock else "get_survey"], merchant_id, survey_id)
    return None if row is None else survey_from_row(row)


async def update_survey(
    conn: asyncpg.Connection, merchant_id: int, survey_id: int, values: Mapping[str, Any]
) -> surveys.Survey | None:
    row = await conn.fetchrow(
        _Q["update_survey"], merchant_id, survey_id, *[values[f] for f in SURVEY_FIELDS]
    )
    return None if row is None else survey_from_row(row)


async def list_surveys(
    conn: asyncpg.Connection,
    merchant_id: int,
    store_ids: frozenset[int] | None,
    *,
    after: int,
    limit: int,
) -> list[surveys.Survey]:
    scope = None if store_ids is None else sorted(store_ids)
    rows = await conn.fetch(_Q["list_surveys"], merchant_id, scope, after, limit)
    return [survey_from_row(r) for r in rows]


async def archive_survey(conn: asyncpg.Connection, merchant_id: int, survey_id: int) -> bool:
    return await conn.fetchval(_Q["archive_survey"], merchant_id, survey_id) is not None


# --- invitations --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DueInvitation:
    id: int
    merchant_id: int
    survey_id: int
    shopper_id: int
    store_id: int
    geofence_id: int | None
    source: str
    offer_id: int
    survey_live: bool
    answered: bool


async def due_invitations(
    conn: asyncpg.Connection, now: dt.datetime, limit: int
) -> list[DueInvitation]:
    """Due invitations, locked (SKIP LOCKED) until the caller's transaction ends."""
    rows = await conn.fetch(_Q["due_invitations"], now, limit)
    return [
        DueInvitation(
            id=r["id"],
            merchant_id=r["merchant_id"],
            survey_id=r["survey_id"],
            shopper_id=r["shopper_id"],
            store_id=r["store_id"],
            geofence_id=r["geofence_id"],
            source=r["source"],
            offer_id=r["offer_id"],
            survey_live=r["survey_status"] == "active" and not r["survey_gone"],
            answered=r["answered"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed:
    """How an invitation ended: `outcome` sent, suppressed (with the decision's reason),
    answered or stopped."""

    outcome: str
    reason: str | None = None
    coupon_id: int | None = None
    expires_at: dt.datetime | None = None


async def close_invitation(
    conn: asyncpg.Connection, invitation_id: int, at: dt.datetime, closed: Closed
) -> None:
    await conn.execute(
        _Q["close_invitation"],
        invitation_id,
        at,
        closed.outcome,
        closed.reason,
        closed.coupon_id,
        closed.expires_at,
    )


async def live_invitation(
    conn: asyncpg.Connection, shopper_id: int, survey_id: int, now: dt.datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(_Q["live_invitation"], shopper_id, survey_id, now)


async def open_invitations(
    conn: asyncpg.Connection, shopper_id: int, now: dt.datetime
) -> list[asyncpg.Record]:
    return list(await conn.fetch(_Q["open_invitations"], shopper_id, now))


# --- responses ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    id: int
    survey_id: int
    shopper_id: int
    invitation_id: int
    store_id: int
    score: int
    answers: Mapping[str, str]
    points: int
    request_hash: bytes
    answered_at: dt.datetime
    recovery_outcome: str | None
    recovery_coupon_id: int | None

    @classmethod
    def from_row(cls, row: Any) -> Response:
        values = {k: row[k] for k in cls.__slots__}
        values["request_hash"] = bytes(values["request_hash"])
        return cls(**values)


async def response_by_key(
    conn: asyncpg.Connection, shopper_id: int, idempotency_key: str
) -> Response | None:
    row = await conn.fetchrow(_Q["response_by_key"], shopper_id, idempotency_key)
    return None if row is None else Response.from_row(row)


async def response_of(conn: asyncpg.Connection, survey_id: int, shopper_id: int) -> Response | None:
    row = await conn.fetchrow(_Q["response_of"], survey_id, shopper_id)
    return None if row is None else Response.from_row(row)


async def insert_response(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    survey_id: int,
    shopper_id: int,
    invitation_id: int,
    store_id: int,
    score: int,
    answers: Mapping[str, str],
    points: int,
    idempotency_key: str,
    request_hash: bytes,
    at: dt.datetime,
) -> Response:
    row = await conn.fetchrow(
        _Q["insert_response"],
        merchant_id,
        survey_id,
        shopper_id,
        invitation_id,
        store_id,
        score,
        dict(answers),
        points,
        idempotency_key,
        request_hash,
        at,
    )
    assert row is not None
    return Response.from_row(row)


async def set_recovery(
    conn: asyncpg.Connection, response_id: int, outcome: str, coupon_id: int | None
) -> Response:
    row = await conn.fetchrow(_Q["set_recovery"], response_id, outcome, coupon_id)
    assert row is not None
    return Response.from_row(row)


# --- reports ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportFilter:
    merchant_id: int
    store_id: int | None = None
    store_ids: frozenset[int] | None = None
    survey_id: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def params(self) -> list[Any]:
        scope = None if self.store_ids is None else sorted(self.store_ids)
        return [self.merchant_id, self.store_id, scope, self.survey_id, self.since, self.until]


async def nps_counts(
    conn: asyncpg.Connection, f: ReportFilter, period: str | None
) -> list[asyncpg.Record]:
    """Promoters, passives and detractors by store and period (day, week or month)."""
    return list(await conn.fetch(_Q["nps_counts"], *f.params(), period))


async def invitation_counts(conn: asyncpg.Connection, f: ReportFilter) -> list[asyncpg.Record]:
    return list(await conn.fetch(_Q["invitation_counts"], *f.params()))


def answers_query(
    merchant_id: int, survey_id: int, store_ids: Sequence[int] | None
) -> tuple[str, list[Any]]:
    return _Q["answers_log"], [
        merchant_id,
        survey_id,
        None if store_ids is None else list(store_ids),
    ]
