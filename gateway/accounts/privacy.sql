-- Shopper privacy: everything held about a shopper, and erasure.

-- name: export
-- One JSON document; secrets (token hashes, pass authentication tokens, push keys) are
-- left out, everything else about the shopper is in.
SELECT json_build_object(
    'profile', (SELECT row_to_json(s) FROM (
        SELECT id::text, name, email, marketing_consent, consent_at, timezone, tier, points,
               tags, created_at, birthday
        FROM shoppers WHERE id = $1) s),
    'location', json_build_object(
        'last_known', (SELECT row_to_json(g) FROM (
            SELECT last_lat AS lat, last_lon AS lon, last_ts AS at, last_accuracy_m AS accuracy_m,
                   visits
            FROM shopper_geo WHERE shopper_id = $1) g),
        'pings', (SELECT coalesce(json_agg(p ORDER BY p.ts), '[]') FROM (
            SELECT ts, received_at, lat, lon, accuracy_m, speed_mps, weather_condition, temp_c,
                   verdict
            FROM pings WHERE shopper_id = $1) p),
        'geofence_events', (SELECT coalesce(json_agg(e ORDER BY e.at), '[]') FROM (
            SELECT geofence_id::text, event, at FROM geofence_events WHERE shopper_id = $1) e)),
    'offers', json_build_object(
        'decisions', (SELECT coalesce(json_agg(d ORDER BY d.decided_at), '[]') FROM (
            SELECT id::text, offer_id::text, store_id::text, trigger, outcome, reason,
                   decided_at, converted_at
            FROM decisions WHERE shopper_id = $1) d),
        'coupons', (SELECT coalesce(json_agg(c ORDER BY c.issued_at), '[]') FROM (
            SELECT id::text, offer_id::text, code, issued_at, expires_at
            FROM coupons WHERE shopper_id = $1) c),
        'deliveries', (SELECT coalesce(json_agg(d ORDER BY d.created_at), '[]') FROM (
            SELECT id::text, offer_id::text, channels, created_at, delivered_at, opened_at,
                   dismissed_at
            FROM deliveries WHERE shopper_id = $1) d),
        'redemptions', (SELECT coalesce(json_agg(r ORDER BY r.redeemed_at), '[]') FROM (
            SELECT id::text, coupon_id::text, store_id::text, order_ref, amount, redeemed_at,
                   voided_at
            FROM redemptions WHERE shopper_id = $1) r),
        'survey_responses', (SELECT coalesce(json_agg(r ORDER BY r.answered_at), '[]') FROM (
            SELECT id::text, survey_id::text, store_id::text, score, answers, points,
                   answered_at
            FROM survey_responses WHERE shopper_id = $1) r)),
    'loyalty', json_build_object(
        'ledger', (SELECT coalesce(json_agg(l ORDER BY l.id), '[]') FROM (
            SELECT id::text, kind, points, reason, created_at
            FROM points_ledger WHERE shopper_id = $1) l),
        'purchases', (SELECT coalesce(json_agg(p ORDER BY p.created_at), '[]') FROM (
            SELECT id::text, store_id::text, amount, order_ref, points, created_at
            FROM purchases WHERE shopper_id = $1) p),
        'tier_changes', (SELECT coalesce(json_agg(t ORDER BY t.at), '[]') FROM (
            SELECT from_tier, to_tier, at FROM tier_changes WHERE shopper_id = $1) t),
        'referral_code', (SELECT code FROM referral_codes WHERE shopper_id = $1),
        -- Referrals the shopper made or was made by; the other side by id only.
        'referrals', (SELECT coalesce(json_agg(r ORDER BY r.created_at), '[]') FROM (
            SELECT CASE WHEN referrer_id = $1 THEN 'referrer' ELSE 'referee' END AS side,
                   status, refused_reason, created_at, settled_at,
                   CASE WHEN referrer_id = $1 THEN referrer_points ELSE referee_points END
                       AS points
            FROM referrals WHERE referrer_id = $1 OR referee_id = $1) r)),
    'devices', json_build_object(
        'push_subscriptions', (SELECT coalesce(json_agg(p ORDER BY p.created_at), '[]') FROM (
            SELECT endpoint, created_at FROM push_subscriptions WHERE shopper_id = $1) p),
        'wallet_passes', (SELECT coalesce(json_agg(w ORDER BY w.created_at), '[]') FROM (
            SELECT p.kind, p.serial, p.created_at,
                   (SELECT count(*) FROM device_registrations r WHERE r.pass_id = p.id)
                       AS registered_devices
            FROM passes p WHERE p.shopper_id = $1) w),
        'google_wallet_objects', (SELECT coalesce(json_agg(g ORDER BY g.created_at), '[]') FROM (
            SELECT kind, object_id, state, created_at, deleted_at
            FROM google_wallet_objects WHERE shopper_id = $1) g)),
    'api_keys', (SELECT coalesce(json_agg(k ORDER BY k.created_at), '[]') FROM (
        SELECT id::text, created_at, revoked_at FROM api_keys WHERE shopper_id = $1) k)
)::text
FROM shoppers WHERE id = $1 AND merchant_id = $2 AND erased_at IS NULL;

-- name: lock_for_erasure
SELECT id FROM shoppers WHERE id = $1 AND merchant_id = $2 AND erased_at IS NULL FOR UPDATE;

-- name: erase
-- Location history, devices and contact data go; the pseudonymous id stays on the
-- purchases, ledger, decisions and redemptions, whose counts the reports are built from
-- (the reports read rollups, which keep no shopper at all).
WITH pings_gone AS (DELETE FROM pings WHERE shopper_id = $1 RETURNING 1),
     events_gone AS (DELETE FROM geofence_events WHERE shopper_id = $1 RETURNING 1),
     geo_gone AS (DELETE FROM shopper_geo WHERE shopper_id = $1 RETURNING 1),
     receipts_gone AS (DELETE FROM ping_receipts WHERE shopper_id = $1 RETURNING 1),
     subs_gone AS (DELETE FROM push_subscriptions WHERE shopper_id = $1 RETURNING 1),
     regs AS (SELECT count(*) AS n FROM device_registrations
              WHERE pass_id IN (SELECT id FROM passes WHERE shopper_id = $1)),
     -- Its registrations go with it (ON DELETE CASCADE).
     passes_gone AS (DELETE FROM passes WHERE shopper_id = $1 RETURNING 1),
     -- Our record of the shopper's Google objects (and their notification log).
     google_gone AS (DELETE FROM google_wallet_objects WHERE shopper_id = $1 RETURNING 1),
     updates_gone AS (DELETE FROM pass_updates WHERE shopper_id = $1 RETURNING 1),
     -- The shareable code goes (a friend typing it is told it is unknown); referrals
     -- stay, pseudonymous, for the referral report.
     code_gone AS (DELETE FROM referral_codes WHERE shopper_id = $1 RETURNING 1),
     pending_gone AS (DELETE FROM outbox WHERE status = 'pending' AND delivery_id IN
                        (SELECT id FROM deliveries WHERE shopper_id = $1) RETURNING 1),
     -- Survey answers keep their score (the NPS counts them) but lose their words;
     -- invitations still waiting are dropped.
     answers_gone AS (UPDATE survey_responses SET answers = '{}'
                      WHERE shopper_id = $1 AND answers <> '{}' RETURNING 1),
     invitations_gone AS (DELETE FROM survey_invitations
                          WHERE shopper_id = $1 AND done_at IS NULL RETURNING 1),
     -- Lifecycle journeys: the last-activity time goes, and nothing pending is sent.
     activity_gone AS (DELETE FROM shopper_activity WHERE shopper_id = $1 RETURNING 1),
     runs_cancelled AS (UPDATE journey_runs SET state = 'cancelled', outcome = 'erased',
                            done_at = $2
                        WHERE shopper_id = $1 AND state = 'pending' RETURNING 1),
     keys_revoked AS (UPDATE api_keys SET revoked_at = $2
                      WHERE shopper_id = $1 AND revoked_at IS NULL RETURNING 1),
     shopper AS (UPDATE shoppers SET name = NULL, email = NULL, timezone = NULL, tags = '{}',
                     birthday = NULL, marketing_consent = false, consent_at = $2, erased_at = $2
                 WHERE id = $1 RETURNING 1)
SELECT (SELECT count(*) FROM pings_gone) AS pings,
       (SELECT count(*) FROM events_gone) AS geofence_events,
       (SELECT count(*) FROM subs_gone) AS push_subscriptions,
       (SELECT n FROM regs) AS device_registrations,
       (SELECT count(*) FROM passes_gone) AS wallet_passes,
       (SELECT count(*) FROM google_gone) AS google_wallet_objects,
       (SELECT count(*) FROM pending_gone) AS pending_deliveries,
       (SELECT count(*) FROM code_gone) AS referral_codes,
       (SELECT count(*) FROM keys_revoked) AS api_keys_revoked;
