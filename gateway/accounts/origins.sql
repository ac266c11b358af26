-- A merchant's allowed web origins (CORS), and the whole list each process keeps.

-- name: insert_origin
-- An origin already there answers its existing row (created = false).
WITH ins AS (
    INSERT INTO merchant_origins (merchant_id, origin) VALUES ($1, $2)
    ON CONFLICT ON CONSTRAINT uq__merchant_origins__merchant_id_origin DO NOTHING
    RETURNING id, origin, created_at
)
SELECT id, origin, created_at, true AS created FROM ins
UNION ALL
SELECT id, origin, created_at, false FROM merchant_origins
WHERE merchant_id = $1 AND origin = $2 AND NOT EXISTS (SELECT FROM ins);

-- name: list_origins
SELECT id, origin, created_at FROM merchant_origins WHERE merchant_id = $1 ORDER BY origin;

-- name: delete_origin
DELETE FROM merchant_origins WHERE merchant_id = $1 AND id = $2 RETURNING id, origin;

-- name: delete_origin_by_name
DELETE FROM merchant_origins WHERE merchant_id = $1 AND origin = $2 RETURNING id, origin;

-- name: all_origins
-- Small (a few per merchant), and read only when it changes.
SELECT origin, array_agg(merchant_id) AS merchant_ids FROM merchant_origins GROUP BY origin;
