"""The soak's reconciliation: what the load was answered, against what the database holds.

Every figure under ``lost`` must be 0: an answered ping not logged or logged twice, a
decision the app was given that is not in its shopper's inbox exactly once, a coupon
redeemed twice, a budget or cap exceeded, a push neither delivered nor dead-lettered with
its reason, an outbox row still pending after the drain.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from gateway.demo import localpush
from offers import codes
from tests.benchmarks.soak_load import Record

CUT = "of which the first attempt was cut by kill -9"
"""Pings with a client id are logged in the transaction of their receipt, so a kill -9
cannot leave an answer without its log row; should one be missing all the same, this
line says whether its first attempt was on a killed replica (deploy/SCALING.md)."""

# Sent decisions per (offer, shopper, local day) beyond the offer's one-day cap, and per
# (shopper, local day) beyond the program's daily cap. The demo's offers' caps are all
# `{"max": N, "days": 1}`; the soak runs within a day or straddles one midnight at most.
CAPS = """
WITH sent AS (
    SELECT d.offer_id, d.shopper_id, (d.decided_at AT TIME ZONE 'Europe/Paris')::date AS day
    FROM decisions d WHERE d.merchant_id = $1 AND d.outcome = 'sent'
)
SELECT
  (SELECT count(*) FROM (
     SELECT s.offer_id FROM sent s JOIN offers o ON o.id = s.offer_id
     CROSS JOIN LATERAL jsonb_array_elements(o.caps) AS c(cap)
     WHERE (c.cap ->> 'days')::int = 1
     GROUP BY s.offer_id, s.shopper_id, s.day, c.cap
     HAVING count(*) > max((c.cap ->> 'max')::int)) x) AS offer_caps_exceeded,
  (SELECT count(*) FROM (
     SELECT 1 FROM sent s JOIN merchants m ON m.id = $1
     GROUP BY s.shopper_id, s.day, m.daily_offer_cap
     HAVING count(*) > m.daily_offer_cap) y) AS daily_caps_exceeded,
  (SELECT count(*) FROM offers o WHERE o.merchant_id = $1 AND o.budget_issued IS NOT NULL
     AND (SELECT count(*) FROM decisions d WHERE d.offer_id = o.id AND d.outcome = 'sent')
         > o.budget_issued) AS budgets_exceeded,
  (SELECT count(*) FROM offers o WHERE o.merchant_id = $1 AND o.budget_issued IS NOT NULL
     AND o.issued_count >= o.budget_issued) AS budgets_used_up
"""

INBOXES = """
SELECT
  (SELECT count(*) FROM decisions WHERE merchant_id = $1 AND outcome = 'sent') AS sent,
  (SELECT count(*) FROM decisions WHERE merchant_id = $1) AS decisions,
  (SELECT count(*) FROM decisions d WHERE d.merchant_id = $1 AND d.outcome = 'sent'
     AND (SELECT count(*) FROM deliveries v
          WHERE v.decision_id = d.id AND v.shopper_id = d.shopper_id) <> 1) AS not_in_one_inbox
"""

OUTBOX = """
SELECT
  count(*) FILTER (WHERE channel = 'webpush') AS pushes,
  count(*) FILTER (WHERE channel = 'webpush' AND status = 'done'
                   AND cardinality(done_targets) > 0) AS delivered,
  count(*) FILTER (WHERE channel = 'webpush' AND status = 'done'
                   AND cardinality(done_targets) = 0) AS no_subscription,
  count(*) FILTER (WHERE channel = 'webpush' AND status = 'dead') AS dead_lettered,
  count(*) FILTER (WHERE status = 'dead' AND coalesce(last_error, '') = '') AS dead_without_reason,
  count(*) FILTER (WHERE status = 'pending') AS pending,
  count(*) FILTER (WHERE attempts > 1) AS retried
FROM outbox WHERE merchant_id = $1
"""


async def reconcile(
    conn: asyncpg.Connection, merchant_id: int, rec: Record, push: localpush.PushService
) -> dict[str, Any]:
    logged: dict[tuple[int, Any], int] = {}
    rows = await conn.fetch(
        "SELECT shopper_id, ts, count(*) AS n FROM pings WHERE merchant_id = $1 "
        "GROUP BY shopper_id, ts",
        merchant_id,
    )
    for r in rows:
        logged[(r["shopper_id"], r["ts"])] = r["n"]
    missing = sorted(key for key in rec.answered if key not in logged)
    # A ping whose first attempt died with a killed replica after its receipt committed and
    # before it was spooled: the resend is answered from the receipt, and nothing logs it.
    cut = [key for key in missing if key in rec.cut]
    twice = sum(1 for key in rec.answered if logged.get(key, 0) > 1)

    inboxes = dict(await conn.fetchrow(INBOXES, merchant_id) or {})
    known = {
        str(r["id"])
        for r in await conn.fetch("SELECT id FROM deliveries WHERE merchant_id = $1", merchant_id)
    }
    decisions_lost = len(rec.deliveries - known)

    redeemed = await conn.fetch(
        "SELECT c.code, count(*) AS n FROM redemptions r JOIN coupons c ON c.id = r.coupon_id "
        "WHERE r.merchant_id = $1 AND r.voided_at IS NULL GROUP BY c.code",
        merchant_id,
    )
    in_db = {r["code"]: r["n"] for r in redeemed}
    redeemed_twice = sum(1 for n in in_db.values() if n > 1)
    redemptions_lost = len({codes.normalize(c) for c in rec.redeemed} - in_db.keys())

    caps = dict(await conn.fetchrow(CAPS, merchant_id) or {})
    outbox = dict(await conn.fetchrow(OUTBOX, merchant_id) or {})
    done_ids = {
        str(r["delivery_id"])
        for r in await conn.fetch(
            "SELECT delivery_id FROM outbox WHERE merchant_id = $1 AND channel = 'webpush' "
            "AND status = 'done' AND cardinality(done_targets) > 0",
            merchant_id,
        )
    }
    received = set()
    for item in push.received:
        try:
            received.add(str(item.json()["delivery_id"]))
        except (ValueError, KeyError):
            continue
    pushes_not_received = len(done_ids - received)

    lost = {
        "answered pings not logged": len(missing),
        CUT: len(cut),
        "answered pings logged twice": twice,
        "pings never answered (gave up)": rec.unanswered,
        "decisions answered but not in the database": decisions_lost,
        "sent decisions not in exactly one inbox": inboxes["not_in_one_inbox"],
        "coupons redeemed twice": redeemed_twice + rec.second_scans_accepted,
        "redemptions answered 201 but not in the database": redemptions_lost,
        "budgets exceeded": caps["budgets_exceeded"],
        "offer caps exceeded": caps["offer_caps_exceeded"],
        "daily caps exceeded": caps["daily_caps_exceeded"],
        "pushes done but never received": pushes_not_received,
        "dead letters without a reason": outbox["dead_without_reason"],
        "outbox rows still pending": outbox["pending"],
    }
    found = {
        "pings answered": len(rec.answered),
        "pings logged": sum(logged.values()),
        "decisions": inboxes["decisions"],
        "decisions sent": inboxes["sent"],
        "coupons redeemed": len(in_db),
        "second scans refused": rec.second_scans_refused,
        "redemptions given up": rec.redemption_failures,
        "budgets used up (held at their limit)": caps["budgets_used_up"],
        "pushes": outbox["pushes"],
        "pushes delivered": outbox["delivered"],
        "pushes to shoppers with no subscription": outbox["no_subscription"],
        "pushes dead-lettered": outbox["dead_lettered"],
        "outbox rows retried": outbox["retried"],
        "shoppers enrolled": rec.enrolled,
    }
    # A few of what was lost, to look for in the replicas' logs.
    examples = {"pings not logged (shopper, ts)": [[k[0], k[1].isoformat()] for k in missing[:5]]}
    return {
        "found": found,
        "lost": lost,
        "nothing_lost": not any(lost.values()),
        "examples": examples,
    }
