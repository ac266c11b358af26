-- Offers, program rules, decisions, coupons, redemptions and reports.

-- name: offer_columns
id, merchant_id, name, title, body, image_url, channels, trigger, status, geofence_ids,
store_ids, scope_store_ids, starts_at, ends_at, schedule, weather, audience, caps,
budget_issued, budget_redeemed, issued_count, redeemed_count, priority, holdout_pct, coupon,
fire_when_closed, created_at, updated_at

-- name: fence_stores
-- The store of each of the given geofences of this merchant (missing ones are absent).
SELECT id, store_id FROM geofences WHERE merchant_id = $1 AND id = ANY($2::bigint[]);

-- name: existing_stores
SELECT id FROM stores WHERE merchant_id = $1 AND id = ANY($2::bigint[]);

-- name: insert_offer
INSERT INTO offers (merchant_id, name, title, body, image_url, channels, trigger, status,
                    geofence_ids, store_ids, scope_store_ids, starts_at, ends_at, schedule,
                    weather, audience, caps, budget_issued, budget_redeemed, priority,
                    holdout_pct, coupon, fire_when_closed)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22, $23)
RETURNING {offer_columns};

-- name: get_offer
-- Offers that carry a reward's coupon (trigger 'reward') belong to the rewards catalog.
SELECT {offer_columns} FROM offers WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
  AND trigger <> 'reward';

-- name: lock_offer
SELECT {offer_columns} FROM offers WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
  AND trigger <> 'reward'
FOR UPDATE;

-- name: update_offer
UPDATE offers SET name = $3, title = $4, body = $5, image_url = $6, channels = $7, trigger = $8,
    status = $9, geofence_ids = $10, store_ids = $11, scope_store_ids = $12, starts_at = $13,
    ends_at = $14, schedule = $15, weather = $16, audience = $17, caps = $18,
    budget_issued = $19, budget_redeemed = $20, priority = $21, holdout_pct = $22, coupon = $23,
    fire_when_closed = $24, updated_at = now()
WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
RETURNING {offer_columns};

-- name: list_offers
-- A store-scoped reader ($2 not NULL) sees the offers that touch only its stores.
SELECT {offer_columns} FROM offers
WHERE merchant_id = $1 AND deleted_at IS NULL AND trigger <> 'reward'
  AND ($2::bigint[] IS NULL OR scope_store_ids <@ $2::bigint[])
  AND ($3::text IS NULL OR status = $3)
  AND id > $4
ORDER BY id
LIMIT $5;

-- name: active_offers
-- What a gateway process caches to find candidates; ended offers are left out.
SELECT {offer_columns} FROM offers
WHERE merchant_id = $1 AND deleted_at IS NULL AND status = 'active' AND trigger <> 'reward'
  AND (ends_at IS NULL OR ends_at > now());

-- name: archive_offer
UPDATE offers SET deleted_at = now(), status = 'paused', updated_at = now()
WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL AND trigger <> 'reward'
RETURNING id;

-- name: store_hours
SELECT id, timezone, opening_hours FROM stores WHERE merchant_id = $1;

-- name: get_program
SELECT daily_offer_cap, quiet_start, quiet_end FROM merchants WHERE id = $1;

-- name: set_program
UPDATE merchants SET daily_offer_cap = $2, quiet_start = $3, quiet_end = $4 WHERE id = $1
RETURNING daily_offer_cap, quiet_start, quiet_end;

-- name: shopper_offer_state
-- Read after the shopper's state row is locked by the ping path, so it sees
-- every earlier decision for this shopper on any replica.
SELECT s.marketing_consent, s.timezone, s.tier, s.points, s.tags,
       coalesce(h.offer_ids, '{}') AS offer_ids,
       coalesce(h.decided_ats, '{}') AS decided_ats,
       coalesce(h.held_outs, '{}') AS held_outs
FROM shoppers s
LEFT JOIN LATERAL (
    SELECT array_agg(d.offer_id) AS offer_ids, array_agg(d.decided_at) AS decided_ats,
           array_agg(d.outcome = 'suppressed') AS held_outs
    FROM decisions d
    WHERE d.shopper_id = s.id AND d.decided_at > $2
      AND (d.outcome = 'sent' OR d.reason = 'holdout')
) h ON true
WHERE s.id = $1;

-- name: reserve_issue
-- Budgeted offers only: the counter row is the budget's lock across replicas.
UPDATE offers SET issued_count = issued_count + 1
WHERE id = $1 AND status = 'active' AND deleted_at IS NULL AND issued_count < budget_issued
RETURNING issued_count;

-- name: live_counts
-- The decision preview's budgets: the counters as they are now, not as the cached
-- book last saw them; offers stopped since then are left out.
SELECT id, issued_count, redeemed_count FROM offers
WHERE id = ANY($1::bigint[]) AND status = 'active' AND deleted_at IS NULL;

-- name: offer_is_live
SELECT 1 FROM offers WHERE id = $1 AND status = 'active' AND deleted_at IS NULL;

-- name: record_decisions
-- One ping's decisions in one statement: the log rows, and for the send (at
-- most one) its coupon. The coupon's delivery is not written here: the caller
-- enqueues what comes back (gateway/delivery) in the same transaction, which
-- also holds the cap reservation, so all of it commits or none does.
WITH d AS (
    INSERT INTO decisions (merchant_id, offer_id, shopper_id, store_id, geofence_id, trigger,
                           outcome, reason, decided_at, attributable_until)
    SELECT $1, t.offer_id, $2, t.store_id, t.fence_id, t.trigger,
           CASE WHEN t.reason IS NULL THEN 'sent' ELSE 'suppressed' END, t.reason, $3, t.until
    FROM unnest($4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[],
                $9::timestamptz[]) AS t(offer_id, store_id, fence_id, trigger, reason, until)
    RETURNING id, offer_id, store_id, outcome
), c AS (
    INSERT INTO coupons (merchant_id, offer_id, shopper_id, decision_id, code, store_ids,
                         issued_at, expires_at)
    SELECT $1, d.offer_id, $2, d.id, $10, $11, $3, $12 FROM d WHERE d.outcome = 'sent'
    RETURNING id, decision_id, offer_id
)
SELECT c.id AS coupon_id, c.decision_id, c.offer_id, d.store_id
FROM c JOIN d ON d.id = c.decision_id;

-- name: redeem_coupon
SELECT outcome, redemption_id FROM redeem_coupon($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: coupon_expires_at
-- Only after redeem_coupon answered coupon_expired: the 410 says when.
SELECT expires_at FROM coupons WHERE merchant_id = $1 AND code = $2;

-- name: get_redemption
SELECT {redemption_columns}
FROM redemptions r JOIN coupons c ON c.id = r.coupon_id
WHERE r.id = $1;

-- name: redemption_columns
r.id, r.coupon_id, r.offer_id, r.shopper_id, r.store_id, r.order_ref, r.amount, r.key_id,
r.redeemed_at, r.voided_at, r.voided_by, r.void_reason, c.code, r.request_hash

-- name: record_conversion
SELECT record_conversion($1, $2, $3, $4, $5, $6);

-- name: lock_redemption
SELECT {redemption_columns}
FROM redemptions r JOIN coupons c ON c.id = r.coupon_id
WHERE r.merchant_id = $1 AND r.id = $2
FOR UPDATE OF r;

-- name: void_redemption
SELECT v.outcome, {redemption_columns}
FROM void_redemption($1, $2, $3, $4, $5, $6) v
CROSS JOIN LATERAL (SELECT (v.redemption).*) r
JOIN coupons c ON c.id = r.coupon_id;

-- name: funnel
-- Compacted rollups plus the deltas not folded in yet: exact, and small.
SELECT day, store_id, channel, metric, sum(n)::bigint AS n
FROM (
    SELECT day, store_id, channel, metric, n FROM offer_stats
    WHERE offer_id = $1 AND day BETWEEN $2 AND $3
    UNION ALL
    SELECT day, store_id, channel, metric, n FROM offer_stats_delta
    WHERE offer_id = $1 AND day BETWEEN $2 AND $3
) s
GROUP BY day, store_id, channel, metric;

-- name: compact_stats
-- Only rows committed before this statement are moved; rows inserted meanwhile
-- stay for the next round, so nothing is counted twice or lost.
WITH moved AS (
    DELETE FROM offer_stats_delta RETURNING offer_id, day, store_id, channel, metric, n
), summed AS (
    SELECT offer_id, day, store_id, channel, metric, sum(n)::bigint AS n
    FROM moved GROUP BY offer_id, day, store_id, channel, metric
), ins AS (
    INSERT INTO offer_stats (offer_id, day, store_id, channel, metric, n)
    SELECT * FROM summed
    ON CONFLICT (offer_id, day, store_id, channel, metric)
    DO UPDATE SET n = offer_stats.n + excluded.n
    RETURNING 1
)
SELECT count(*) FROM ins;

-- name: redemption_log
SELECT {redemption_columns}
FROM redemptions r JOIN coupons c ON c.id = r.coupon_id
WHERE r.merchant_id = $1
  AND ($2::bigint IS NULL OR r.offer_id = $2)
  AND ($3::bigint IS NULL OR r.store_id = $3)
  AND ($4::bigint[] IS NULL OR r.store_id = ANY($4::bigint[]))
  AND ($5::timestamptz IS NULL OR r.redeemed_at >= $5)
  AND ($6::timestamptz IS NULL OR r.redeemed_at < $6)
  -- status: 'active' (standing) or 'voided'
  AND ($9::text IS NULL OR (r.voided_at IS NULL) = ($9::text = 'active'))
  AND r.id > $7
ORDER BY r.id
LIMIT $8;

-- name: decision_log
-- The decisions are partitioned by month of decided_at: the time filter is written so
-- that PostgreSQL can leave out the months outside it, in a generic plan too (where
-- "$5 IS NULL OR ..." would keep them all).
SELECT id, offer_id, shopper_id, store_id, geofence_id, trigger, outcome, reason, decided_at,
       converted_at
FROM decisions
WHERE merchant_id = $1
  AND ($2::bigint IS NULL OR offer_id = $2)
  AND ($3::bigint IS NULL OR store_id = $3)
  AND ($4::bigint[] IS NULL OR store_id = ANY($4::bigint[]))
  AND decided_at >= coalesce($5::timestamptz, '-infinity')
  AND decided_at < coalesce($6::timestamptz, 'infinity')
  AND ($9::text IS NULL OR outcome = $9)
  AND ($10::text IS NULL OR reason = $10)
  AND id > $7
ORDER BY id
LIMIT $8;
