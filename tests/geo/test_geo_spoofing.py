"""Spoofing checks: impossible travel (net of accuracy), future timestamps, stale pings."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import spoofing
from geo.models import Fix, SpoofingConfig
from geo.spoofing import Verdict
from tests.support.geo import at, offset_ellipsoid

PARIS = (2.3522, 48.8566)
LONDON = (-0.1276, 51.5072)


def fix(lon: float, lat: float, seconds: float, accuracy_m: float = 10.0) -> Fix:
    return Fix(lon=lon, lat=lat, at=at(seconds), accuracy_m=accuracy_m)


def test_first_ping_is_ok() -> None:
    assert spoofing.check(None, fix(*PARIS, 0), now=at(1)) is Verdict.OK
    assert str(Verdict.OK) == "ok"


def test_walking_and_driving_are_ok() -> None:
    start = fix(*PARIS, 0)
    walked = fix(*offset_ellipsoid(*PARIS, 80.0, 0.0), 60)
    driven = fix(*offset_ellipsoid(*PARIS, 3_000.0, 0.0), 120)
    assert spoofing.check(start, walked, now=at(60)) is Verdict.OK
    assert spoofing.check(start, driven, now=at(120)) is Verdict.OK


def test_impossible_travel() -> None:
    # Paris to London (~344 km) in ten minutes is ~570 m/s.
    verdict = spoofing.check(fix(*PARIS, 0), fix(*LONDON, 600), now=at(600))
    assert verdict is Verdict.IMPOSSIBLE_TRAVEL
    assert spoofing.implied_speed_mps(fix(*PARIS, 0), fix(*LONDON, 600)) == pytest.approx(
        (343_900 - 20) / 600, rel=0.01
    )


def test_accuracy_radii_are_taken_off_the_distance() -> None:
    # 1 km apart one second later, but each fix is only good to 600 m: the discs overlap.
    far = offset_ellipsoid(*PARIS, 1_000.0, 0.0)
    assert spoofing.check(fix(*PARIS, 0, 600.0), fix(*far, 1, 600.0), now=at(1)) is Verdict.OK
    assert spoofing.implied_speed_mps(fix(*PARIS, 0, 600.0), fix(*far, 1, 600.0)) == 0.0
    # With 10 m fixes it is 980 m in a second.
    assert spoofing.check(fix(*PARIS, 0), fix(*far, 1), now=at(1)) is Verdict.IMPOSSIBLE_TRAVEL


def test_speed_limit_is_configurable_and_inclusive() -> None:
    far = offset_ellipsoid(*PARIS, 1_020.0, 0.0)
    speed = spoofing.implied_speed_mps(fix(*PARIS, 0), fix(*far, 20))
    assert speed == pytest.approx(50.0, rel=0.01)
    slow = SpoofingConfig(max_speed_mps=40.0)
    fast = SpoofingConfig(max_speed_mps=speed)
    assert spoofing.check(fix(*PARIS, 0), fix(*far, 20), at(20), slow) is Verdict.IMPOSSIBLE_TRAVEL
    assert spoofing.check(fix(*PARIS, 0), fix(*far, 20), at(20), fast) is Verdict.OK


def test_two_places_at_the_same_instant() -> None:
    far = offset_ellipsoid(*PARIS, 500.0, 0.0)
    assert spoofing.implied_speed_mps(fix(*PARIS, 0), fix(*far, 0)) == math.inf
    verdict = spoofing.check(fix(*PARIS, 0), fix(*far, 0), now=at(0))
    assert verdict is Verdict.IMPOSSIBLE_TRAVEL
    assert spoofing.check(fix(*PARIS, 0), fix(*PARIS, 0), now=at(0)) is Verdict.OK


def test_out_of_order_pings_use_the_time_between_them() -> None:
    later = fix(*offset_ellipsoid(*PARIS, 1_000.0, 0.0), 100)
    earlier = fix(*PARIS, 0)
    assert spoofing.implied_speed_mps(later, earlier) == spoofing.implied_speed_mps(earlier, later)
    assert spoofing.check(later, earlier, now=at(100)) is Verdict.OK


def test_future_timestamp() -> None:
    assert spoofing.check(None, fix(*PARIS, 31), now=at(0)) is Verdict.FUTURE
    assert spoofing.check(None, fix(*PARIS, 30), now=at(0)) is Verdict.OK


def test_too_old() -> None:
    day = 24 * 3600
    assert spoofing.check(None, fix(*PARIS, 0), now=at(day + 1)) is Verdict.TOO_OLD
    assert spoofing.check(None, fix(*PARIS, 0), now=at(day)) is Verdict.OK
    short = SpoofingConfig(max_age_s=60)
    assert spoofing.check(None, fix(*PARIS, 0), at(61), short) is Verdict.TOO_OLD


def test_clock_checks_come_before_travel() -> None:
    verdict = spoofing.check(fix(*PARIS, 0), fix(*LONDON, 3_600), now=at(0))
    assert verdict is Verdict.FUTURE


# -- the batch checks give the one-ping verdicts -----------------------------------------


def _travel_one_by_one(
    previous: Fix | None, fixes: list[Fix], config: SpoofingConfig
) -> tuple[list[bool], Fix | None]:
    """The reference: one `travel` call a fix, the baseline moving as the ping path moves it."""
    out = []
    for f in fixes:
        ok = spoofing.travel(previous, f, config) is Verdict.OK
        out.append(ok)
        if ok and (previous is None or f.at >= previous.at):
            previous = f
    return out, previous


def _travel_batched(
    previous: Fix | None, fixes: list[Fix], config: SpoofingConfig
) -> tuple[list[bool], Fix | None]:
    return spoofing.travel_many(
        previous,
        np.array([f.lon for f in fixes], dtype=np.float64),
        np.array([f.lat for f in fixes], dtype=np.float64),
        [f.at for f in fixes],
        np.array([f.accuracy_m for f in fixes], dtype=np.float64),
        config,
    )


_step = st.tuples(
    st.floats(-300, 300),  # metres east of the last fix
    st.floats(-300, 300),  # metres north
    st.sampled_from([0.0, 0.000001, 0.5, 1.0, 3.0, 60.0]),  # seconds after the last fix
    st.sampled_from([0.0, 5.0, 10.0, 50.0]),  # accuracy
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(_step, min_size=1, max_size=40),
    previous=st.none() | st.tuples(st.floats(-500, 500), st.floats(-100, 100)),
    max_speed=st.sampled_from([0.0, 1.0, 10.0, 70.0]),
)
def test_travel_many_equals_travel_one_by_one(
    steps: list[tuple[float, float, float, float]],
    previous: tuple[float, float] | None,
    max_speed: float,
) -> None:
    config = SpoofingConfig(max_speed_mps=max_speed)
    lon, lat, t = PARIS[0], PARIS[1], 1000.0
    fixes = []
    for east, north, dt_s, acc in steps:
        lon, lat = offset_ellipsoid(lon, lat, east, north)
        t += dt_s
        fixes.append(fix(lon, lat, t, acc))
    before = None if previous is None else fix(*PARIS, 1000.0 + previous[1], previous[0] / 10)
    assert _travel_batched(before, fixes, config) == _travel_one_by_one(before, fixes, config)


def test_travel_many_at_exactly_the_speed_limit() -> None:
    # 70 m/s exactly (net of accuracy), then a hair over it: the batch gives the same verdicts.
    config = SpoofingConfig(max_speed_mps=70.0)
    start = fix(*PARIS, 0, 0.0)
    fixes = [start]
    for k in range(1, 6):
        lon, lat = fixes[-1].lon, fixes[-1].lat
        metres = spoofing.implied_speed_mps(start, fix(*offset_ellipsoid(lon, lat, 70.0, 0), 1, 0))
        step = 70.0 * 70.0 / metres if k % 2 else 70.0 * 70.0 / metres * (1 + 1e-12)
        fixes.append(fix(*offset_ellipsoid(lon, lat, step, 0.0), k, 0.0))
    assert _travel_batched(None, fixes, config) == _travel_one_by_one(None, fixes, config)
    assert _travel_batched(start, fixes[1:], config) == _travel_one_by_one(start, fixes[1:], config)


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(
        st.sampled_from([-86_400.000001, -86_400.0, -86_399.999999, -5.0, 0.0, 29.999999, 30.0])
        | st.floats(-90_000, 60),
        min_size=1,
        max_size=30,
    )
)
def test_window_many_equals_window(offsets: list[float]) -> None:
    now = at(1_000_000.0)
    ats = [now + dt.timedelta(seconds=o) for o in offsets]
    assert spoofing.window_many(ats, now) == [spoofing.window(a, now) for a in ats]
