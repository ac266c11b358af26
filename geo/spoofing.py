"""Plausibility checks on a ping against the clock and the shopper's previous accepted ping.

The checks only return a verdict; whether to reject or merely flag a ping is the caller's call.
Each check comes one ping at a time and over a whole batch (`window_many`, `travel_many`),
with the same verdicts ping for ping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from geo import distance
from geo.models import Fix, SpoofingConfig

DEFAULT_CONFIG = SpoofingConfig()
FloatArray = npt.NDArray[np.float64]


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


# Float timestamps are off by well under a microsecond, and batched distances by far less
# than a millimetre: a batch's verdicts that close to a limit come from the one-ping checks.
_DOUBT_S = 1e-5
_DOUBT_M = 1e-3


def window_many(
    ats: Sequence[datetime], now: datetime, config: SpoofingConfig = DEFAULT_CONFIG
) -> list[Verdict]:
    """`window` for each of `ats`, with the arithmetic done over the whole batch."""
    age = now.timestamp() - np.fromiter((at.timestamp() for at in ats), np.float64, len(ats))
    doubtful = (age > config.max_age_s - _DOUBT_S) | (-age > config.max_future_skew_s - _DOUBT_S)
    verdicts = [Verdict.OK] * len(ats)
    for i in np.flatnonzero(doubtful).tolist():
        verdicts[i] = window(ats[i], now, config)
    return verdicts


def travel_many(
    previous: Fix | None,
    lon: FloatArray,
    lat: FloatArray,
    at: Sequence[datetime],
    accuracy_m: FloatArray,
    config: SpoofingConfig = DEFAULT_CONFIG,
) -> tuple[list[bool], Fix | None]:
    """`travel` for fixes in time order (given column by column), each against the newest
    plausible fix before it.

    Returns whether each fix is plausible, and the baseline after them all: what a loop of
    `travel` calls gives, moving the baseline to each plausible fix at least as new as it.
    The speeds are computed for the whole batch as if every fix passed; from the first one
    that fails, or comes close to failing, the fixes are checked one at a time.
    """
    n = len(at)

    def fix(k: int) -> Fix:
        return Fix(lon=float(lon[k]), lat=float(lat[k]), at=at[k], accuracy_m=float(accuracy_m[k]))

    first = _first_doubtful(previous, lon, lat, at, accuracy_m, config) if n else 0
    baseline = previous
    if first and (baseline is None or at[first - 1] >= baseline.at):
        baseline = fix(first - 1)
    plausible = [True] * first
    for k in range(first, n):
        current = fix(k)
        ok = travel(baseline, current, config) is Verdict.OK
        plausible.append(ok)
        if ok and (baseline is None or current.at >= baseline.at):
            baseline = current
    return plausible, baseline


def _first_doubtful(
    previous: Fix | None,
    lon: FloatArray,
    lat: FloatArray,
    at: Sequence[datetime],
    accuracy_m: FloatArray,
    config: SpoofingConfig,
) -> int:
    """The first fix that is, or may be, implausible if all before it pass (n: none)."""
    n = len(at)
    secs = np.fromiter((t.timestamp() for t in at), np.float64, n)
    acc = np.maximum(accuracy_m, 0.0)
    # Each fix's baseline if all before it pass: the fix before it, unless that one is
    # older than `previous`, which then stays the baseline.
    b_lon, b_lat, b_secs, b_acc = (_shifted(a) for a in (lon, lat, secs, acc))
    if previous is not None:
        stays = b_secs < previous.at.timestamp()
        stays[0] = True
        b_lon[stays], b_lat[stays] = previous.lon, previous.lat
        b_secs[stays], b_acc[stays] = previous.at.timestamp(), max(previous.accuracy_m, 0.0)
    gap = distance.haversine_m_array(b_lon, b_lat, lon, lat) - (b_acc + acc)
    if previous is None:
        gap[0] = -math.inf  # nothing to travel from
    # The fastest `implied_speed_mps` could make it, given the rounding above.
    with np.errstate(divide="ignore", invalid="ignore"):
        fastest = np.maximum(gap + _DOUBT_M, 0.0) / np.maximum(
            np.abs(secs - b_secs) - _DOUBT_S, 0.0
        )
    hits = np.flatnonzero(fastest > config.max_speed_mps)
    return int(hits[0]) if hits.size else n


def _shifted(a: FloatArray) -> FloatArray:
    """`a` moved one place on: the first stays where it is."""
    out = np.empty_like(a)
    out[1:] = a[:-1]
    out[:1] = a[:1]
    return out
