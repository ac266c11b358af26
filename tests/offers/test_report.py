"""Funnel assembly from rollup rows: totals, rates, breakdowns, and delivery channels."""

from __future__ import annotations

import datetime as dt
from typing import Any

from offers import report
from offers.models import REASONS, TARGETING_REASONS

D1, D2 = dt.date(2026, 1, 12), dt.date(2026, 1, 13)


def row(metric: str, n: int, *, day: dt.date = D1, store: int = 1, channel: str = "") -> Any:
    return {"metric": metric, "n": n, "day": day, "store_id": store, "channel": channel}


ROWS = [
    row("eligible", 10),
    row("eligible", 6, day=D2, store=2),
    row("sent", 4),
    row("sent", 2, day=D2, store=2),
    row("suppressed:holdout", 3),
    row("suppressed:quiet_hours", 3),
    row("suppressed:frequency_capped", 4, day=D2, store=2),
    row("redeemed", 2),
    row("redeemed", -1),  # a void
    row("converted:sent", 3),
    row("converted:holdout", 1),
    # One delivery reached the inbox and Web Push: two channel rows, one total row.
    row("delivered", 1, channel="inbox"),
    row("delivered", 1, channel="webpush"),
    row("delivered", 1),
    row("opened", 1, channel="webpush"),
    row("opened", 1),
]


def test_totals_count_each_delivery_once() -> None:
    total, breakdown = report.funnel(ROWS)
    assert breakdown == []
    # 16 candidates, 3 of them at quiet hours: 13 eligible.
    assert (total["candidates"], total["eligible"]) == (16, 13)
    assert (total["sent"], total["redeemed"]) == (6, 1)
    assert total["suppressed"]["total"] == 10
    assert total["suppressed"]["not_eligible"] == 3
    assert total["suppressed"]["eligible_not_sent"] == 7
    assert total["suppressed"]["by_reason"]["holdout"] == 3
    assert set(total["suppressed"]["by_reason"]) >= {"no_consent", "lower_priority"}
    assert (total["delivered"], total["opened"]) == (1, 1)
    assert total["rates"]["sent_of_eligible"] == 6 / 13
    assert total["rates"]["eligible_of_candidates"] == 13 / 16
    assert total["rates"]["opened_of_delivered"] == 1.0
    assert total["holdout"]["treatment"] == {"decisions": 6, "converted": 3}
    assert total["holdout"]["holdout"] == {"decisions": 3, "converted": 1}
    assert total["holdout"]["uplift"]["absolute"] == 3 / 6 - 1 / 3


def test_breakdowns() -> None:
    _, by_day = report.funnel(ROWS, "day")
    assert [(g["key"], g["candidates"], g["eligible"], g["sent"]) for g in by_day] == [
        ("2026-01-12", 10, 7, 4),
        ("2026-01-13", 6, 6, 2),
    ]
    _, by_store = report.funnel(ROWS, "store")
    assert [g["key"] for g in by_store] == ["1", "2"]
    # Store and day views count each delivery once, as the totals do: they add up.
    for groups in (by_day, by_store):
        assert [(g["delivered"], g["opened"]) for g in groups] == [(1, 1), (0, 0)]
    _, by_channel = report.funnel(ROWS, "channel")
    assert [(g["key"], g["delivered"], g["opened"]) for g in by_channel] == [
        ("inbox", 1, 0),
        ("webpush", 1, 1),
    ]


def test_an_empty_funnel_has_no_rates() -> None:
    total, _ = report.funnel([])
    assert total["eligible"] == 0 and total["rates"]["sent_of_eligible"] is None
    assert total["holdout"]["uplift"]["absolute"] is None


def test_eligible_leaves_out_exactly_the_targeting_reasons() -> None:
    rows = [row("eligible", 10 * len(REASONS))] + [row(f"suppressed:{r}", 10) for r in REASONS]
    total, _ = report.funnel(rows)
    assert total["candidates"] == 10 * len(REASONS) == 120
    # Failing targeting (consent, quiet hours, schedule, a journey's lapsed moment, opening
    # hours, weather, audience) is not eligible; a budget, a cap, the holdout or another
    # offer's priority come after eligibility.
    assert total["eligible"] == 120 - 10 * len(TARGETING_REASONS) == 50
    assert REASONS[: len(TARGETING_REASONS)] == TARGETING_REASONS  # checked first by decide


def test_every_stage_and_reason_has_its_words() -> None:
    total, _ = report.funnel([])
    shown = [k for k, _, _ in report.STAGES if k not in ("conv_sent", "conv_holdout", "uplift")]
    assert set(shown) <= set(total)
    assert set(report.REASON_WORDS) == set(REASONS)
    assert all("_" not in words for words in report.REASON_WORDS.values())
