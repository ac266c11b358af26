"""Uplift math on known data sets."""

from __future__ import annotations

import math

import pytest

from offers import stats


def test_wilson_interval_matches_newcombe_1998() -> None:
    # Newcombe (1998), single proportion paper, example 81/263: 0.2553 to 0.3662.
    low, high = stats.wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_difference_interval_matches_newcombe_1998_method_10() -> None:
    # Newcombe (1998), Table II, example (a): 56/70 - 48/80.
    d, low, high = stats.newcombe(56, 70, 48, 80)
    assert d == pytest.approx(0.2)  # 0.8 - 0.6
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_z_test_against_the_formula() -> None:
    # 120/1000 vs 90/1000: pooled p = 0.105, se = sqrt(.105 * .895 * 2/1000).
    se = math.sqrt(0.105 * 0.895 * 0.002)
    z = 0.03 / se
    expected = math.erfc(z / math.sqrt(2))
    assert stats.z_test(120, 1000, 90, 1000) == pytest.approx(expected, rel=1e-9)


def test_uplift_of_a_campaign() -> None:
    u = stats.uplift(1000, 120, 250, 20)
    assert u.treated_rate == 0.12 and u.holdout_rate == 0.08
    assert u.absolute == pytest.approx(0.04)
    assert u.relative == pytest.approx(0.5)
    assert u.incremental_conversions == pytest.approx(40)
    assert u.ci_low is not None and u.ci_high is not None
    assert u.ci_low < 0.04 < u.ci_high
    assert u.p_value is not None and 0 < u.p_value < 1


def test_empty_and_zero_groups() -> None:
    empty = stats.uplift(0, 0, 0, 0)
    assert (empty.treated_rate, empty.holdout_rate, empty.absolute, empty.p_value) == (
        None,
        None,
        None,
        None,
    )
    no_holdout = stats.uplift(100, 10, 0, 0)
    assert no_holdout.treated_rate == 0.1 and no_holdout.absolute is None
    nobody_converted = stats.uplift(100, 0, 50, 0)
    assert nobody_converted.absolute == 0 and nobody_converted.relative is None
    assert nobody_converted.p_value is None
    assert nobody_converted.ci_low is not None and nobody_converted.ci_low < 0
