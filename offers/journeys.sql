-- Lifecycle journeys: the rules, the runs (one per journey, shopper and
-- occurrence) and the indexed range reads that find due shoppers.

-- name: journey_columns
id, merchant_id, name, kind, offer_id, status, delay_minutes, inactive_days, tier, days_before,
grace_minutes, scanned_until, created_at, updated_at

-- name: insert_journey
-- The watermark starts now: a new journey never reaches back to occurrences before it.
INSERT INTO journeys (merchant_id, name, kind, offer_id, status, delay_minutes, inactive_days,
                      tier, days_before, grace_minutes, scanned_until)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING {journey_columns};

-- name: get_journey
SELECT {journey_columns} FROM journeys
WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL;

-- name: lock_journey
SELECT {journey_columns} FROM journeys
WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
FOR UPDATE;

-- name: list_journeys
SELECT {journey_columns} FROM journeys
WHERE merchant_id = $1 AND deleted_at IS NULL AND id > $2
ORDER BY id
LIMIT $3;

-- name: update_journey
-- Resuming a paused journey moves the watermark to now ($10): what occurred while
-- it was paused is not sent late.
UPDATE journeys SET name = $3, status = $4, delay_minutes = $5, inactive_days = $6, tier = $7,
    days_before = $8, grace_minutes = $9,
    scanned_until = CASE WHEN status = 'paused' AND $4 = 'active' THEN $10 ELSE scanned_until END,
    updated_at = now()
WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
RETURNING {journey_columns};

-- name: archive_journey
-- Its pending runs are cancelled with it; its offer, coupons and report stay.
WITH j AS (
    UPDATE journeys SET deleted_at = now(), status = 'paused', updated_at = now()
    WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
    RETURNING id
), r AS (
    UPDATE journey_runs SET state = 'cancelled', outcome = 'journey_archived', done_at = now()
    WHERE journey_id IN (SELECT id FROM j) AND state = 'pending'
)
SELECT id FROM j;

-- name: offer_journey
-- The journey that owns an offer, if any.
SELECT id FROM journeys WHERE offer_id = $1;

-- name: active_journeys
-- What the scheduler evaluates, every merchant's.
SELECT {journey_columns} FROM journeys
WHERE status = 'active' AND deleted_at IS NULL
ORDER BY id;

-- name: advance_journey
UPDATE journeys SET scanned_until = $2 WHERE id = $1 AND scanned_until < $2;

-- name: merchant_rules
-- What the scheduler needs of a merchant's loyalty program: when points expire, and
-- the tiers (a tier-up is reached from below).
SELECT points_expire_days, tiers FROM merchants WHERE id = $1;

-- name: run_columns
journey_id, shopper_id, occurrence, occurs_at, due_at

-- name: find_welcome
-- Shoppers enrolled in ($3, $4]; the journey fires $5 later.
INSERT INTO journey_runs (merchant_id, {run_columns})
SELECT $2, $1, s.id, 'welcome', s.created_at + $5, s.created_at + $5
FROM shoppers s
WHERE s.merchant_id = $2 AND s.created_at > $3 AND s.created_at <= $4
ON CONFLICT ON CONSTRAINT uq__journey_runs__journey_id_shopper_id_occurrence DO NOTHING;

-- name: find_winback
-- Shoppers whose last activity was in ($3, $4]: $5 later they have been away that long.
-- A shopper who comes back and lapses again has a new last activity: a new occurrence.
INSERT INTO journey_runs (merchant_id, {run_columns})
SELECT $2, $1, a.shopper_id,
       'inactive:' || to_char(a.last_active_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
       a.last_active_at + $5, a.last_active_at + $5
FROM shopper_activity a
WHERE a.merchant_id = $2 AND a.last_active_at > $3 AND a.last_active_at <= $4
ON CONFLICT ON CONSTRAINT uq__journey_runs__journey_id_shopper_id_occurrence DO NOTHING;

-- name: find_tier_up
-- Shoppers who reached tier $5 in ($3, $4] from none or a tier not among $6 (those
-- above it): a fall into the tier is no tier-up. Once per shopper and tier.
INSERT INTO journey_runs (merchant_id, {run_columns})
SELECT DISTINCT ON (t.shopper_id) $2, $1, t.shopper_id, 'tier:' || $5, t.at, t.at
FROM tier_changes t
WHERE t.merchant_id = $2 AND t.at > $3 AND t.at <= $4 AND t.to_tier = $5
  AND (t.from_tier IS NULL OR NOT (t.from_tier = ANY ($6::text[])))
ORDER BY t.shopper_id, t.at
ON CONFLICT ON CONSTRAINT uq__journey_runs__journey_id_shopper_id_occurrence DO NOTHING;

-- name: find_birthday
-- Shoppers whose birthday (by its day of the year, $4) is one of the dates $3, and
-- whose moment, 09:00 local $7 days before it, falls in ($5, $6]. Once a year.
INSERT INTO journey_runs (merchant_id, {run_columns})
SELECT $2, $1, s.id, 'birthday:' || extract(year FROM d.day)::integer, o.at, o.at
FROM shoppers s
CROSS JOIN LATERAL (
    SELECT u.day FROM unnest($3::date[]) AS u(day)
    WHERE (extract(month FROM u.day) * 100 + extract(day FROM u.day))::integer
          = (extract(month FROM s.birthday) * 100 + extract(day FROM s.birthday))::integer
       OR (extract(month FROM s.birthday) = 2 AND extract(day FROM s.birthday) = 29
           AND extract(month FROM u.day) = 2 AND extract(day FROM u.day) = 28
           AND extract(month FROM u.day + 1) = 3)
) d
CROSS JOIN LATERAL (
    SELECT ((d.day - $7::integer) + make_time($8, 0, 0)) AT TIME ZONE coalesce(s.timezone, 'UTC')
           AS at
) o
WHERE s.merchant_id = $2 AND s.birthday IS NOT NULL
  AND (extract(month FROM s.birthday) * 100 + extract(day FROM s.birthday))::integer
      = ANY ($4::integer[])
  AND o.at > $5 AND o.at <= $6
ON CONFLICT ON CONSTRAINT uq__journey_runs__journey_id_shopper_id_occurrence DO NOTHING;

-- name: find_points_expiring
-- Earnings in ($3, $4] expire $5 + $6 later and are reminded of $5 later, if the
-- shopper still has points earned up to then that no spend, negative adjustment or
-- expiry used (they go oldest first, as upkeep expires them). Once per expiry day.
INSERT INTO journey_runs (merchant_id, {run_columns})
SELECT DISTINCT ON (l.shopper_id, x.occurrence) $2, $1, l.shopper_id, x.occurrence,
       l.created_at + $5, l.created_at + $5
FROM points_ledger l
CROSS JOIN LATERAL (
    SELECT 'expiry:' || to_char((l.created_at + $5 + $6) AT TIME ZONE 'UTC', 'YYYY-MM-DD')
           AS occurrence
) x
WHERE l.merchant_id = $2 AND l.kind = 'earn' AND l.created_at > $3 AND l.created_at <= $4
  AND (SELECT coalesce(sum(p.points) FILTER (WHERE p.points > 0 AND p.created_at <= l.created_at), 0)
              + coalesce(sum(p.points) FILTER (WHERE p.points < 0), 0)
       FROM points_ledger p WHERE p.shopper_id = l.shopper_id) > 0
ORDER BY l.shopper_id, x.occurrence, l.created_at
ON CONFLICT ON CONSTRAINT uq__journey_runs__journey_id_shopper_id_occurrence DO NOTHING;

-- name: due_runs
-- The runs to decide now, oldest first (the partial index on pending runs).
SELECT id FROM journey_runs
WHERE state = 'pending' AND due_at <= $1
ORDER BY due_at
LIMIT $2;

-- name: claim_run
-- One run, if still pending and nobody else holds it; with what deciding it needs.
-- `superseded`: a win-back whose shopper came back since it was found.
SELECT r.id, r.merchant_id, r.journey_id, r.shopper_id, r.occurrence, r.occurs_at,
       j.kind = 'winback' AND a.last_active_at + j.inactive_days * interval '1 day'
           IS DISTINCT FROM r.occurs_at AS superseded
FROM journey_runs r
JOIN journeys j ON j.id = r.journey_id
LEFT JOIN shopper_activity a ON a.shopper_id = r.shopper_id
WHERE r.id = $1 AND r.state = 'pending'
FOR UPDATE OF r SKIP LOCKED;

-- name: ensure_shopper_geo
INSERT INTO shopper_geo (shopper_id, merchant_id) VALUES ($1, $2)
ON CONFLICT (shopper_id) DO NOTHING;

-- name: lock_shopper
-- The lock the ping path takes for a shopper's decisions (its visit state row), so
-- a journey and a ping deciding for one shopper at once see each other's sends.
SELECT 1 FROM shopper_geo WHERE shopper_id = $1 FOR UPDATE;

-- name: defer_run
UPDATE journey_runs SET due_at = $2 WHERE id = $1;

-- name: finish_run
UPDATE journey_runs SET state = $2, outcome = $3, decision_id = $4, done_at = $5 WHERE id = $1;

-- name: run_counts
-- A journey's runs by state and outcome, for its report.
SELECT state, coalesce(outcome, '') AS outcome, count(*)::bigint AS n
FROM journey_runs WHERE journey_id = $1
GROUP BY state, outcome;
