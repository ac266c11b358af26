-- Loyalty accounts: rules, ledger, purchases and tiers.

-- name: rules
SELECT point_value, earn_rate, tiers, tier_window_days, actions, points_expire_days
FROM merchants WHERE id = $1;

-- name: set_rules
UPDATE merchants SET point_value = $2, earn_rate = $3, tiers = $4, tier_window_days = $5,
    actions = $6, points_expire_days = $7
WHERE id = $1
RETURNING point_value, earn_rate, tiers, tier_window_days, actions, points_expire_days;

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

-- name: wallet_config
SELECT pass_type_id, team_id, organization, cert_pem, key_pem, wwdr_pem, dev, updated_at,
       apns_key_pem, apns_key_id
FROM wallet_configs WHERE merchant_id = $1;

-- name: put_dev_config
-- The first process to need a configuration makes one; concurrent ones read it.
INSERT INTO wallet_configs (merchant_id, pass_type_id, team_id, organization, cert_pem, key_pem,
                            wwdr_pem, dev)
VALUES ($1, $2, $3, $4, $5, $6, $7, true)
ON CONFLICT (merchant_id) DO NOTHING;

-- name: ensure_loyalty_pass
INSERT INTO passes (merchant_id, shopper_id, kind, serial, auth_token, created_at)
VALUES ($1, $2, 'loyalty', $3, $4, $5)
ON CONFLICT (shopper_id) WHERE kind = 'loyalty' DO NOTHING;

-- name: loyalty_pass
-- With what the card shows, when that last changed, the stores nearest the shopper's
-- last known position (any ten without one) and when the signing configuration changed.
SELECT p.id, p.serial, p.auth_token, p.created_at, s.name, s.points, s.tier,
       greatest(p.created_at,
                (SELECT max(created_at) FROM points_ledger l WHERE l.shopper_id = s.id),
                (SELECT max(at) FROM tier_changes t WHERE t.shopper_id = s.id)) AS modified_at,
       ARRAY(SELECT (st.name, st.lat, st.lon) FROM stores st
             WHERE st.merchant_id = p.merchant_id
             ORDER BY CASE WHEN g.last_lat IS NULL THEN 0
                           ELSE (st.lat - g.last_lat) ^ 2
                                + ((st.lon - g.last_lon) * cos(radians(g.last_lat))) ^ 2 END,
                      st.id
             LIMIT 10) AS stores,
       c.updated_at AS config_at
FROM passes p
JOIN shoppers s ON s.id = p.shopper_id
LEFT JOIN shopper_geo g ON g.shopper_id = s.id
LEFT JOIN wallet_configs c ON c.merchant_id = p.merchant_id
WHERE p.shopper_id = $1 AND p.merchant_id = $2 AND p.kind = 'loyalty';

-- name: nearest_stores
-- The stores nearest the shopper's last known position (any ten without one).
SELECT name, lat, lon FROM stores WHERE merchant_id = $1
ORDER BY CASE WHEN $2::float8 IS NULL THEN 0
              ELSE (lat - $2) ^ 2 + ((lon - $3) * cos(radians($2))) ^ 2 END, id
LIMIT 10;

-- name: pass_by_serial
SELECT p.id, p.merchant_id, p.shopper_id, p.kind, p.serial, p.auth_token, c.pass_type_id,
       p.coupon_id
FROM passes p JOIN wallet_configs c ON c.merchant_id = p.merchant_id
WHERE p.serial = $1 AND c.pass_type_id = $2;

-- name: register_device
INSERT INTO device_registrations (device_library_id, pass_id, push_token)
VALUES ($1, $2, $3)
ON CONFLICT (device_library_id, pass_id) DO UPDATE SET push_token = excluded.push_token
RETURNING (xmax = 0) AS created;

-- name: unregister_device
DELETE FROM device_registrations WHERE device_library_id = $1 AND pass_id = $2;

-- name: device_passes
-- Every pass on the device, with when its content last changed.
SELECT p.serial,
       greatest(p.created_at,
                (SELECT max(created_at) FROM points_ledger l WHERE l.shopper_id = p.shopper_id),
                (SELECT max(at) FROM tier_changes t WHERE t.shopper_id = p.shopper_id))
           AS modified_at
FROM device_registrations r
JOIN passes p ON p.id = r.pass_id AND p.kind = 'loyalty'
JOIN wallet_configs c ON c.merchant_id = p.merchant_id
WHERE r.device_library_id = $1 AND c.pass_type_id = $2
UNION ALL
SELECT p.serial,
       greatest(p.created_at, p.expired_at,
                (SELECT max(greatest(redeemed_at, voided_at)) FROM redemptions x
                 WHERE x.coupon_id = p.coupon_id))
FROM device_registrations r
JOIN passes p ON p.id = r.pass_id AND p.kind = 'coupon'
JOIN wallet_configs c ON c.merchant_id = p.merchant_id
WHERE r.device_library_id = $1 AND c.pass_type_id = $2;

-- name: ensure_coupon_pass
INSERT INTO passes (merchant_id, shopper_id, kind, coupon_id, serial, auth_token, created_at)
SELECT c.merchant_id, c.shopper_id, 'coupon', c.id, $3, $4, $5
FROM coupons c WHERE c.id = $1 AND c.shopper_id = $2
ON CONFLICT (coupon_id) WHERE kind = 'coupon' DO NOTHING;

-- name: coupon_pass
SELECT p.id, p.serial, p.auth_token, p.created_at, c.code, c.issued_at, c.expires_at,
       o.title, o.coupon AS spec, o.scope_store_ids,
       r.redeemed_at,
       greatest(p.created_at, r.redeemed_at, r.voided_at, p.expired_at) AS modified_at
FROM passes p
JOIN coupons c ON c.id = p.coupon_id
JOIN offers o ON o.id = c.offer_id
LEFT JOIN LATERAL (
    SELECT max(redeemed_at) FILTER (WHERE voided_at IS NULL) AS redeemed_at,
           max(voided_at) AS voided_at
    FROM redemptions WHERE coupon_id = c.id
) r ON true
WHERE p.coupon_id = $1 AND p.shopper_id = $2 AND p.kind = 'coupon';

-- name: stores_by_id
SELECT name, lat, lon FROM stores WHERE id = ANY ($1::bigint[]) ORDER BY id LIMIT 10;

-- name: claim_pass_updates
-- One queue, two targets: APNs pushes ('apple') and Google object updates ('google').
WITH c AS (
    SELECT id FROM pass_updates
    WHERE done_at IS NULL AND available_at <= now() AND target = $3
      AND (leased_until IS NULL OR leased_until < now())
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE pass_updates u SET leased_until = now() + make_interval(secs => $2),
    attempts = u.attempts + 1
FROM c WHERE u.id = c.id
RETURNING u.id, u.merchant_id, u.shopper_id, u.attempts, u.reason, u.delivery_id;

-- name: shopper_registrations
SELECT r.device_library_id, r.push_token, r.pass_id
FROM device_registrations r JOIN passes p ON p.id = r.pass_id
WHERE p.shopper_id = $1;

-- name: drop_registrations
DELETE FROM device_registrations WHERE push_token = ANY ($1::text[]);

-- name: pass_update_done
UPDATE pass_updates SET done_at = now(), leased_until = NULL, last_error = $3
WHERE id = $1 AND attempts = $2;

-- name: pass_update_dead
-- Given up: out of the queue, with the reason, for an operator to read.
UPDATE pass_updates SET done_at = now(), dead_at = now(), leased_until = NULL, last_error = $3
WHERE id = $1 AND attempts = $2;

-- name: pass_update_retry
UPDATE pass_updates SET leased_until = NULL, last_error = $3,
    available_at = now() + make_interval(secs => $4)
WHERE id = $1 AND attempts = $2;

-- Upkeep: expiring points, falling tiers, expired coupon passes.

-- name: merchant_ids
SELECT id FROM merchants ORDER BY id;

-- name: expiring_points_page
-- Shoppers with points past their expiry: points earned up to the cutoff that no spend,
-- negative adjustment or earlier expiry has used up (oldest points are used first).
SELECT shopper_id FROM points_ledger
WHERE merchant_id = $1 AND shopper_id > $3
GROUP BY shopper_id
HAVING coalesce(sum(points) FILTER (WHERE points > 0 AND created_at <= $2), 0)
     + coalesce(sum(points) FILTER (WHERE points < 0), 0) > 0
ORDER BY shopper_id
LIMIT $4;

-- name: expiry_sums
SELECT coalesce(sum(points) FILTER (WHERE points > 0 AND created_at <= $2), 0)::bigint
           AS credits,
       (-coalesce(sum(points) FILTER (WHERE points < 0), 0))::bigint AS debits
FROM points_ledger WHERE shopper_id = $1;

-- name: tier_page
-- Shoppers holding a tier, with the points they earned inside the tier window.
SELECT s.id, s.tier,
       coalesce((SELECT sum(l.points) FROM points_ledger l
                 WHERE l.shopper_id = s.id AND l.kind = 'earn' AND l.created_at > $2), 0)::bigint
           AS earned
FROM shoppers s
WHERE s.merchant_id = $1 AND s.tier IS NOT NULL AND s.id > $3
ORDER BY s.id
LIMIT $4;

-- name: queue_pass_update
INSERT INTO pass_updates (merchant_id, shopper_id, reason) VALUES ($1, $2, $3);

-- name: expire_coupon_passes
-- Coupon passes whose coupon expired unredeemed: marked once, and one pass update
-- queued per shopper so their devices fetch the pass again.
WITH x AS (
    UPDATE passes p SET expired_at = $1
    FROM coupons c
    WHERE c.id = p.coupon_id AND p.kind = 'coupon' AND p.expired_at IS NULL
      AND c.expires_at <= $1
      AND NOT EXISTS (SELECT 1 FROM redemptions r
                      WHERE r.coupon_id = c.id AND r.voided_at IS NULL)
    RETURNING p.merchant_id, p.shopper_id
), q AS (
    INSERT INTO pass_updates (merchant_id, shopper_id, reason)
    SELECT DISTINCT merchant_id, shopper_id, 'coupon_expired' FROM x
)
SELECT count(*) FROM x;

-- name: put_config
-- A merchant's own certificates (and APNs key), replacing whatever was there.
INSERT INTO wallet_configs (merchant_id, pass_type_id, team_id, organization, cert_pem, key_pem,
                            wwdr_pem, dev, apns_key_pem, apns_key_id, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, false, $8, $9, now())
ON CONFLICT (merchant_id) DO UPDATE SET
    pass_type_id = excluded.pass_type_id, team_id = excluded.team_id,
    organization = excluded.organization, cert_pem = excluded.cert_pem,
    key_pem = excluded.key_pem, wwdr_pem = excluded.wwdr_pem, dev = false,
    apns_key_pem = excluded.apns_key_pem, apns_key_id = excluded.apns_key_id,
    updated_at = now();

-- name: shopper_balance
SELECT points, tier FROM shoppers WHERE id = $1 AND merchant_id = $2;

-- APNs fan-out (gateway/delivery/passpush.py): a batch at a time.

-- name: claim_apple_updates
-- Due APNs updates with the push tokens each goes to: every device registered for one
-- of the shopper's passes, or, on a retry, those of them that did not take it yet.
WITH c AS (
    SELECT id FROM pass_updates
    WHERE done_at IS NULL AND available_at <= now() AND target = 'apple'
      AND (leased_until IS NULL OR leased_until < now())
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), u AS (
    UPDATE pass_updates u SET leased_until = now() + make_interval(secs => $2),
        attempts = u.attempts + 1
    FROM c WHERE u.id = c.id
    RETURNING u.id, u.merchant_id, u.shopper_id, u.attempts, u.retry_tokens
)
SELECT u.id, u.merchant_id, u.shopper_id, u.attempts,
       ARRAY(SELECT DISTINCT r.push_token
             FROM passes p JOIN device_registrations r ON r.pass_id = p.id
             WHERE p.shopper_id = u.shopper_id
               AND (u.retry_tokens IS NULL OR r.push_token = ANY (u.retry_tokens))
             ORDER BY 1) AS tokens
FROM u;

-- name: apple_updates_done
UPDATE pass_updates u SET done_at = now(), leased_until = NULL, last_error = d.error,
    retry_tokens = NULL
FROM UNNEST($1::bigint[], $2::int[], $3::text[]) AS d (id, attempts, error)
WHERE u.id = d.id AND u.attempts = d.attempts;

-- name: apple_updates_retry
-- $4: the devices still to reach, space-separated (push tokens are hex).
UPDATE pass_updates u SET leased_until = NULL, last_error = d.error,
    available_at = now() + make_interval(secs => d.delay),
    retry_tokens = string_to_array(d.tokens, ' ')
FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::text[], $5::float8[])
    AS d (id, attempts, error, tokens, delay)
WHERE u.id = d.id AND u.attempts = d.attempts;

-- Built passes by version (wallet/passcache.py).

-- name: cached_pass
SELECT body FROM pass_cache WHERE pass_id = $1 AND version = $2;

-- name: cache_pass
INSERT INTO pass_cache (pass_id, version, body) VALUES ($1, $2, $3)
ON CONFLICT (pass_id) DO UPDATE SET version = excluded.version, body = excluded.body,
    built_at = now();
