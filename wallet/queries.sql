-- Loyalty accounts: rules, ledger, purchases and tiers.

-- name: rules
SELECT point_value, earn_rate, tiers, tier_window_days, actions FROM merchants WHERE id = $1;

-- name: set_rules
UPDATE merchants SET point_value = $2, earn_rate = $3, tiers = $4, tier_window_days = $5,
    actions = $6
WHERE id = $1
RETURNING point_value, earn_rate, tiers, tier_window_days, actions;

-- name: lock_shopper
-- Every change to a shopper's points takes this lock first: entries for one
-- shopper are applied one at a time, so the running balance is exact.
SELECT id, points, tier FROM shoppers WHERE id = $1 AND merchant_id = $2 FOR UPDATE;

-- name: add_entry
WITH e AS (
    INSERT INTO points_ledger (merchant_id, shopper_id, kind, points, reason, purchase_id,
                               key_id, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    RETURNING id
)
UPDATE shoppers SET points = points + $4 WHERE id = $2
RETURNING points, (SELECT id FROM e) AS entry_id;

-- name: earned_since
SELECT coalesce(sum(points), 0)::bigint FROM points_ledger
WHERE shopper_id = $1 AND kind = 'earn' AND created_at > $2;

-- name: set_tier
WITH t AS (
    INSERT INTO tier_changes (merchant_id, shopper_id, from_tier, to_tier, at)
    VALUES ($1, $2, $3, $4, $5)
)
UPDATE shoppers SET tier = $4 WHERE id = $2;

-- name: action_times
SELECT created_at FROM points_ledger
WHERE shopper_id = $1 AND kind = 'earn' AND reason = $2 AND created_at > $3;

-- name: purchase_by_key
SELECT id, shopper_id, store_id, amount, order_ref, points, request_hash, created_at
FROM purchases WHERE merchant_id = $1 AND idempotency_key = $2;

-- name: insert_purchase
INSERT INTO purchases (merchant_id, shopper_id, store_id, amount, order_ref, points, key_id,
                       idempotency_key, request_hash, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id, shopper_id, store_id, amount, order_ref, points, request_hash, created_at;

-- name: ledger
SELECT id, kind, points, reason, purchase_id, created_at FROM points_ledger
WHERE shopper_id = $1 AND merchant_id = $2 AND id < $3
ORDER BY id DESC LIMIT $4;

-- name: ledger_sum
SELECT coalesce(sum(points), 0)::bigint FROM points_ledger WHERE shopper_id = $1;
