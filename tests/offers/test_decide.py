"""The pure decision engine: every reason code, schedules in the store's zone across DST and
midnight, quiet hours, the tie-break, and holdouts."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from offers import decide
from offers.models import (
    REASONS,
    Audience,
    Candidate,
    Cap,
    Context,
    CouponSpec,
    Exposure,
    Offer,
    Program,
    ShopperState,
    WeatherRule,
)

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
# Monday 12 January 2026, 09:00 in Paris.
NOW = dt.datetime(2026, 1, 12, 8, 0, tzinfo=dt.UTC)
COLD = Context(now=NOW, weather_condition="clouds", temp_c=4.0)
NO_QUIET = Program(daily_cap=None, quiet_start=0, quiet_end=0)


def offer(id: int = 1, **kw: Any) -> Offer:
    base: dict[str, Any] = {
        "id": id,
        "merchant_id": 1,
        "name": f"o{id}",
        "title": "t",
        "body": "b",
        "channels": ("inbox",),
        "trigger": "enter",
        "store_ids": frozenset({10}),
        "coupon": CouponSpec(discount="20%", valid_minutes=60),
    }
    base.update(kw)
    return Offer(**base)


def cand(
    o: Offer, *, fence: int = 100, tz: str = PARIS, hours: dict[str, list[str]] | None = None
) -> Candidate:
    return Candidate(offer=o, fence_id=fence, store_id=10, store_timezone=tz, store_hours=hours)


def shopper(**kw: Any) -> ShopperState:
    base: dict[str, Any] = {"shopper_id": 7, "marketing_consent": True}
    base.update(kw)
    return ShopperState(**base)


def one(
    o: Offer,
    *,
    context: Context = COLD,
    who: ShopperState | None = None,
    program: Program = NO_QUIET,
    tz: str = PARIS,
    hours: dict[str, list[str]] | None = None,
) -> str | None:
    [d] = decide.decide(context, who or shopper(), [cand(o, tz=tz, hours=hours)], program)
    assert d.send == (d.reason is None)
    return d.reason


def at(local: str, tz: str) -> dt.datetime:
    return dt.datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz))


class TestReasons:
    def test_a_plain_offer_is_sent(self) -> None:
        assert one(offer()) is None

    def test_no_consent(self) -> None:
        assert one(offer(), who=shopper(marketing_consent=False)) == "no_consent"

    def test_quiet_hours_in_the_shoppers_zone_else_the_stores(self) -> None:
        program = Program(daily_cap=None, quiet_start=21 * 60, quiet_end=8 * 60)
        three_am_paris = Context(now=at("2026-01-13T03:00", PARIS))
        assert one(offer(), context=three_am_paris, program=program) == "quiet_hours"
        # 03:00 in Paris is 21:00 the evening before in New York: still quiet there.
        assert (
            one(offer(), context=three_am_paris, program=program, who=shopper(timezone=NEW_YORK))
            == "quiet_hours"
        )
        # 09:00 in Paris is 03:00 in New York: a New Yorker abroad set no zone, so Paris rules.
        nine = Context(now=at("2026-01-13T09:00", PARIS))
        assert one(offer(), context=nine, program=program) is None
        assert (
            one(offer(), context=nine, program=program, who=shopper(timezone=NEW_YORK))
            == "quiet_hours"
        )
        # The window's end is open: 08:00 sharp is no longer quiet.
        assert (
            one(offer(), context=Context(now=at("2026-01-13T08:00", PARIS)), program=program)
            is None
        )

    def test_outside_schedule(self) -> None:
        assert one(offer(schedule={"sat": ["07:00-10:30"]})) == "outside_schedule"
        assert one(offer(starts_at=NOW + dt.timedelta(seconds=1))) == "outside_schedule"
        assert one(offer(ends_at=NOW)) == "outside_schedule"
        assert one(offer(starts_at=NOW, ends_at=NOW + dt.timedelta(seconds=1))) is None

    @pytest.mark.parametrize(
        ("rule", "context", "reason"),
        [
            (WeatherRule(max_temp_c=10), COLD, None),
            (WeatherRule(max_temp_c=4.0), COLD, None),  # inclusive
            (WeatherRule(max_temp_c=3.9), COLD, "weather_mismatch"),
            (WeatherRule(min_temp_c=20), COLD, "weather_mismatch"),
            (WeatherRule(conditions=frozenset({"rain"})), COLD, "weather_mismatch"),
            (WeatherRule(conditions=frozenset({"rain", "clouds"})), COLD, None),
            (WeatherRule(max_temp_c=10), Context(now=NOW), "weather_mismatch"),
            (
                WeatherRule(max_temp_c=10),
                Context(now=NOW, weather_condition="rain"),
                "weather_mismatch",
            ),
        ],
    )
    def test_weather(self, rule: WeatherRule, context: Context, reason: str | None) -> None:
        assert one(offer(weather=rule), context=context) == reason

    @pytest.mark.parametrize(
        ("audience", "who", "reason"),
        [
            (Audience(tiers=frozenset({"Gold"})), shopper(tier="Gold"), None),
            (Audience(tiers=frozenset({"Gold"})), shopper(tier="Silver"), "audience_mismatch"),
            (Audience(tiers=frozenset({"Gold"})), shopper(), "audience_mismatch"),
            (Audience(min_points=100), shopper(points=100), None),
            (Audience(min_points=100), shopper(points=99), "audience_mismatch"),
            (Audience(max_points=100), shopper(points=101), "audience_mismatch"),
            (Audience(tags=frozenset({"a", "b"})), shopper(tags=frozenset({"b"})), None),
            (Audience(tags=frozenset({"a"})), shopper(tags=frozenset({"b"})), "audience_mismatch"),
            (
                Audience(exclude_tags=frozenset({"staff"})),
                shopper(tags=frozenset({"staff"})),
                "audience_mismatch",
            ),
        ],
    )
    def test_audience(self, audience: Audience, who: ShopperState, reason: str | None) -> None:
        assert one(offer(audience=audience), who=who) == reason

    def test_budget_exhausted(self) -> None:
        assert one(offer(budget_issued=5, issued_count=5)) == "budget_exhausted"
        assert one(offer(budget_issued=5, issued_count=4)) is None
        assert one(offer(budget_redeemed=2, redeemed_count=2)) == "budget_exhausted"

    def test_frequency_capped_over_rolling_windows(self) -> None:
        o = offer(caps=(Cap(max=1, seconds=86400), Cap(max=3, seconds=30 * 86400)))
        day_ago = NOW - dt.timedelta(hours=23)
        assert one(o, who=shopper(history=(Exposure(offer_id=1, at=day_ago),))) == (
            "frequency_capped"
        )
        older = NOW - dt.timedelta(hours=25)
        assert one(o, who=shopper(history=(Exposure(offer_id=1, at=older),))) is None
        three = tuple(Exposure(offer_id=1, at=NOW - dt.timedelta(days=d)) for d in (2, 5, 9))
        assert one(o, who=shopper(history=three)) == "frequency_capped"
        # Other offers' exposures do not count against this offer's caps.
        assert one(o, who=shopper(history=(Exposure(offer_id=2, at=day_ago),))) is None

    def test_fatigue_capped_across_offers(self) -> None:
        program = Program(daily_cap=2, quiet_start=0, quiet_end=0)
        recent = tuple(Exposure(offer_id=i, at=NOW - dt.timedelta(hours=i)) for i in (2, 3))
        assert one(offer(), who=shopper(history=recent), program=program) == "fatigue_capped"
        assert one(offer(), who=shopper(history=recent[:1]), program=program) is None

    def test_holdout_and_lower_priority(self) -> None:
        held = offer(1, holdout_pct=100, priority=5)
        other = offer(2, priority=1)
        third = offer(3, priority=0)
        out = decide.decide(COLD, shopper(), [cand(third), cand(held), cand(other)], NO_QUIET)
        assert [(d.offer_id, d.reason) for d in out] == [
            (1, "holdout"),
            (2, None),
            (3, "lower_priority"),
        ]

    def test_every_reason_is_reachable(self) -> None:
        seen = {
            one(offer(), who=shopper(marketing_consent=False)),
            one(offer(), context=Context(now=at("2026-01-13T03:00", PARIS)), program=Program()),
            one(offer(schedule={"sat": ["07:00-08:00"]})),
            one(offer(), hours={"sat": ["07:00-08:00"]}),
            one(offer(weather=WeatherRule(min_temp_c=30))),
            one(offer(audience=Audience(min_points=1))),
            one(offer(budget_issued=1, issued_count=1)),
            one(
                offer(caps=(Cap(max=1, seconds=3600),)),
                who=shopper(history=(Exposure(offer_id=1, at=NOW),)),
            ),
            one(
                offer(),
                who=shopper(history=(Exposure(offer_id=9, at=NOW),)),
                program=Program(daily_cap=1, quiet_start=0, quiet_end=0),
            ),
            one(offer(holdout_pct=100)),
        }
        out = decide.decide(COLD, shopper(), [cand(offer(1, priority=1)), cand(offer(2))], NO_QUIET)
        seen |= {d.reason for d in out}
        lapsed = replace(cand(offer()), due_by=COLD.now)  # a journey's moment has passed
        seen |= {d.reason for d in decide.decide(COLD, shopper(), [lapsed], NO_QUIET)}
        assert seen - {None} == set(REASONS)

    def test_a_journey_occurrence_is_sent_only_before_it_lapses(self) -> None:
        due = replace(cand(offer()), due_by=COLD.now + dt.timedelta(seconds=1))
        assert [d.reason for d in decide.decide(COLD, shopper(), [due], NO_QUIET)] == [None]
        late = replace(due, due_by=COLD.now)
        assert [d.reason for d in decide.decide(COLD, shopper(), [late], NO_QUIET)] == [
            "occurrence_lapsed"
        ]
        # Consent and quiet hours come first: a lapsed occurrence without consent is no_consent.
        shy = shopper(marketing_consent=False)
        assert [d.reason for d in decide.decide(COLD, shy, [late], NO_QUIET)] == ["no_consent"]

    def test_the_first_failing_rule_is_the_reason(self) -> None:
        everything_wrong = offer(
            schedule={"sat": ["07:00-08:00"]},
            weather=WeatherRule(min_temp_c=30),
            audience=Audience(min_points=1),
            budget_issued=1,
            issued_count=1,
        )
        assert one(everything_wrong, who=shopper(marketing_consent=False)) == "no_consent"
        assert one(everything_wrong) == "outside_schedule"
        assert one(replace(everything_wrong, schedule=None)) == "weather_mismatch"
        closed = {"sat": ["07:00-08:00"]}
        assert one(everything_wrong, hours=closed) == "outside_schedule"
        assert one(replace(everything_wrong, schedule=None), hours=closed) == "store_closed"
        assert one(replace(everything_wrong, schedule=None, weather=None)) == "audience_mismatch"

    def test_not_sent_while_the_store_is_closed_unless_the_offer_opts_out(self) -> None:
        # NOW is Monday 09:00 in Paris, 03:00 in New York.
        opens_at_ten = {"mon": ["10:00-19:00"]}
        assert one(offer(), hours=opens_at_ten) == "store_closed"
        assert one(offer(fire_when_closed=True), hours=opens_at_ten) is None
        assert one(offer(), hours={"mon": ["08:00-19:00"]}) is None
        # No opening hours: always open.
        assert one(offer(), hours=None) is None
        # In the store's own zone: 09:00 in Paris is 03:00 in New York, closed there.
        assert one(offer(), hours={"mon": ["08:00-19:00"]}, tz=NEW_YORK) == "store_closed"
        # Sunday's late hours running past midnight keep it open on Monday's small hours.
        late = Context(now=at("2026-01-12T01:30", PARIS))
        assert one(offer(), context=late, hours={"sun": ["18:00-02:00"]}) is None
        assert one(offer(), context=late, hours={"mon": ["18:00-02:00"]}) == "store_closed"


class TestSchedules:
    WEEKDAY_MORNINGS = {d: ["07:00-10:30"] for d in ("mon", "tue", "wed", "thu", "fri")}

    @pytest.mark.parametrize(
        ("local", "inside"),
        [
            # Paris springs forward on Sunday 29 March 2026 (02:00 -> 03:00): Monday's
            # window is 07:00 local, now 05:00 UTC instead of 06:00.
            ("2026-03-30T07:00", True),
            ("2026-03-30T06:59", False),
            ("2026-03-30T10:29", True),
            ("2026-03-30T10:30", False),
            # and falls back on Sunday 25 October 2026.
            ("2026-10-26T07:00", True),
            ("2026-10-26T06:59", False),
            ("2026-10-23T10:29", True),
        ],
    )
    def test_windows_follow_local_time_across_dst(self, local: str, inside: bool) -> None:
        o = offer(schedule=self.WEEKDAY_MORNINGS)
        reason = one(o, context=replace(COLD, now=at(local, PARIS)))
        assert (reason is None) == inside

    def test_same_utc_instant_before_and_after_the_change(self) -> None:
        o = offer(schedule=self.WEEKDAY_MORNINGS)
        # 06:30 UTC is 07:30 in Paris on Friday 27 March (winter time) and 08:30 on
        # Monday 30 March (summer time); 05:30 UTC is inside only after the change.
        before = dt.datetime(2026, 3, 27, 5, 30, tzinfo=dt.UTC)
        after = dt.datetime(2026, 3, 30, 5, 30, tzinfo=dt.UTC)
        assert one(o, context=replace(COLD, now=before)) == "outside_schedule"
        assert one(o, context=replace(COLD, now=after)) is None

    def test_new_york_dst(self) -> None:
        o = offer(schedule={"sun": ["01:30-03:30"]})
        # 8 March 2026: 02:00 does not exist in New York; 03:15 local does and is inside.
        assert (
            one(o, context=replace(COLD, now=at("2026-03-08T03:15", NEW_YORK)), tz=NEW_YORK) is None
        )
        assert (
            one(o, context=replace(COLD, now=at("2026-03-08T03:45", NEW_YORK)), tz=NEW_YORK)
            == "outside_schedule"
        )

    def test_a_window_past_midnight_belongs_to_the_day_it_starts(self) -> None:
        o = offer(schedule={"fri": ["22:00-02:00"]})
        assert one(o, context=replace(COLD, now=at("2026-01-17T01:30", PARIS))) is None  # Sat
        assert one(o, context=replace(COLD, now=at("2026-01-17T02:00", PARIS))) == (
            "outside_schedule"
        )
        assert one(o, context=replace(COLD, now=at("2026-01-16T21:59", PARIS))) == (
            "outside_schedule"
        )
        # Saturday night is not Friday night.
        assert one(o, context=replace(COLD, now=at("2026-01-18T01:30", PARIS))) == (
            "outside_schedule"
        )

    def test_evaluated_in_the_stores_zone(self) -> None:
        o = offer(schedule=self.WEEKDAY_MORNINGS)
        instant = replace(COLD, now=at("2026-01-12T09:00", PARIS))  # 03:00 in New York
        assert one(o, context=instant, tz=PARIS) is None
        assert one(o, context=instant, tz=NEW_YORK) == "outside_schedule"


class TestRanking:
    def test_priority_then_soonest_end_then_oldest(self) -> None:
        soon = NOW + dt.timedelta(days=1)
        later = NOW + dt.timedelta(days=9)
        offers = [
            offer(5, priority=1),
            offer(4, priority=3, ends_at=later),
            offer(3, priority=3, ends_at=soon),
            offer(2, priority=3),
            offer(1, priority=0),
        ]
        out = decide.decide(COLD, shopper(), [cand(o) for o in offers], NO_QUIET)
        assert [d.offer_id for d in out] == [3, 4, 2, 5, 1]
        assert [d.send for d in out] == [True, False, False, False, False]
        assert {d.reason for d in out[1:]} == {"lower_priority"}
        same = [offer(8, priority=2), offer(6, priority=2), offer(7, priority=2)]
        out = decide.decide(COLD, shopper(), [cand(o) for o in same], NO_QUIET)
        assert [d.offer_id for d in out if d.send] == [6]

    def test_one_decision_per_offer_even_from_several_fences(self) -> None:
        o = offer()
        out = decide.decide(
            COLD, shopper(), [cand(o, fence=300), cand(o, fence=200), cand(o, fence=250)], NO_QUIET
        )
        assert [(d.offer_id, d.fence_id, d.send) for d in out] == [(1, 200, True)]

    def test_suppressed_offers_never_block_the_send(self) -> None:
        blocked = offer(1, priority=9, audience=Audience(min_points=10**6))
        fine = offer(2, priority=0)
        out = decide.decide(COLD, shopper(), [cand(blocked), cand(fine)], NO_QUIET)
        assert {d.offer_id: d.reason for d in out} == {1: "audience_mismatch", 2: None}

    def test_nothing_in_nothing_out(self) -> None:
        assert decide.decide(COLD, shopper(), [], NO_QUIET) == []


class TestHoldout:
    def test_deterministic_and_independent_of_process(self) -> None:
        # A fixed value: Python's hash() would change between runs, SHA-256 does not.
        assert decide.holdout_bucket(1, 1) == decide.holdout_bucket(1, 1)
        assert 0 <= decide.holdout_bucket(1, 1) < 100
        assert decide.holdout_bucket(1, 2) != decide.holdout_bucket(2, 1)

    @pytest.mark.parametrize("pct", [5.0, 20.0, 50.0])
    def test_about_pct_of_shoppers_are_held_out(self, pct: float) -> None:
        n = 20_000
        held = sum(decide.held_out(offer(holdout_pct=pct), s) for s in range(n))
        p = pct / 100
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(held - n * p) < 5 * sigma, (held, n * p)

    def test_held_out_exposures_count_in_caps_but_not_in_the_daily_cap(self) -> None:
        held = shopper(history=(Exposure(offer_id=1, at=NOW, held_out=True),))
        capped = offer(caps=(Cap(max=1, seconds=3600),))
        assert one(capped, who=held) == "frequency_capped"
        program = Program(daily_cap=1, quiet_start=0, quiet_end=0)
        assert one(offer(2), who=held, program=program) is None

    def test_zero_holdout_holds_out_no_one(self) -> None:
        assert not any(decide.held_out(offer(holdout_pct=0), s) for s in range(1000))
