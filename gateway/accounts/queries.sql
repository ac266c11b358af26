-- Tenancy and auth queries used by the gateway.

-- name: insert_merchant
INSERT INTO merchants (name) VALUES ($1) RETURNING id, name, created_at;

-- name: get_merchant
SELECT id, name, created_at FROM merchants WHERE id = $1;

-- name: list_merchants
SELECT id, name, created_at FROM merchants ORDER BY id;

-- name: insert_api_key
INSERT INTO api_keys (public_id, secret_hash, merchant_id, role, store_scoped, shopper_id, label)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id;

-- name: insert_api_key_stores
-- The composite foreign key rejects a store of another merchant.
INSERT INTO api_key_stores (key_id, merchant_id, store_id)
SELECT $1, $2, unnest($3::bigint[]);

-- name: get_api_keys
-- The keys of several public ids at once: concurrent first requests share one read.
-- Revoked keys read as absent, so a revoked token is simply unknown. A shopper key
-- brings the shopper's geofence state along: a shopper's first ping on this process
-- then needs no second read.
SELECT k.public_id, k.id, k.secret_hash, k.merchant_id, k.role, k.store_scoped, k.shopper_id,
       coalesce(array_agg(s.store_id) FILTER (WHERE s.store_id IS NOT NULL), '{}') AS store_ids,
       g.visits, g.version, g.last_lat, g.last_lon, g.last_ts, g.last_accuracy_m
FROM api_keys k
LEFT JOIN api_key_stores s ON s.key_id = k.id
LEFT JOIN shopper_geo g ON g.shopper_id = k.shopper_id
WHERE k.public_id = ANY($1::text[]) AND k.revoked_at IS NULL
GROUP BY k.id, g.shopper_id;

-- name: list_api_keys
-- Shopper keys are one per enrolment and would drown the list; they are not operator keys.
SELECT k.id, k.public_id, k.role, k.store_scoped, k.label, k.created_at, k.revoked_at,
       coalesce(array_agg(s.store_id ORDER BY s.store_id)
                FILTER (WHERE s.store_id IS NOT NULL), '{}') AS store_ids
FROM api_keys k
LEFT JOIN api_key_stores s ON s.key_id = k.id
WHERE k.merchant_id = $1 AND k.role <> 'shopper'
GROUP BY k.id
ORDER BY k.id;

-- name: get_api_key_scope
SELECT k.id, k.public_id, k.store_scoped,
       coalesce(array_agg(s.store_id) FILTER (WHERE s.store_id IS NOT NULL), '{}') AS store_ids
FROM api_keys k
LEFT JOIN api_key_stores s ON s.key_id = k.id
WHERE k.id = $1 AND k.merchant_id = $2 AND k.role <> 'shopper'
GROUP BY k.id;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = $1 AND merchant_id = $2
RETURNING public_id, revoked_at;

-- name: count_merchant_stores
SELECT count(*) FROM stores WHERE merchant_id = $1 AND id = ANY($2::bigint[]);

-- name: insert_shopper
INSERT INTO shoppers (merchant_id, name, email, marketing_consent, timezone, birthday)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, merchant_id, name, email, marketing_consent, timezone, tier, points, tags,
          created_at, birthday;

-- name: get_shopper
SELECT id, merchant_id, name, email, marketing_consent, timezone, tier, points, tags, created_at,
       birthday
FROM shoppers WHERE id = $1 AND merchant_id = $2;

-- name: update_shopper
-- $3..$5: NULL leaves a field alone; $6 says whether the time zone is being set
-- (it may be set to NULL), $8 the same for the birthday ($7). A consent change
-- restarts its clock.
UPDATE shoppers SET
    consent_at = CASE WHEN $3::boolean IS DISTINCT FROM marketing_consent AND $3 IS NOT NULL
                      THEN now() ELSE consent_at END,
    marketing_consent = coalesce($3, marketing_consent),
    tags = coalesce($4, tags),
    timezone = CASE WHEN $6 THEN $5 ELSE timezone END,
    birthday = CASE WHEN $8 THEN $7 ELSE birthday END
WHERE id = $1 AND merchant_id = $2
RETURNING id, merchant_id, name, email, marketing_consent, timezone, tier, points, tags,
          created_at, birthday;
