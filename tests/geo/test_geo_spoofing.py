"""Spoofing checks: impossible travel (net of accuracy), future timestamps, stale pings."""

from __future__ import annotations

import math

import pytest

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
