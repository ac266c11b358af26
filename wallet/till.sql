-- The till: finding a member by the barcode on the card, paying with points, voiding a
-- payment, and the program's points by month.

-- name: member_shopper
-- The Apple pass's serial (what its barcode says), or the member code on the Google card.
SELECT shopper_id FROM passes
WHERE serial = $2 AND merchant_id = $1 AND kind = 'loyalty'
UNION ALL
SELECT shopper_id FROM google_wallet_objects
WHERE merchant_id = $1 AND kind = 'loyalty'
  AND upper(left(split_part(object_id, '.loyalty-', 2), 16)) = upper($2)
LIMIT 1;

-- name: payment_columns
id, shopper_id, store_id, points, requested, amount, order_ref, request_hash, created_at, voided_at,
voided_by, void_reason

-- name: payment_by_key
SELECT {payment_columns} FROM point_payments WHERE merchant_id = $1 AND idempotency_key = $2;

-- name: insert_payment
INSERT INTO point_payments (merchant_id, shopper_id, store_id, points, requested, amount,
                            order_ref, key_id, idempotency_key, request_hash, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING {payment_columns};

-- name: get_payment
SELECT {payment_columns} FROM point_payments WHERE merchant_id = $1 AND id = $2;

-- name: lock_payment
SELECT {payment_columns} FROM point_payments WHERE merchant_id = $1 AND id = $2 FOR UPDATE;

-- name: void_payment
UPDATE point_payments SET voided_at = $2, voided_by = $3, void_reason = $4
WHERE id = $1
RETURNING {payment_columns};

-- name: points_by_month
-- Points issued (earned, and positive adjustments), spent (spends and negative
-- adjustments), expired, and the balance outstanding at each month's end, in the
-- program's time zone-free UTC months. Months with no entries are left out.
WITH m AS (
    SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month,
           coalesce(sum(points) FILTER (WHERE points > 0), 0)::bigint AS issued,
           (-coalesce(sum(points) FILTER (WHERE points < 0 AND kind <> 'expire'), 0))::bigint
               AS spent,
           (-coalesce(sum(points) FILTER (WHERE kind = 'expire'), 0))::bigint AS expired,
           sum(points)::bigint AS net
    FROM points_ledger
    WHERE merchant_id = $1
    GROUP BY 1
)
SELECT month, issued, spent, expired,
       (sum(net) OVER (ORDER BY month))::bigint AS outstanding
FROM m
ORDER BY month;
