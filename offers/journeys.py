"""Lifecycle journeys: rules that send an offer on time and behaviour rather than on place.

A journey watches one kind of moment in a shopper's life with the brand, and when it
occurs sends its offer (trigger ``journey``) through the same decision as a ping's
offers: consent, quiet hours, schedule, audience, budget, caps, fatigue and holdout.

- ``welcome``: ``delay_minutes`` after enrolment;
- ``winback``: ``inactive_days`` after the shopper's last activity (enrolment, a
  geofence entry, a transaction at a till), once per lapse;
- ``tier_up``: the first time the shopper reaches ``tier`` from below;
- ``birthday``: at 09:00 in the shopper's time zone (UTC when unset), ``days_before``
  the birthday, once a year (29 February birthdays fall on 28 February in common years);
- ``points_expiring``: ``days_before`` points earned would expire under the loyalty
  program's ``points_expire_days``, if some of them are still unused; at most once per
  shopper and expiry day.

Pure: the scheduler (gateway/jobs/journeys.py) asks here which time range of which
indexed column to read, and builds the decision's candidate here.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Literal, get_args

from offers import decide
from offers.models import Candidate, Offer, Program

Kind = Literal["welcome", "winback", "tier_up", "birthday", "points_expiring"]
KINDS: tuple[Kind, ...] = get_args(Kind)
Status = Literal["active", "paused"]
# The hour of the day, in the shopper's time zone, at which birthday journeys fire.
BIRTHDAY_HOUR = 9
# Local dates lie within this of the UTC date (UTC-12 to UTC+14, plus the birthday hour).
_ZONE_SPREAD = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Journey:
    id: int
    merchant_id: int
    name: str
    kind: Kind
    offer_id: int
    status: Status = "active"
    delay_minutes: int | None = None
    inactive_days: int | None = None
    tier: str | None = None
    days_before: int | None = None
    grace_minutes: int = 1440
    scanned_until: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def grace(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.grace_minutes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """Occurrences after ``since`` and up to ``until`` are found by reading anchors
    (enrolment, last activity, a tier change, an earning) after ``lo`` and up to ``hi``:
    the anchor plus ``offset`` is when the occurrence happens."""

    since: dt.datetime
    until: dt.datetime
    lo: dt.datetime
    hi: dt.datetime
    offset: dt.timedelta


def window(
    journey: Journey, until: dt.datetime, *, expire_days: int | None = None
) -> Window | None:
    """The anchors to read for the occurrences after the watermark up to ``until``;
    None when the kind reads none this way (birthdays) or nothing can occur (points
    that never expire)."""
    since = journey.scanned_until
    if journey.kind == "welcome":
        offset = dt.timedelta(minutes=journey.delay_minutes or 0)
    elif journey.kind == "winback":
        offset = dt.timedelta(days=journey.inactive_days or 0)
    elif journey.kind == "tier_up":
        offset = dt.timedelta(0)
    elif journey.kind == "points_expiring" and expire_days is not None:
        offset = dt.timedelta(days=expire_days - (journey.days_before or 0))
    else:
        return None
    return Window(since=since, until=until, lo=since - offset, hi=until - offset, offset=offset)


def birthday_dates(journey: Journey, until: dt.datetime) -> list[dt.date]:
    """The birthdays (this year's or next year's dates) whose journey moment may fall
    after the watermark and up to ``until``; the query keeps those that do."""
    ahead = dt.timedelta(days=journey.days_before or 0)
    first = (journey.scanned_until - _ZONE_SPREAD).date()
    last = (until + _ZONE_SPREAD).date()
    days = (last - first).days
    return [first + ahead + dt.timedelta(days=i) for i in range(days + 1)]


def day_keys(dates: list[dt.date]) -> list[int]:
    """month * 100 + day of each date (the birthday index's key); 28 February of a common
    year also stands for 29 February."""
    keys = {d.month * 100 + d.day for d in dates}
    for d in dates:
        if d.month == 2 and d.day == 28 and (d + dt.timedelta(days=1)).month == 3:
            keys.add(229)
    return sorted(keys)


def quiet_until(program: Program, now: dt.datetime, timezone: str) -> dt.datetime | None:
    """When the quiet hours around ``now`` end, in UTC; None when ``now`` is not quiet.

    A journey's occurrence found during quiet hours waits for their end rather than
    being dropped (a birthday found at midnight goes out in the morning).
    """
    if not decide.in_quiet_hours(program, now, timezone):
        return None
    zone = zoneinfo.ZoneInfo(timezone)
    local = now.astimezone(zone)
    end = dt.time(program.quiet_end // 60, program.quiet_end % 60)
    day = local.date()
    candidate = dt.datetime.combine(day, end, tzinfo=zone)
    if candidate <= local:
        candidate = dt.datetime.combine(day + dt.timedelta(days=1), end, tzinfo=zone)
    return candidate.astimezone(dt.UTC)


def home_store(offer: Offer) -> int:
    """The store a journey's decision is recorded at: the first of its offer's stores,
    where its coupon is valid (the report's `by=store` rows and local days use it)."""
    return min(offer.scope_store_ids)


def candidate(
    offer: Offer, *, store_id: int, store_timezone: str, due_by: dt.datetime
) -> Candidate:
    """The journey's offer as the decision engine sees it: at no geofence, at a store
    whose opening hours do not matter (the shopper is not at the door)."""
    return Candidate(
        offer=offer,
        fence_id=0,
        store_id=store_id,
        store_timezone=store_timezone,
        store_hours=None,
        due_by=due_by,
    )
