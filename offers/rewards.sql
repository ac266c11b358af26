-- The rewards catalog: rewards bought with points, partner gift-card code pools, grants,
-- and coupons granted by the program rather than sent by a decision.

-- name: reward_columns
r.id, r.merchant_id, r.kind, r.name, r.offer_id, r.points, r.stock, r.issued_count,
r.per_shopper_limit, r.tiers, r.status, r.created_at, r.updated_at,
o.title, o.body, o.image_url, o.channels, o.store_ids, o.coupon,
(SELECT count(*) FROM reward_codes c WHERE c.reward_id = r.id AND c.grant_id IS NULL)
    AS codes_left

-- name: insert_reward
INSERT INTO rewards (merchant_id, kind, name, offer_id, points, stock, per_shopper_limit, tiers,
                     status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id;

-- name: get_reward
SELECT {reward_columns}
FROM rewards r JOIN offers o ON o.id = r.offer_id
WHERE r.merchant_id = $1 AND r.id = $2 AND r.deleted_at IS NULL;

-- name: list_rewards
SELECT {reward_columns}
FROM rewards r JOIN offers o ON o.id = r.offer_id
WHERE r.merchant_id = $1 AND r.deleted_at IS NULL AND r.id > $2
ORDER BY r.id
LIMIT $3;

-- name: update_reward
-- The counter stays; a stock below what was already issued is refused by the
-- ck__rewards__stock_count constraint.
UPDATE rewards SET name = $3, points = $4, stock = $5, per_shopper_limit = $6, tiers = $7,
    status = $8, updated_at = now()
WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
RETURNING offer_id;

-- name: update_reward_offer
UPDATE offers SET name = $3, title = $4, body = $5, image_url = $6, channels = $7,
    store_ids = $8, scope_store_ids = $8, coupon = $9, updated_at = now()
WHERE merchant_id = $1 AND id = $2 AND trigger = 'reward';

-- name: archive_reward
-- Archived, not deleted: grants and their coupons refer to it.
WITH r AS (
    UPDATE rewards SET deleted_at = now(), status = 'paused', updated_at = now()
    WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
    RETURNING offer_id
)
UPDATE offers o SET status = 'paused', deleted_at = now()
FROM r WHERE o.id = r.offer_id
RETURNING o.id;

-- name: shop_rewards
-- What this shopper may buy now: active, of the shopper's tier, in stock, with a code
-- left (gift cards), and under the per-shopper limit. Affordability is shown, not
-- filtered: a shopper sees what to save up for.
SELECT {reward_columns}
FROM rewards r JOIN offers o ON o.id = r.offer_id
JOIN shoppers s ON s.id = $2 AND s.merchant_id = r.merchant_id
WHERE r.merchant_id = $1 AND r.deleted_at IS NULL AND r.status = 'active'
  AND (r.tiers IS NULL OR s.tier = ANY (r.tiers))
  AND (r.stock IS NULL OR r.issued_count < r.stock)
  AND (r.kind <> 'gift_card'
       OR EXISTS (SELECT 1 FROM reward_codes c WHERE c.reward_id = r.id AND c.grant_id IS NULL))
  AND (r.per_shopper_limit IS NULL
       OR (SELECT count(*) FROM reward_grants g
           WHERE g.reward_id = r.id AND g.shopper_id = s.id) < r.per_shopper_limit)
ORDER BY r.points, r.id
LIMIT 500;

-- name: reserve_stock
-- The reward's row is its stock's lock across replicas: concurrent buyers queue here,
-- and each sees the count the one before it committed.
UPDATE rewards SET issued_count = issued_count + 1
WHERE id = $1 AND status = 'active' AND deleted_at IS NULL
  AND (stock IS NULL OR issued_count < stock)
RETURNING issued_count;

-- name: shopper_grants
-- Read under the shopper's row lock, so a concurrent purchase by the same shopper has
-- committed or waits.
SELECT count(*) FROM reward_grants WHERE reward_id = $1 AND shopper_id = $2;

-- name: take_code
-- One unused code; a code another transaction holds is skipped, not waited for.
SELECT id, code FROM reward_codes
WHERE reward_id = $1 AND grant_id IS NULL
ORDER BY id
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: use_code
UPDATE reward_codes SET grant_id = $2 WHERE id = $1;

-- name: add_codes
WITH ins AS (
    INSERT INTO reward_codes (merchant_id, reward_id, code)
    SELECT $1, $2, c FROM unnest($3::text[]) AS c
    ON CONFLICT (reward_id, code) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM ins;

-- name: grant_columns
g.id, g.reward_id, g.shopper_id, g.points, g.coupon_id, g.gift_code, g.request_hash,
g.created_at, c.code, c.expires_at, c.store_ids,
(SELECT dl.id FROM deliveries dl WHERE dl.coupon_id = c.id) AS delivery_id

-- name: insert_grant
INSERT INTO reward_grants (merchant_id, reward_id, shopper_id, points, coupon_id, gift_code,
                           idempotency_key, request_hash, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id;

-- name: get_grant
SELECT {grant_columns}
FROM reward_grants g JOIN coupons c ON c.id = g.coupon_id
WHERE g.id = $1;

-- name: grant_by_key
SELECT {grant_columns}
FROM reward_grants g JOIN coupons c ON c.id = g.coupon_id
WHERE g.shopper_id = $1 AND g.idempotency_key = $2;

-- name: shopper_grant_list
SELECT {grant_columns}, r.name, r.kind
FROM reward_grants g JOIN coupons c ON c.id = g.coupon_id JOIN rewards r ON r.id = g.reward_id
WHERE g.shopper_id = $1 AND g.id < $2
ORDER BY g.id DESC
LIMIT $3;

-- name: grant_coupon
-- A coupon of a 'reward' offer, with no decision: valid at the offer's stores for the
-- offer's coupon.valid_minutes. The caller enqueues its delivery in this transaction.
INSERT INTO coupons (merchant_id, offer_id, shopper_id, decision_id, code, store_ids,
                     issued_at, expires_at)
SELECT o.merchant_id, o.id, $3, NULL, $4, o.scope_store_ids, $5::timestamptz,
       $5::timestamptz + make_interval(mins => (o.coupon ->> 'valid_minutes')::int)
FROM offers o
WHERE o.merchant_id = $1 AND o.id = $2 AND o.trigger = 'reward'
RETURNING id, expires_at, (SELECT channels FROM offers WHERE id = $2) AS channels;
