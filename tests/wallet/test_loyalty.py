"""Loyalty arithmetic: purchase points, action limits over rolling windows, tiers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from wallet import loyalty

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def test_purchase_points_floor_the_amount_times_the_rate() -> None:
    rules = loyalty.Rules(earn_rate=Decimal(2))
    assert loyalty.purchase_points(Decimal("12.49"), rules) == 24
    assert loyalty.purchase_points(Decimal("0.49"), rules) == 0
    assert loyalty.purchase_points(Decimal("10"), loyalty.Rules()) == 10


def test_point_value_defaults_to_a_cent() -> None:
    assert loyalty.points_value(250, loyalty.Rules()) == Decimal("2.50")
    assert loyalty.points_value(3, loyalty.Rules(point_value=Decimal("0.005"))) == Decimal("0.02")


def test_action_limits_roll() -> None:
    rule = loyalty.ActionRule(points=50, limit=2, days=30)
    recent = [NOW - dt.timedelta(days=1), NOW - dt.timedelta(days=29)]
    assert not loyalty.action_allowed(rule, recent, NOW)
    older = [NOW - dt.timedelta(days=1), NOW - dt.timedelta(days=31)]
    assert loyalty.action_allowed(rule, older, NOW)


@pytest.mark.parametrize(
    ("earned", "tier"),
    [
        (0, "Bronze"),
        (499, "Bronze"),
        (500, "Silver"),
        (1999, "Silver"),
        (2000, "Gold"),
        (10**6, "Platinum"),
    ],
)
def test_default_tiers(earned: int, tier: str) -> None:
    assert loyalty.tier_for(earned, loyalty.Rules().tiers) == tier


def test_no_tier_below_the_lowest_threshold() -> None:
    tiers = (loyalty.Tier(name="Member", threshold=10),)
    assert loyalty.tier_for(9, tiers) is None
    assert loyalty.tier_for(10, tiers) == "Member"


def test_tier_validation() -> None:
    ok = loyalty.check_tiers([{"name": "B", "threshold": 5}, {"name": "A", "threshold": 0}])
    assert [t.name for t in ok] == ["A", "B"]
    for bad, problem in (
        ([], "at least one"),
        ([{"name": "A", "threshold": 0}, {"name": "A", "threshold": 1}], "names"),
        ([{"name": "A", "threshold": 0}, {"name": "B", "threshold": 0}], "thresholds"),
        ([{"name": "A", "threshold": -1}], "negative"),
    ):
        with pytest.raises(ValueError, match=problem):
            loyalty.check_tiers(bad)
