"""Plausibility checks on a ping against the clock and the shopper's previous accepted ping.

The checks only return a verdict; whether to reject or merely flag a ping is the caller's call.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum

from geo import distance
from geo.models import Fix, SpoofingConfig

DEFAULT_CONFIG = SpoofingConfig()


class Verdict(StrEnum):
    """What the checks make of a ping; the first failing check wins."""

    OK = "ok"
    FUTURE = "future"
    TOO_OLD = "too_old"
    IMPOSSIBLE_TRAVEL = "impossible_travel"


def implied_speed_mps(previous: Fix, current: Fix) -> float:
    """The slowest speed that explains both fixes, in metres per second.

    Both accuracy radii are taken off the distance first: a shopper may have been anywhere
    in either disc, so only travel the discs cannot explain counts. Fixes at the same
    instant in discs that do not touch need infinite speed.
    """
    gap = distance.haversine_m(previous.lon, previous.lat, current.lon, current.lat)
    gap -= max(previous.accuracy_m, 0.0) + max(current.accuracy_m, 0.0)
    if gap <= 0.0:
        return 0.0
    # Pings can arrive out of order (batched uploads); travel time is the same either way.
    seconds = abs((current.at - previous.at).total_seconds())
    return gap / seconds if seconds > 0 else math.inf


def window(at: datetime, now: datetime, config: SpoofingConfig = DEFAULT_CONFIG) -> Verdict:
    """Whether a fix taken at `at` is inside the accepted time window around the server's `now`.

    Checked before anything else: a ping outside it is refused and leaves no trace.
    """
    age = (now - at).total_seconds()
    if -age > config.max_future_skew_s:
        return Verdict.FUTURE
    if age > config.max_age_s:
        return Verdict.TOO_OLD
    return Verdict.OK


def travel(previous: Fix | None, current: Fix, config: SpoofingConfig = DEFAULT_CONFIG) -> Verdict:
    """Whether getting from the previous accepted fix, if any, to `current` is plausible."""
    if previous is not None and implied_speed_mps(previous, current) > config.max_speed_mps:
        return Verdict.IMPOSSIBLE_TRAVEL
    return Verdict.OK


def check(
    previous: Fix | None,
    current: Fix,
    now: datetime,
    config: SpoofingConfig = DEFAULT_CONFIG,
) -> Verdict:
    """Judge `current` against the server clock `now` and the previous accepted fix, if any."""
    verdict = window(current.at, now, config)
    return travel(previous, current, config) if verdict is Verdict.OK else verdict
