"""Loyalty arithmetic: points for a purchase, capped action awards, and tiers from the
points earned in a rolling window. Pure; `wallet.store` applies it in SQL transactions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Tier:
    name: str
    threshold: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRule:
    points: int
    limit: int
    days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Rules:
    """A merchant's loyalty program."""

    point_value: Decimal = Decimal("0.01")
    earn_rate: Decimal = Decimal(1)
    tiers: tuple[Tier, ...] = (
        Tier(name="Bronze", threshold=0),
        Tier(name="Silver", threshold=500),
        Tier(name="Gold", threshold=2000),
        Tier(name="Platinum", threshold=5000),
    )
    tier_window_days: int = 365
    actions: Mapping[str, ActionRule] | None = None
    # None: points never expire; else they expire this many days after being earned.
    points_expire_days: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> Rules:
        tiers = row["tiers"]
        actions = row["actions"]
        expire = row.get("points_expire_days")
        assert isinstance(tiers, list) and isinstance(actions, dict)
        return cls(
            point_value=Decimal(str(row["point_value"])),
            earn_rate=Decimal(str(row["earn_rate"])),
            tiers=tuple(Tier(name=t["name"], threshold=int(t["threshold"])) for t in tiers),
            tier_window_days=int(str(row["tier_window_days"])),
            actions={
                k: ActionRule(points=int(v["points"]), limit=int(v["limit"]), days=int(v["days"]))
                for k, v in actions.items()
            },
            points_expire_days=None if expire is None else int(str(expire)),
        )


def purchase_points(amount: Decimal, rules: Rules) -> int:
    """Whole points for a purchase amount; fractions are not rounded up."""
    return int((amount * rules.earn_rate).to_integral_value(rounding=ROUND_FLOOR))


def expiring_points(credits_before_cutoff: int, debits: int, balance: int) -> int:
    """Points to expire now, oldest first.

    Spends, negative adjustments and earlier expiries (``debits``, a positive number)
    use the oldest points first, so of the points credited up to the cutoff,
    ``credits_before_cutoff - debits`` are still unused; those expire. Never more
    than the balance.
    """
    return max(0, min(balance, credits_before_cutoff - debits))


def points_value(points: int, rules: Rules) -> Decimal:
    return (Decimal(points) * rules.point_value).quantize(Decimal("0.01"))


def action_allowed(rule: ActionRule, earlier: Sequence[dt.datetime], now: dt.datetime) -> bool:
    """Whether one more award of the action fits its limit in the rolling window."""
    since = now - dt.timedelta(days=rule.days)
    return sum(1 for at in earlier if at > since) < rule.limit


def tier_for(earned_in_window: int, tiers: Sequence[Tier]) -> str | None:
    """The highest tier whose threshold the points earned in the window reach."""
    best: Tier | None = None
    for tier in tiers:
        if earned_in_window >= tier.threshold and (
            best is None or tier.threshold >= best.threshold
        ):
            best = tier
    return None if best is None else best.name


def check_tiers(raw: Sequence[Mapping[str, object]]) -> tuple[Tier, ...]:
    """Validated tiers: distinct names, distinct non-negative thresholds, sorted."""
    tiers = tuple(Tier(name=str(t["name"]), threshold=int(str(t["threshold"]))) for t in raw)
    if not tiers:
        raise ValueError("give at least one tier")
    if len({t.name for t in tiers}) != len(tiers):
        raise ValueError("tier names must be distinct")
    if len({t.threshold for t in tiers}) != len(tiers):
        raise ValueError("tier thresholds must be distinct")
    if any(t.threshold < 0 for t in tiers):
        raise ValueError("thresholds must not be negative")
    return tuple(sorted(tiers, key=lambda t: t.threshold))
