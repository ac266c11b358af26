"""SQL access for lifecycle journeys: the rules, the runs, and the indexed reads that find
due shoppers (offers/journeys.sql).

Functions take a connection and never open, commit or close one: the caller owns the
transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from geo import sql
from offers import errors, journeys
from offers.journeys import Journey

_Q = sql.load("offers", "journeys.sql")

# The columns a journey write sets, in the order of insert_journey's $2 onwards.
FIELDS = (
    "name",
    "kind",
    "offer_id",
    "status",
    "delay_minutes",
    "inactive_days",
    "tier",
    "days_before",
    "grace_minutes",
)
# What a change may set (the kind and the offer are the journey's identity).
MUTABLE = (
    "name",
    "status",
    "delay_minutes",
    "inactive_days",
    "tier",
    "days_before",
    "grace_minutes",
)


def journey_from_row(row: Any) -> Journey:
    return Journey(**{k: row[k] for k in Journey.__slots__})


async def insert_journey(
    conn: asyncpg.Connection, merchant_id: int, values: Mapping[str, Any], now: dt.datetime
) -> Journey:
    try:
        row = await conn.fetchrow(
            _Q["insert_journey"], merchant_id, *[values[f] for f in FIELDS], now
        )
    except asyncpg.UniqueViolationError:
        raise errors.OfferTaken() from None
    assert row is not None
    return journey_from_row(row)


async def get_journey(
    conn: asyncpg.Connection, merchant_id: int, journey_id: int, *, lock: bool = False
) -> Journey | None:
    row = await conn.fetchrow(
        _Q["lock_journey" if lock else "get_journey"], merchant_id, journey_id
    )
    return None if row is None else journey_from_row(row)


async def list_journeys(
    conn: asyncpg.Connection, merchant_id: int, *, after: int, limit: int
) -> list[Journey]:
    rows = await conn.fetch(_Q["list_journeys"], merchant_id, after, limit)
    return [journey_from_row(r) for r in rows]


async def update_journey(
    conn: asyncpg.Connection,
    current: Journey,
    changes: Mapping[str, Any],
    now: dt.datetime,
) -> Journey | None:
    values = {f: changes[f] if f in changes else getattr(current, f) for f in MUTABLE}
    row = await conn.fetchrow(
        _Q["update_journey"],
        current.merchant_id,
        current.id,
        *[values[f] for f in MUTABLE],
        now,
    )
    return None if row is None else journey_from_row(row)


async def archive_journey(conn: asyncpg.Connection, merchant_id: int, journey_id: int) -> bool:
    return await conn.fetchval(_Q["archive_journey"], merchant_id, journey_id) is not None


async def offer_journey(conn: asyncpg.Connection, offer_id: int) -> int | None:
    found: int | None = await conn.fetchval(_Q["offer_journey"], offer_id)
    return found


async def active_journeys(conn: asyncpg.Connection) -> list[Journey]:
    return [journey_from_row(r) for r in await conn.fetch(_Q["active_journeys"])]


# --- finding occurrences --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MerchantRules:
    """What finding occurrences needs of a merchant's loyalty program."""

    points_expire_days: int | None
    # Tier names with their thresholds, lowest first.
    tiers: tuple[tuple[str, int], ...]

    def above(self, tier: str) -> list[str]:
        """The tiers above ``tier`` (none when the program has no such tier)."""
        threshold = next((t for name, t in self.tiers if name == tier), None)
        if threshold is None:
            return []
        return [name for name, t in self.tiers if t > threshold]


async def merchant_rules(conn: asyncpg.Connection, merchant_id: int) -> MerchantRules:
    row = await conn.fetchrow(_Q["merchant_rules"], merchant_id)
    if row is None:
        return MerchantRules(points_expire_days=None, tiers=())
    tiers = sorted((str(t["name"]), int(t["threshold"])) for t in row["tiers"])
    return MerchantRules(
        points_expire_days=row["points_expire_days"],
        tiers=tuple(sorted(tiers, key=lambda t: t[1])),
    )


def _count(status: str) -> int:
    """Rows inserted, from a command status such as ``INSERT 0 12``."""
    return int(status.rsplit(" ", 1)[-1])


async def find_occurrences(
    conn: asyncpg.Connection, journey: Journey, rules: MerchantRules, until: dt.datetime
) -> int:
    """Record a pending run for every occurrence of ``journey`` after its watermark and up
    to ``until``, and move the watermark there; the number of new runs.

    Runs are unique per journey, shopper and occurrence, so reading a range twice
    (a round that failed after this, two schedulers) records nothing twice.
    """
    ids = (journey.id, journey.merchant_id)
    if journey.kind == "birthday":
        dates = journeys.birthday_dates(journey, until)
        status = await conn.execute(
            _Q["find_birthday"],
            *ids,
            dates,
            journeys.day_keys(dates),
            journey.scanned_until,
            until,
            journey.days_before or 0,
            journeys.BIRTHDAY_HOUR,
        )
    else:
        w = journeys.window(journey, until, expire_days=rules.points_expire_days)
        if w is None:
            status = "INSERT 0 0"
        elif journey.kind == "tier_up":
            status = await conn.execute(
                _Q["find_tier_up"], *ids, w.lo, w.hi, journey.tier, rules.above(journey.tier or "")
            )
        elif journey.kind == "points_expiring":
            ahead = dt.timedelta(days=journey.days_before or 0)
            status = await conn.execute(
                _Q["find_points_expiring"], *ids, w.lo, w.hi, w.offset, ahead
            )
        else:
            status = await conn.execute(_Q[f"find_{journey.kind}"], *ids, w.lo, w.hi, w.offset)
    await conn.execute(_Q["advance_journey"], journey.id, until)
    return _count(status)


# --- deciding runs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    id: int
    merchant_id: int
    journey_id: int
    shopper_id: int
    occurrence: str
    occurs_at: dt.datetime
    # A win-back whose shopper came back since it was found.
    superseded: bool


async def due_runs(conn: asyncpg.Connection, now: dt.datetime, limit: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(_Q["due_runs"], now, limit)]


async def claim_run(conn: asyncpg.Connection, run_id: int) -> Run | None:
    """The run, locked, if it is still pending and no other session holds it."""
    row = await conn.fetchrow(_Q["claim_run"], run_id)
    return None if row is None else Run(**{k: row[k] for k in Run.__slots__})


async def lock_shopper(conn: asyncpg.Connection, shopper_id: int, merchant_id: int) -> None:
    await conn.execute(_Q["ensure_shopper_geo"], shopper_id, merchant_id)
    await conn.execute(_Q["lock_shopper"], shopper_id)


async def defer_run(conn: asyncpg.Connection, run_id: int, until: dt.datetime) -> None:
    await conn.execute(_Q["defer_run"], run_id, until)


async def finish_run(
    conn: asyncpg.Connection,
    run_id: int,
    *,
    state: str,
    outcome: str,
    decision_id: int | None,
    at: dt.datetime,
) -> None:
    await conn.execute(_Q["finish_run"], run_id, state, outcome, decision_id, at)


async def run_counts(conn: asyncpg.Connection, journey_id: int) -> dict[str, dict[str, int]]:
    """A journey's runs: by state, then by outcome ('' for pending ones)."""
    out: dict[str, dict[str, int]] = {}
    for r in await conn.fetch(_Q["run_counts"], journey_id):
        out.setdefault(r["state"], {})[r["outcome"]] = r["n"]
    return out
