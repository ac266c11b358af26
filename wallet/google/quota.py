"""Google's notification quota: at most 3 notifying updates per pass in any 24 hours.

Past the quota an update is still sent, silently, and the silence is recorded. Which
changes are worth a notification is decided here too: points earned or granted, a new
tier and a new coupon; spending, expiry, redemption and voids update quietly.
"""

from __future__ import annotations

import datetime as dt

PER_WINDOW = 3
WINDOW = dt.timedelta(hours=24)

# pass_updates reasons that tell the shopper something new.
NOTIFYING = frozenset({"points_earn", "points_adjust", "tier_changed", "coupon_issued"})


def wants_notification(reason: str) -> bool:
    return reason in NOTIFYING


def window_start(now: dt.datetime) -> dt.datetime:
    return now - WINDOW


def may_notify(sent_in_window: int) -> bool:
    """Whether one more notification fits, given those sent in the last 24 hours."""
    return sent_in_window < PER_WINDOW
