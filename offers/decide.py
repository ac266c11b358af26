"""The decision engine: which of the offers a ping triggered, if any, to send now.

Pure: context, shopper state and candidates in, one decision per offer out. Each
candidate is checked against the rules in the order of `models.REASONS`, and the
first rule it fails is its reason. Of those that pass, at most one is sent: the
highest priority, then the one ending soonest (use it or lose it), then the oldest
(lowest id). A held-out winner is recorded as "would have been sent" (reason
`holdout`) and the next one in line may be sent instead; every other passing offer
is `lower_priority`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo
from collections.abc import Sequence
from functools import lru_cache

from geo import places
from offers.models import (
    Audience,
    Candidate,
    Context,
    Decision,
    Offer,
    Program,
    Reason,
    ShopperState,
    WeatherRule,
)

DAY = dt.timedelta(days=1)
_FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.UTC)


@lru_cache(maxsize=1024)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def in_quiet_hours(program: Program, now: dt.datetime, timezone: str) -> bool:
    if program.quiet_start == program.quiet_end:
        return False
    local = now.astimezone(_zone(timezone))
    minute = local.hour * 60 + local.minute
    start, end = program.quiet_start, program.quiet_end
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # the window runs past midnight


def in_schedule(offer: Offer, now: dt.datetime, timezone: str) -> bool:
    if offer.starts_at is not None and now < offer.starts_at:
        return False
    if offer.ends_at is not None and now >= offer.ends_at:
        return False
    if offer.schedule is None:
        return True
    return places.is_open(offer.schedule, now, timezone)


def matches_weather(rule: WeatherRule | None, context: Context) -> bool:
    if rule is None:
        return True
    if rule.conditions is not None and context.weather_condition not in rule.conditions:
        return False
    if rule.min_temp_c is not None or rule.max_temp_c is not None:
        temp = context.temp_c
        if temp is None:
            return False
        if rule.min_temp_c is not None and temp < rule.min_temp_c:
            return False
        if rule.max_temp_c is not None and temp > rule.max_temp_c:
            return False
    # A rule always asks for something; a ping that says nothing about weather meets none.
    return context.weather_condition is not None or context.temp_c is not None


def matches_audience(audience: Audience | None, shopper: ShopperState) -> bool:
    if audience is None:
        return True
    if audience.tiers is not None and shopper.tier not in audience.tiers:
        return False
    if audience.min_points is not None and shopper.points < audience.min_points:
        return False
    if audience.max_points is not None and shopper.points > audience.max_points:
        return False
    if audience.tags is not None and not (audience.tags & shopper.tags):
        return False
    return not (audience.exclude_tags & shopper.tags)


def budget_left(offer: Offer) -> bool:
    if offer.budget_issued is not None and offer.issued_count >= offer.budget_issued:
        return False
    return not (offer.budget_redeemed is not None and offer.redeemed_count >= offer.budget_redeemed)


def frequency_capped(offer: Offer, shopper: ShopperState, now: dt.datetime) -> bool:
    # Holdout exposures count: otherwise a held-out shopper would be recorded again on
    # every pass, and the holdout group would count visits, not shoppers.
    for cap in offer.caps:
        since = now - dt.timedelta(seconds=cap.seconds)
        seen = sum(1 for e in shopper.history if e.offer_id == offer.id and e.at > since)
        if seen >= cap.max:
            return True
    return False


def fatigued(program: Program, shopper: ShopperState, now: dt.datetime) -> bool:
    if program.daily_cap is None:
        return False
    since = now - DAY
    sent = sum(1 for e in shopper.history if not e.held_out and e.at > since)
    return sent >= program.daily_cap


def holdout_bucket(offer_id: int, shopper_id: int) -> float:
    """A stable number in [0, 100) for the pair, the same in every process and release."""
    digest = hashlib.sha256(f"holdout:{offer_id}:{shopper_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def held_out(offer: Offer, shopper_id: int) -> bool:
    return offer.holdout_pct > 0 and holdout_bucket(offer.id, shopper_id) < offer.holdout_pct


def _rule_failed(
    candidate: Candidate, context: Context, shopper: ShopperState, program: Program
) -> Reason | None:
    offer = candidate.offer
    if not shopper.marketing_consent:
        return "no_consent"
    if in_quiet_hours(program, context.now, shopper.timezone or candidate.store_timezone):
        return "quiet_hours"
    if not in_schedule(offer, context.now, candidate.store_timezone):
        return "outside_schedule"
    if candidate.due_by is not None and context.now >= candidate.due_by:
        return "occurrence_lapsed"
    if not offer.fire_when_closed and not places.is_open(
        candidate.store_hours, context.now, candidate.store_timezone
    ):
        return "store_closed"
    if not matches_weather(offer.weather, context):
        return "weather_mismatch"
    if not matches_audience(offer.audience, shopper):
        return "audience_mismatch"
    if not budget_left(offer):
        return "budget_exhausted"
    if frequency_capped(offer, shopper, context.now):
        return "frequency_capped"
    if fatigued(program, shopper, context.now):
        return "fatigue_capped"
    return None


def rank_key(offer: Offer) -> tuple[int, dt.datetime, int]:
    """Priority first, then the offer ending soonest, then the oldest offer."""
    return (-offer.priority, offer.ends_at or _FAR_FUTURE, offer.id)


def decide(
    context: Context,
    shopper: ShopperState,
    candidates: Sequence[Candidate],
    program: Program,
) -> list[Decision]:
    """One decision per distinct offer among the candidates; at most one is a send.

    Decisions come out in rank order for the offers that passed every rule, then the
    suppressed ones by offer id.
    """
    by_offer: dict[int, Candidate] = {}
    for c in candidates:
        kept = by_offer.get(c.offer.id)
        if kept is None or c.fence_id < kept.fence_id:
            by_offer[c.offer.id] = c

    eligible: list[Candidate] = []
    suppressed: list[Decision] = []
    for offer_id in sorted(by_offer):
        c = by_offer[offer_id]
        reason = _rule_failed(c, context, shopper, program)
        if reason is None:
            eligible.append(c)
        else:
            suppressed.append(_decision(c, reason))

    ranked: list[Decision] = []
    winner_found = False
    for c in sorted(eligible, key=lambda c: rank_key(c.offer)):
        if winner_found:
            ranked.append(_decision(c, "lower_priority"))
        elif held_out(c.offer, shopper.shopper_id):
            ranked.append(_decision(c, "holdout"))
        else:
            ranked.append(_decision(c, None))
            winner_found = True
    return ranked + suppressed


def _decision(c: Candidate, reason: Reason | None) -> Decision:
    return Decision(
        offer_id=c.offer.id,
        fence_id=c.fence_id,
        store_id=c.store_id,
        send=reason is None,
        reason=reason,
    )
