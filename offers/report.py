"""The funnel of an offer from its rollup rows: eligible, suppressed by reason, sent,
delivered, opened, redeemed, and the holdout comparison with its uplift.

Pure: the rows come from `store.funnel_rows`, one per (day, store, channel, metric).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any, Literal

from offers import stats
from offers.models import REASONS

Breakdown = Literal["store", "channel", "day"]
DELIVERY_METRICS = ("delivered", "opened", "dismissed", "failed")


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def summarize(counts: Mapping[str, int]) -> dict[str, Any]:
    """One funnel from metric totals."""
    eligible = counts.get("eligible", 0)
    sent = counts.get("sent", 0)
    by_reason = {r: counts.get(f"suppressed:{r}", 0) for r in REASONS}
    delivered = counts.get("delivered", 0)
    opened = counts.get("opened", 0)
    redeemed = counts.get("redeemed", 0)
    held_out = by_reason["holdout"]
    treated_conv = counts.get("converted:sent", 0)
    holdout_conv = counts.get("converted:holdout", 0)
    uplift = stats.uplift(sent, treated_conv, held_out, holdout_conv)
    return {
        "eligible": eligible,
        "suppressed": {"total": sum(by_reason.values()), "by_reason": by_reason},
        "sent": sent,
        "delivered": delivered,
        "opened": opened,
        "dismissed": counts.get("dismissed", 0),
        "failed": counts.get("failed", 0),
        "redeemed": redeemed,
        "rates": {
            "sent_of_eligible": _rate(sent, eligible),
            "delivered_of_sent": _rate(delivered, sent),
            "opened_of_delivered": _rate(opened, delivered),
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
