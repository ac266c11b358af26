-- The delivery side: the outbox workers' claims, the inbox, push subscriptions,
-- delivery tracking and the VAPID key.

-- name: enqueue
-- Coupons just issued, in the transaction that issued them (offers'
-- record_decisions): their delivery rows, and an outbox row per channel that
-- needs a worker. Channels come comma-joined, one text per send, because
-- unnest cannot take arrays of arrays of different lengths.
WITH s AS (
    SELECT s.id, s.merchant_id, s.shopper_id, s.offer_id, s.coupon_id, s.decision_id,
           s.store_id, string_to_array(s.channels, ',') AS channels, s.created_at, s.expires_at
    FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
                $6::bigint[], $7::bigint[], $8::text[], $9::timestamptz[], $10::timestamptz[])
         AS s(id, merchant_id, shopper_id, offer_id, coupon_id, decision_id, store_id, channels,
              created_at, expires_at)
), dl AS (
    INSERT INTO deliveries (id, merchant_id, shopper_id, offer_id, coupon_id, decision_id,
                            store_id, channels, created_at)
    SELECT id, merchant_id, shopper_id, offer_id, coupon_id, decision_id, store_id, channels,
           created_at
    FROM s
    RETURNING id
), ob AS (
    -- The inbox needs no worker: the app reads it, and its live feed is woken below.
    -- Due by the database's clock, which the workers of every replica compare with.
    INSERT INTO outbox (delivery_id, merchant_id, channel, available_at, expires_at)
    SELECT s.id, s.merchant_id, ch, now(), s.expires_at
    FROM dl JOIN s ON s.id = dl.id CROSS JOIN unnest(s.channels) AS ch
    WHERE ch <> 'inbox'
)
SELECT pg_notify('outbox', s.merchant_id::text),
       CASE WHEN 'inbox' = ANY (s.channels) THEN pg_notify('inbox', s.shopper_id::text) END
FROM s;

-- name: claim
-- Rows nobody holds: pending and due, and either never leased or leased by a
-- worker that has not finished within its lease (it crashed or hangs). SKIP
-- LOCKED lets any number of workers on any number of replicas claim side by side.
WITH c AS (
    SELECT id FROM outbox
    WHERE status = 'pending' AND available_at <= now()
      AND (leased_until IS NULL OR leased_until < now())
    ORDER BY available_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET leased_until = now() + make_interval(secs => $2), attempts = o.attempts + 1
FROM c, deliveries dl, coupons cp, offers f
WHERE o.id = c.id AND dl.id = o.delivery_id AND cp.id = dl.coupon_id AND f.id = dl.offer_id
RETURNING o.id, o.delivery_id, o.channel, o.attempts, o.expires_at, o.done_targets, o.created_at,
          dl.merchant_id, dl.shopper_id, dl.offer_id, dl.coupon_id, cp.code,
          f.title, f.body, f.image_url, (f.coupon ->> 'valid_minutes')::int AS valid_minutes,
          -- The shopper's subscriptions come with the claim: no query per row.
          (SELECT coalesce(jsonb_agg(jsonb_build_array(s.id, s.endpoint, s.p256dh, s.auth)
                                     ORDER BY s.id), '[]')
           FROM push_subscriptions s WHERE s.shopper_id = dl.shopper_id) AS subscriptions;

-- name: settle
-- A batch of outcomes in one statement. Only the holder of the current claim (same
-- attempt number) may settle a row: a worker whose lease ran out and was taken
-- over changes nothing. A delay means "retry then"; no delay settles the row
-- with the given status. done_targets travel as JSON arrays (one per row).
UPDATE outbox o SET
    status = CASE WHEN t.delay IS NULL THEN t.status ELSE o.status END,
    available_at = CASE WHEN t.delay IS NULL THEN o.available_at
                        ELSE now() + make_interval(secs => t.delay) END,
    leased_until = NULL,
    last_error = t.error,
    done_targets = ARRAY(SELECT jsonb_array_elements_text(t.done::jsonb))
FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::float8[])
    AS t(id, attempts, status, error, done, delay)
WHERE o.id = t.id AND o.attempts = t.attempts AND o.status = 'pending'
RETURNING o.id;

-- name: dead_letters
SELECT o.id, o.delivery_id, o.channel, o.attempts, o.last_error, o.created_at, o.expires_at,
       dl.shopper_id, dl.offer_id
FROM outbox o JOIN deliveries dl ON dl.id = o.delivery_id
WHERE o.status = 'dead' AND o.merchant_id = $1 AND o.id > $2
ORDER BY o.id
LIMIT $3;

-- name: stuck
SELECT count(*) FROM outbox WHERE status = 'pending' AND leased_until < now();

-- name: record_events
-- Idempotent: a second open (or a redelivery) of the same delivery counts once.
-- An open or a dismissal implies the delivery on that channel: it is recorded too
-- when it was not, so the funnel's delivered never falls below its opened.
WITH t AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
        AS t(delivery_id, channel, kind, detail, at)
), implied AS (
    SELECT delivery_id, channel, kind, detail, at FROM t
    UNION ALL
    SELECT delivery_id, channel, 'delivered', NULL, at FROM t
    WHERE kind IN ('opened', 'dismissed')
), ev AS (
    INSERT INTO delivery_events (delivery_id, channel, kind, detail, at)
    SELECT delivery_id, channel, kind, detail, at FROM implied
    ON CONFLICT (delivery_id, channel, kind) DO NOTHING
    RETURNING delivery_id, kind, at
), firsts AS (
    SELECT delivery_id,
           min(at) FILTER (WHERE kind = 'delivered') AS delivered_at,
           min(at) FILTER (WHERE kind = 'opened') AS opened_at,
           min(at) FILTER (WHERE kind = 'dismissed') AS dismissed_at
    FROM ev GROUP BY delivery_id
)
UPDATE deliveries d SET
    delivered_at = coalesce(d.delivered_at, f.delivered_at),
    opened_at = coalesce(d.opened_at, f.opened_at),
    dismissed_at = coalesce(d.dismissed_at, f.dismissed_at)
FROM firsts f WHERE d.id = f.delivery_id;

-- name: add_subscription
INSERT INTO push_subscriptions (merchant_id, shopper_id, endpoint, p256dh, auth)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (shopper_id, endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth
RETURNING id, (xmax = 0) AS created;

-- name: remove_subscription
DELETE FROM push_subscriptions WHERE shopper_id = $1 AND endpoint = $2 RETURNING id;

-- name: prune_subscriptions
DELETE FROM push_subscriptions WHERE id = ANY ($1::bigint[]);

-- name: get_vapid
SELECT private_pem, public_key FROM vapid_keys WHERE id = 1;

-- name: put_vapid
INSERT INTO vapid_keys (id, private_pem, public_key) VALUES (1, $1, $2)
ON CONFLICT (id) DO NOTHING;

-- name: mark_passes
INSERT INTO pass_updates (merchant_id, shopper_id, reason, delivery_id)
SELECT m, s, 'coupon_issued', d FROM unnest($1::bigint[], $2::bigint[], $3::uuid[]) AS t(m, s, d);

-- name: inbox_columns
dl.id AS delivery_id, dl.offer_id, dl.created_at, dl.opened_at, dl.dismissed_at,
f.title, f.body, f.image_url, cp.id AS coupon_id, cp.code, cp.expires_at,
EXISTS (SELECT 1 FROM redemptions r WHERE r.coupon_id = cp.id AND r.voided_at IS NULL)
    AS redeemed

-- name: inbox
-- Live coupons: not expired, not dismissed; newest first, keyset-paged on
-- (created_at, id).
SELECT {inbox_columns}
FROM deliveries dl JOIN coupons cp ON cp.id = dl.coupon_id JOIN offers f ON f.id = dl.offer_id
WHERE dl.shopper_id = $1 AND 'inbox' = ANY (dl.channels) AND cp.expires_at > $2
  AND dl.dismissed_at IS NULL
  AND ($3::timestamptz IS NULL OR (dl.created_at, dl.id) < ($3, $4::uuid))
ORDER BY dl.created_at DESC, dl.id DESC
LIMIT $5;

-- name: inbox_since
-- What the live feed has not sent yet: newer than the last one it sent.
SELECT {inbox_columns}
FROM deliveries dl JOIN coupons cp ON cp.id = dl.coupon_id JOIN offers f ON f.id = dl.offer_id
WHERE dl.shopper_id = $1 AND 'inbox' = ANY (dl.channels) AND cp.expires_at > $2
  AND dl.dismissed_at IS NULL AND dl.created_at >= $3
ORDER BY dl.created_at, dl.id;

-- name: delivery_of
SELECT id, shopper_id, channels FROM deliveries WHERE id = $1 AND shopper_id = $2;

-- name: delivery_times
SELECT opened_at, dismissed_at FROM deliveries WHERE id = $1;

-- name: backlog
-- What waits to be delivered, for /metrics: each queue's depth, and how long its oldest
-- due row has waited since it became due (a row backing off after a 429 or a 5xx is
-- pending but not yet due). Every filter matches a partial index (ix__outbox__pending,
-- ix__outbox__dead, ix__pass_updates__pending).
SELECT 'outbox' AS queue, channel AS kind, count(*) AS pending,
       coalesce(extract(epoch FROM now() - min(available_at) FILTER (WHERE available_at <= now())), 0)
           AS oldest_due_seconds
FROM outbox WHERE status = 'pending' GROUP BY channel
UNION ALL
SELECT 'pass_updates', target, count(*),
       coalesce(extract(epoch FROM now() - min(available_at) FILTER (WHERE available_at <= now())), 0)
FROM pass_updates WHERE done_at IS NULL GROUP BY target;

-- name: dead_rows
SELECT count(*) FROM outbox WHERE status = 'dead';
