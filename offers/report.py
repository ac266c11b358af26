"""The funnel of an offer from its rollup rows: candidates, eligible, suppressed by
reason, sent, delivered, opened, saved to wallet (by wallet), redeemed, and the holdout
comparison with its uplift.

The stages are defined once, in `STAGES`: the API's description, the demo's report and
the README quote these words. Pure: the rows come from `store.funnel_rows`, one per
(day, store, channel, metric).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any, Literal

from offers import stats
from offers.models import REASONS, TARGETING_REASONS

Breakdown = Literal["store", "channel", "day"]
DELIVERY_METRICS = ("delivered", "opened", "dismissed", "failed")
WALLETS = ("apple", "google")

# (key in the report, label, definition). sent >= delivered >= opened holds by
# construction: an open records the delivery it implies.
STAGES: tuple[tuple[str, str, str], ...] = (
    (
        "candidates",
        "Candidates",
        "decisions: times a shopper entering or dwelling at one of the offer's geofences "
        "or stores made the offer a candidate",
    ),
    (
        "eligible",
        "Eligible",
        "candidates that passed the offer's targeting: consent, quiet hours, schedule, "
        "opening hours, weather and audience (a weekend-only offer is never eligible on a "
        "weekday)",
    ),
    (
        "suppressed",
        "Suppressed",
        "candidates not sent, by reason: the targeting reasons (not eligible), then for "
        "eligible ones budget, caps, holdout or another offer's priority",
    ),
    ("sent", "Sent", "coupons issued: eligible decisions that sent the offer"),
    (
        "delivered",
        "Delivered",
        "sent coupons that reached the shopper on at least one channel: in the app (the "
        "ping's answer or the inbox), by Web Push or on the wallet pass",
    ),
    (
        "opened",
        "Opened",
        "delivered coupons the shopper opened (an open counts as a delivery too)",
    ),
    (
        "saved",
        "Saved to wallet",
        "sent coupons the shopper added to a wallet, by wallet: Apple Wallet when a device "
        "registered the coupon's pass, Google Wallet when Google's signed callback reported "
        "the save; each coupon counts once per wallet, and removed counts those taken out of "
        "that wallet since",
    ),
    ("redeemed", "Redeemed", "coupons redeemed at the till, voided redemptions excluded"),
    (
        "conv_sent",
        "Conv. sent",
        "conversion rate of shoppers sent the offer: the share of sends followed by a "
        "redemption or purchase at one of the offer's stores while the coupon was valid",
    ),
    (
        "conv_holdout",
        "Conv. holdout",
        "the same rate for held-out shoppers, who were eligible but deliberately not sent",
    ),
    (
        "uplift",
        "Uplift",
        "conv. sent minus conv. holdout, in percentage points, with its 95 % interval "
        "(Newcombe's hybrid score) and the p-value of a two-proportion z test",
    ),
)
DEFINITIONS = {key: definition for key, _, definition in STAGES}

# Reason codes in words, for people.
REASON_WORDS: dict[str, str] = {
    "no_consent": "no marketing consent",
    "quiet_hours": "quiet hours",
    "outside_schedule": "outside the schedule",
    "occurrence_lapsed": "journey moment passed",
    "store_closed": "store closed",
    "weather_mismatch": "weather did not match",
    "audience_mismatch": "not in the audience",
    "budget_exhausted": "budget used up",
    "frequency_capped": "per-shopper cap reached",
    "fatigue_capped": "daily offer limit reached",
    "holdout": "held out (control group)",
    "lower_priority": "another offer had priority",
}


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _saved(counts: Mapping[str, int]) -> dict[str, Any]:
    """Coupons saved to each wallet, and of those the ones out of it now."""
    by_wallet = {w: counts.get(f"saved:{w}", 0) for w in WALLETS}
    return {
        "total": sum(by_wallet.values()),
        "by_wallet": by_wallet,
        "removed": {w: counts.get(f"removed:{w}", 0) for w in WALLETS},
    }


def summarize(counts: Mapping[str, int]) -> dict[str, Any]:
    """One funnel from metric totals."""
    # The rollups' "eligible" metric counts every decision: the candidates. (Its name
    # predates the funnel's definitions; renaming stored rows is not worth a migration.)
    candidates = counts.get("eligible", 0)
    sent = counts.get("sent", 0)
    by_reason = {r: counts.get(f"suppressed:{r}", 0) for r in REASONS}
    not_eligible = sum(by_reason[r] for r in TARGETING_REASONS)
    eligible = candidates - not_eligible
    delivered = counts.get("delivered", 0)
    opened = counts.get("opened", 0)
    redeemed = counts.get("redeemed", 0)
    saved = _saved(counts)
    held_out = by_reason["holdout"]
    treated_conv = counts.get("converted:sent", 0)
    holdout_conv = counts.get("converted:holdout", 0)
    uplift = stats.uplift(sent, treated_conv, held_out, holdout_conv)
    return {
        "candidates": candidates,
        "eligible": eligible,
        "suppressed": {
            "total": sum(by_reason.values()),
            "not_eligible": not_eligible,
            "eligible_not_sent": eligible - sent,
            "by_reason": by_reason,
        },
        "sent": sent,
        "delivered": delivered,
        "opened": opened,
        "dismissed": counts.get("dismissed", 0),
        "failed": counts.get("failed", 0),
        "saved": saved,
        "redeemed": redeemed,
        "rates": {
            "eligible_of_candidates": _rate(eligible, candidates),
            "sent_of_eligible": _rate(sent, eligible),
            "delivered_of_sent": _rate(delivered, sent),
            "opened_of_delivered": _rate(opened, delivered),
            "saved_of_sent": _rate(saved["total"], sent),
            "redeemed_of_sent": _rate(redeemed, sent),
        },
        "holdout": {
            "treatment": {"decisions": sent, "converted": treated_conv},
            "holdout": {"decisions": held_out, "converted": holdout_conv},
            "uplift": asdict(uplift),
        },
    }


def funnel(
    rows: Iterable[Mapping[str, Any]], by: Breakdown | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The whole funnel, and with `by` one funnel per store, channel or day."""
    total: dict[str, int] = defaultdict(int)
    groups: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        metric, n = row["metric"], int(row["n"])
        # A delivery can reach several channels: its channel rows feed the by-channel
        # view, and one channel-less row per delivery (its first success) the totals and
        # the store and day views, which must add up to the totals.
        once = metric not in DELIVERY_METRICS or not row["channel"]
        if once:
            total[metric] += n
        if by == "store" and once:
            groups[str(row["store_id"])][metric] += n
        elif by == "day" and once:
            groups[row["day"].isoformat()][metric] += n
        elif by == "channel" and row["channel"]:
            # Decisions and redemptions happen before a channel is involved.
            groups[row["channel"]][metric] += n
    breakdown = [{"key": key, **summarize(groups[key])} for key in sorted(groups)]
    return summarize(total), breakdown
