"""Uplift of an offer over its holdout group: two conversion rates, their difference with
Newcombe's hybrid score interval (method 10 of Newcombe 1998), and a two-proportion z test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True, slots=True, kw_only=True)
class Uplift:
    treated_rate: float | None
    holdout_rate: float | None
    # treated_rate - holdout_rate, and its confidence interval.
    absolute: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    # absolute / holdout_rate; None when the holdout never converted.
    relative: float | None
    # Conversions the offer caused among the treated: absolute * treated_n.
    incremental_conversions: float | None
    p_value: float | None


def verdict(ci_low: float | None, ci_high: float | None) -> str:
    """What an uplift interval says, in words."""
    if ci_low is None or ci_high is None:
        return "no uplift: it needs shoppers sent the offer and shoppers held out"
    if ci_low > 0:
        return "significant: the whole interval is above zero"
    if ci_high < 0:
        return "significant: the whole interval is below zero"
    return "not significant: the interval includes zero"


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n <= 0:
        raise ValueError("n must be positive")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return (centre - spread) / denominator, (centre + spread) / denominator


def newcombe(
    x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """p1 - p2 and its hybrid score interval (Newcombe 1998, method 10)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, confidence)
    l2, u2 = wilson(x2, n2, confidence)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def z_test(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z test; None when undefined."""
    if n1 == 0 or n2 == 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance == 0:
        return None
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return 2 * (1 - NormalDist().cdf(abs(z)))


def uplift(
    treated_n: int,
    treated_conv: int,
    holdout_n: int,
    holdout_conv: int,
    confidence: float = 0.95,
) -> Uplift:
    treated_rate = treated_conv / treated_n if treated_n else None
    holdout_rate = holdout_conv / holdout_n if holdout_n else None
    if treated_rate is None or holdout_rate is None:
        return Uplift(
            treated_rate=treated_rate,
            holdout_rate=holdout_rate,
            absolute=None,
            ci_low=None,
            ci_high=None,
            confidence=confidence,
            relative=None,
            incremental_conversions=None,
            p_value=None,
        )
    d, low, high = newcombe(treated_conv, treated_n, holdout_conv, holdout_n, confidence)
    return Uplift(
        treated_rate=treated_rate,
        holdout_rate=holdout_rate,
        absolute=d,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        relative=d / holdout_rate if holdout_rate else None,
        incremental_conversions=d * treated_n,
        p_value=z_test(treated_conv, treated_n, holdout_conv, holdout_n),
    )
