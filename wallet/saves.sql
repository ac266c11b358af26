-- Where shoppers keep their passes: Google Wallet callbacks and Apple registrations.

-- name: record_google_event
-- No row: the nonce was seen before (a retry, or two deliveries at once: the unique
-- index makes the second wait for the first and then insert nothing).
INSERT INTO google_wallet_events (merchant_id, nonce, event, class_id, object_id, expires_at,
                                  received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (nonce) DO NOTHING
RETURNING id;

-- name: lock_pass
-- Serialises the registrations of one pass, so that of two devices leaving at once the
-- second sees the first gone.
SELECT serial, merchant_id, coupon_id FROM passes WHERE id = $1 FOR UPDATE;

-- name: pass_registered
SELECT EXISTS (SELECT 1 FROM device_registrations WHERE pass_id = $1);

-- name: set_in_wallet
-- $1 wallet, $2 object id, $3 merchant, $4 coupon (NULL: loyalty), $5 in the wallet now,
-- $6 when. A row comes back only when something changed. A coupon's first save counts
-- `saved:<wallet>` once; `removed:<wallet>` counts the saved coupons out of the wallet
-- now (+1 on leaving, -1 on coming back). They count on the day and at the store of the
-- decision that sent the coupon, as redemptions do.
WITH changed AS (
    INSERT INTO wallet_saves AS s (wallet, object_id, merchant_id, coupon_id, in_wallet,
                                   first_saved_at, changed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $6)
    ON CONFLICT (wallet, object_id) DO UPDATE
        SET in_wallet = excluded.in_wallet, changed_at = excluded.changed_at
        WHERE s.in_wallet <> excluded.in_wallet
    RETURNING (xmax = 0) AS created, in_wallet, coupon_id
), counted AS (
    INSERT INTO offer_stats_delta (offer_id, day, store_id, channel, metric, n)
    SELECT d.offer_id, store_day(d.store_id, d.decided_at), d.store_id, '', m.metric, m.n
    FROM changed ch
    JOIN coupons c ON c.id = ch.coupon_id
    JOIN decisions d ON d.id = c.decision_id
    CROSS JOIN LATERAL (VALUES
        ('saved:' || $1::text, CASE WHEN ch.created THEN 1 ELSE 0 END),
        ('removed:' || $1::text,
         CASE WHEN NOT ch.in_wallet THEN 1 WHEN ch.created THEN 0 ELSE -1 END)
    ) AS m(metric, n)
    WHERE m.n <> 0
    RETURNING 1
)
SELECT created, in_wallet FROM changed;

-- name: out_of_wallet
-- Which of these objects the shopper took out of the wallet (and has not put back).
SELECT object_id FROM wallet_saves
WHERE wallet = $1 AND object_id = ANY($2::text[]) AND NOT in_wallet;
