"""Stores as places: location, time zone and weekly opening hours.

Opening hours are a map from weekday (``mon`` .. ``sun``) to ``"HH:MM-HH:MM"``
intervals in the store's local time; an interval whose end is before its start
runs past midnight (``"22:00-02:00"``), and ``"24:00"`` ends a day.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_INTERVAL = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")

OpeningHours = Mapping[str, Sequence[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Store:
    id: int
    merchant_id: int
    name: str
    lat: float
    lon: float
    timezone: str
    opening_hours: OpeningHours | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: Any) -> Store:  # an asyncpg Record or any mapping
        return cls(
            id=row["id"],
            merchant_id=row["merchant_id"],
            name=row["name"],
            lat=row["lat"],
            lon=row["lon"],
            timezone=row["timezone"],
            opening_hours=row["opening_hours"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def _minutes(hours: str, minutes: str) -> int:
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m != 0):
        raise ValueError(f"{hours}:{minutes} is not a time of day")
    return h * 60 + m


def parse_interval(text: str) -> tuple[int, int]:
    """``"07:00-10:30"`` as (start, end) minutes after midnight; end may be < start."""
    match = _INTERVAL.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an interval like '07:00-19:00'")
    start = _minutes(match[1], match[2])
    end = _minutes(match[3], match[4])
    if start == end:
        raise ValueError(f"{text!r} is empty")
    if start == 24 * 60:
        raise ValueError(f"{text!r} starts at 24:00; start it at 00:00 the next day")
    return start, end


def check_opening_hours(hours: Mapping[str, Any]) -> dict[str, list[str]]:
    """Validated opening hours; raises ValueError naming the day and the problem."""
    out: dict[str, list[str]] = {}
    for day, intervals in hours.items():
        if day not in DAYS:
            raise ValueError(f"{day!r} is not a day; use {', '.join(DAYS)}")
        if not isinstance(intervals, list) or not all(isinstance(i, str) for i in intervals):
            raise ValueError(f"{day}: give a list of 'HH:MM-HH:MM' strings")
        if len(intervals) > 6:
            raise ValueError(f"{day}: at most 6 intervals a day")
        for interval in intervals:
            try:
                parse_interval(interval)
            except ValueError as exc:
                raise ValueError(f"{day}: {exc}") from None
        out[day] = list(intervals)
    return out


def is_open(hours: OpeningHours | None, at: dt.datetime, timezone: str) -> bool:
    """Whether the store is open at the instant ``at``; no hours set means always open."""
    if hours is None:
        return True
    local = at.astimezone(zoneinfo.ZoneInfo(timezone))
    minute = local.hour * 60 + local.minute
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    for text in hours.get(today, ()):
        start, end = parse_interval(text)
        if start <= minute < (end if end > start else 24 * 60):
            return True
    for text in hours.get(yesterday, ()):
        start, end = parse_interval(text)
        if end < start and minute < end:  # yesterday's interval running past midnight
            return True
    return False
