-- Places and pings. Every query is scoped by merchant; store-scoped callers
-- pass their store ids as $n::bigint[] (NULL means every store).

-- name: insert_store
INSERT INTO stores (merchant_id, name, lat, lon, timezone, opening_hours)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: get_store
SELECT * FROM stores WHERE id = $1 AND merchant_id = $2;

-- name: list_stores
SELECT * FROM stores
WHERE merchant_id = $1
  AND ($2::bigint[] IS NULL OR id = ANY($2))
  AND id > $3
ORDER BY id
LIMIT $4;

-- name: update_store
-- Only the fields named in $7 change, so a PATCH can also clear opening hours.
UPDATE stores SET
    name          = CASE WHEN 'name' = ANY($7::text[]) THEN $3 ELSE name END,
    lat           = CASE WHEN 'lat' = ANY($7::text[]) THEN $4 ELSE lat END,
    lon           = CASE WHEN 'lon' = ANY($7::text[]) THEN $5 ELSE lon END,
    timezone      = CASE WHEN 'timezone' = ANY($7::text[]) THEN $6 ELSE timezone END,
    opening_hours = CASE WHEN 'opening_hours' = ANY($7::text[]) THEN $8 ELSE opening_hours END,
    updated_at    = now()
WHERE id = $1 AND merchant_id = $2
RETURNING *;

-- name: delete_store
DELETE FROM stores WHERE id = $1 AND merchant_id = $2 RETURNING id;

-- name: stores_in_merchant
-- KEY SHARE until commit: a store deleted meanwhile is waited for and then left out,
-- instead of the geofence insert failing on the foreign key.
SELECT id FROM stores WHERE merchant_id = $1 AND id = ANY($2::bigint[])
ORDER BY id
FOR KEY SHARE;

-- name: store_locations
-- SHARE until commit: a fence is checked against where its store is, so a
-- concurrent move of the store (which takes the row's update lock, and then
-- checks the store's fences) waits for this write, and this for that one.
SELECT id, lon, lat FROM stores WHERE merchant_id = $1 AND id = ANY($2::bigint[])
ORDER BY id
FOR SHARE;

-- name: store_fences
-- The fences a store move must not leave far behind (read after the move's UPDATE,
-- which holds the store row: a fence written meanwhile waits, then sees the move).
SELECT id, name, wkb, radius_m FROM geofences WHERE store_id = $1 ORDER BY id;

-- name: insert_geofence
INSERT INTO geofences (merchant_id, store_id, name, kind, geometry, wkb, radius_m, properties,
                       extent)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id, merchant_id, store_id, name, kind, geometry, radius_m, properties,
          created_at, updated_at;

-- name: insert_geofences
-- Bulk import: one statement for the whole collection.
INSERT INTO geofences (merchant_id, store_id, name, kind, geometry, wkb, radius_m, properties,
                       extent)
SELECT $1, s, n, k, g, w, r, p, e
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::jsonb[], $6::bytea[], $7::float8[],
            $8::jsonb[], $9::box[]) AS t(s, n, k, g, w, r, p, e)
RETURNING id;

-- name: update_geofence
UPDATE geofences SET store_id = $3, name = $4, kind = $5, geometry = $6, wkb = $7,
       radius_m = $8, properties = $9, extent = $10, updated_at = now()
WHERE id = $1 AND merchant_id = $2
RETURNING id, merchant_id, store_id, name, kind, geometry, radius_m, properties,
          created_at, updated_at;

-- name: update_geofences
UPDATE geofences AS f SET store_id = t.s, name = t.n, kind = t.k, geometry = t.g, wkb = t.w,
       radius_m = t.r, properties = t.p, extent = t.e, updated_at = now()
FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::bytea[],
            $8::float8[], $9::jsonb[], $10::box[]) AS t(id, s, n, k, g, w, r, p, e)
WHERE f.id = t.id AND f.merchant_id = $1;

-- name: get_geofence
SELECT id, merchant_id, store_id, name, kind, geometry, radius_m, properties,
       created_at, updated_at
FROM geofences WHERE id = $1 AND merchant_id = $2;

-- name: lock_geofence
-- A PATCH merges into what it read: hold the row so no concurrent write is lost.
SELECT id, merchant_id, store_id, name, kind, geometry, radius_m, properties,
       created_at, updated_at
FROM geofences WHERE id = $1 AND merchant_id = $2
FOR UPDATE;

-- name: list_geofences
SELECT id, merchant_id, store_id, name, kind, geometry, radius_m, properties,
       created_at, updated_at
FROM geofences
WHERE merchant_id = $1
  AND ($2::bigint[] IS NULL OR store_id = ANY($2))
  AND ($3::bigint IS NULL OR store_id = $3)
  AND ($6::box IS NULL OR extent && $6)
  AND id > $4
ORDER BY id
LIMIT $5;

-- name: geofence_scopes
-- Which of these geofences exist in the merchant, and at which store. Locked so the
-- import's update finds what was checked; in id order so two callers never deadlock.
SELECT id, store_id FROM geofences WHERE merchant_id = $1 AND id = ANY($2::bigint[])
ORDER BY id
FOR UPDATE;

-- name: delete_geofence
DELETE FROM geofences WHERE id = $1 AND merchant_id = $2 RETURNING id;

-- name: delete_geofences_except
-- PUT replaces the caller's whole set: everything in scope and not kept goes.
DELETE FROM geofences
WHERE merchant_id = $1
  AND ($2::bigint[] IS NULL OR store_id = ANY($2))
  AND NOT (id = ANY($3::bigint[]))
RETURNING id;

-- name: lock_geofences
-- Serialises bulk replacements of one merchant's set; $2 is the lock family's prefix
-- (geo/locks.py GEOFENCE_SET).
SELECT pg_advisory_xact_lock(hashtextextended($2::text || $1::bigint, 0));

-- name: index_rows
SELECT id, merchant_id, store_id, kind, wkb, radius_m FROM geofences;

-- name: index_version
SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM geofence_changes_seq;

-- name: get_shopper_geo
-- The one read a ping that changes nothing pays for (and only when not cached).
SELECT visits, version, last_lat, last_lon, last_ts, last_accuracy_m
FROM shopper_geo WHERE shopper_id = $1;

-- name: cas_visits
-- A state change in one round trip: write the visits only if nobody has since
-- ($4 is the version they were computed from; NULL when there was no row),
-- log the events and announce the change, all in this one statement's
-- transaction. No row back means someone else won: re-read and recompute.
WITH upd AS (
    UPDATE shopper_geo SET visits = $3, version = version + 1, updated_at = now()
    WHERE shopper_id = $1 AND version = $4
    RETURNING version
), ins AS (
    INSERT INTO shopper_geo (shopper_id, merchant_id, visits, version)
    SELECT $1, $2, $3, 1 WHERE $4::bigint IS NULL
    ON CONFLICT (shopper_id) DO NOTHING
    RETURNING version
), done AS (
    SELECT version FROM upd UNION ALL SELECT version FROM ins
), ev AS (
    INSERT INTO geofence_events (merchant_id, shopper_id, geofence_id, event, at)
    SELECT $2, $1, t.f, t.e, t.a
    FROM unnest($5::bigint[], $6::text[], $7::timestamptz[]) AS t(f, e, a)
    WHERE EXISTS (SELECT 1 FROM done)
)
SELECT version, pg_notify('shopper_geo_changed', $8) FROM done;

-- name: ensure_shopper_geo
INSERT INTO shopper_geo (shopper_id, merchant_id) VALUES ($1, $2)
ON CONFLICT (shopper_id) DO NOTHING;

-- name: lock_shopper_geo
SELECT visits, version, last_lat, last_lon, last_ts, last_accuracy_m
FROM shopper_geo WHERE shopper_id = $1
FOR UPDATE;

-- name: save_visits
UPDATE shopper_geo SET visits = $2, version = version + 1, updated_at = now()
WHERE shopper_id = $1;

-- name: notify_visits
-- Delivered at commit: other processes drop their cached copy of this shopper's visits.
SELECT pg_notify('shopper_geo_changed', $1);

-- name: insert_events
INSERT INTO geofence_events (merchant_id, shopper_id, geofence_id, event, at)
SELECT $1, $2, f, e, a
FROM unnest($3::bigint[], $4::text[], $5::timestamptz[]) AS t(f, e, a);

-- name: log_pings
-- One statement, so one round trip and atomic without a transaction: append the batch
-- to the ping log, record how far into its spool file the batch reached (when $13 names
-- one), and move the impossible-travel baseline forward, where the newest accepted fix
-- per shopper wins and an older fix never overwrites a newer one. Pings of a shopper
-- erased meanwhile are not kept (a spool replayed late included); write_pings orders
-- the batch with erasures in progress by an advisory lock, taken before this runs.
WITH marked AS (
    INSERT INTO ping_spools (id, flushed_bytes)
    SELECT $13::text, $14::bigint WHERE $13::text IS NOT NULL
    ON CONFLICT (id) DO UPDATE SET flushed_bytes = excluded.flushed_bytes, updated_at = now()
), batch AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::timestamptz[],
                         $5::float8[], $6::float8[], $7::real[], $8::real[], $9::text[],
                         $10::real[], $11::text[], $12::smallint[])
        AS t(merchant_id, shopper_id, ts, received_at, lat, lon, accuracy_m, speed_mps,
             weather_condition, temp_c, verdict, transitions)
), logged AS (
    -- Driven from the batch, one primary key probe per row: the prepared statement goes
    -- to a generic plan after five runs, and one that starts from the shoppers table
    -- joined a 700-row batch against it row by row (115 ms instead of 9).
    INSERT INTO pings (merchant_id, shopper_id, ts, received_at, lat, lon, accuracy_m,
                       speed_mps, weather_condition, temp_c, verdict, transitions)
    SELECT b.* FROM batch b
    JOIN shoppers s ON s.id = b.shopper_id AND s.merchant_id = b.merchant_id
    WHERE s.erased_at IS NULL
    RETURNING shopper_id, merchant_id, lat, lon, ts, accuracy_m, verdict
), newest AS (
    SELECT DISTINCT ON (shopper_id) shopper_id, merchant_id, lat, lon, ts, accuracy_m
    FROM logged WHERE verdict = 'ok'
    ORDER BY shopper_id, ts DESC
)
INSERT INTO shopper_geo AS g (shopper_id, merchant_id, last_lat, last_lon, last_ts, last_accuracy_m)
SELECT n.shopper_id, n.merchant_id, n.lat, n.lon, n.ts, n.accuracy_m
FROM newest n
ORDER BY n.shopper_id
ON CONFLICT (shopper_id) DO UPDATE SET
    last_lat = excluded.last_lat, last_lon = excluded.last_lon,
    last_ts = excluded.last_ts, last_accuracy_m = excluded.last_accuracy_m
WHERE g.last_ts IS NULL OR excluded.last_ts > g.last_ts;

-- name: spool_mark
SELECT flushed_bytes FROM ping_spools WHERE id = $1;

-- name: drop_spool_mark
DELETE FROM ping_spools WHERE id = $1;

-- name: purge_spool_marks
DELETE FROM ping_spools WHERE updated_at < $1;

-- name: purge_pings
-- In slices, so a large purge never holds long locks or bloats one transaction. Retention
-- drops the day partitions wholly before $1 first; both scans here are bounded by $1, so
-- they only visit what is left before it (the day that straddles it, the DEFAULT
-- partition). The key is (id, received_at): the partition key is part of it.
DELETE FROM pings WHERE received_at < $1 AND (id, received_at) IN (
    SELECT id, received_at FROM pings WHERE received_at < $1 ORDER BY received_at LIMIT $2
);

-- name: seen_pings
-- The answers already given to these client ids of the shopper (resends).
SELECT client_id, answer FROM ping_receipts WHERE shopper_id = $1 AND client_id = ANY($2::uuid[]);

-- name: insert_receipts
-- A plain insert: a client id recorded meanwhile (a resend on another replica, at the
-- same moment) fails the whole unit of work, which then answers from that record.
INSERT INTO ping_receipts (shopper_id, merchant_id, received_at, client_id, answer)
SELECT $1, $2, $3, c, a FROM unnest($4::uuid[], $5::jsonb[]) AS t(c, a);

-- name: purge_receipts
DELETE FROM ping_receipts WHERE (shopper_id, client_id) IN (
    SELECT shopper_id, client_id FROM ping_receipts WHERE received_at < $1
    ORDER BY received_at LIMIT $2
);
