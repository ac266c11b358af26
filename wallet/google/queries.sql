-- Google Wallet: issuer configurations, the objects issued, and the notification log.

-- name: config
SELECT merchant_id, issuer_id, service_account, program_name, issuer_name, logo_url,
       background_color, dev, updated_at
FROM google_wallet_configs WHERE merchant_id = $1;

-- name: put_config
-- A merchant's issuer, service account and branding, replacing whatever was there.
INSERT INTO google_wallet_configs (merchant_id, issuer_id, service_account, client_email,
                                   program_name, issuer_name, logo_url, background_color, dev,
                                   updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
ON CONFLICT (merchant_id) DO UPDATE SET
    issuer_id = excluded.issuer_id, service_account = excluded.service_account,
    client_email = excluded.client_email, program_name = excluded.program_name,
    issuer_name = excluded.issuer_name, logo_url = excluded.logo_url,
    background_color = excluded.background_color, dev = excluded.dev, updated_at = now();

-- name: ensure_loyalty_object
-- The shopper's card is made once; its id never changes.
INSERT INTO google_wallet_objects (merchant_id, shopper_id, kind, object_id, class_id,
                                   created_at, updated_at)
SELECT merchant_id, id, 'loyalty', $3, $4, $5, $5 FROM shoppers
WHERE id = $2 AND merchant_id = $1
ON CONFLICT (shopper_id) WHERE kind = 'loyalty' DO NOTHING;

-- name: loyalty_card
-- The card with what it shows; linked offers are the shopper's coupons on Google.
SELECT o.id, o.object_id, o.class_id, o.synced_hash, o.deleted_at, s.name, s.points, s.tier,
       g.last_lat, g.last_lon,
       (SELECT r.code FROM referral_codes r WHERE r.shopper_id = s.id) AS referral_code,
       ARRAY(SELECT f.object_id FROM google_wallet_objects f
             WHERE f.shopper_id = s.id AND f.kind = 'offer' AND f.deleted_at IS NULL
             ORDER BY f.id) AS linked
FROM google_wallet_objects o
JOIN shoppers s ON s.id = o.shopper_id
LEFT JOIN shopper_geo g ON g.shopper_id = s.id
WHERE o.shopper_id = $1 AND o.merchant_id = $2 AND o.kind = 'loyalty';

-- name: shopper_coupon
SELECT c.id, c.offer_id, c.expires_at,
       EXISTS (SELECT 1 FROM redemptions r WHERE r.coupon_id = c.id AND r.voided_at IS NULL)
           AS redeemed
FROM coupons c WHERE c.id = $1 AND c.shopper_id = $2 AND c.merchant_id = $3;

-- name: coupon_is_shoppers
SELECT EXISTS (SELECT 1 FROM coupons WHERE id = $1 AND shopper_id = $2 AND merchant_id = $3);

-- name: delivery_coupon
SELECT coupon_id FROM deliveries WHERE id = $1;

-- name: ensure_offer_object
INSERT INTO google_wallet_objects (merchant_id, shopper_id, kind, coupon_id, object_id,
                                   class_id, created_at, updated_at)
SELECT merchant_id, shopper_id, 'offer', id, $3, $4, $5, $5 FROM coupons
WHERE id = $1 AND shopper_id = $2
ON CONFLICT (coupon_id) WHERE kind = 'offer' DO NOTHING;

-- name: offer_cards
-- The shopper's coupons on Google (all of them, or one), with what they show.
SELECT o.id, o.object_id, o.class_id, o.synced_hash, o.deleted_at, c.id AS coupon_id, c.code,
       c.issued_at, c.expires_at, c.store_ids, f.id AS offer_id, f.title, f.body,
       f.coupon AS spec,
       EXISTS (SELECT 1 FROM redemptions r WHERE r.coupon_id = c.id AND r.voided_at IS NULL)
           AS redeemed
FROM google_wallet_objects o
JOIN coupons c ON c.id = o.coupon_id
JOIN offers f ON f.id = c.offer_id
WHERE o.shopper_id = $1 AND o.kind = 'offer' AND ($2::bigint IS NULL OR o.coupon_id = $2)
ORDER BY o.id;

-- name: callback_object
-- The object a callback names, if it is this merchant's. Locked: two callbacks for one
-- object (a delete and a save a moment apart) apply one after the other.
SELECT id, shopper_id, coupon_id, deleted_at FROM google_wallet_objects
WHERE merchant_id = $1 AND object_id = $2
FOR UPDATE;

-- name: set_deleted
-- $2: when the shopper deleted the pass from Google Wallet, or NULL when saved again.
UPDATE google_wallet_objects SET deleted_at = $2 WHERE id = $1;

-- name: mark_synced
UPDATE google_wallet_objects SET synced_hash = $2, state = $3, updated_at = $4 WHERE id = $1;

-- name: notified_since
SELECT count(*) FROM google_wallet_notifications WHERE object_id = $1 AND notified AND at > $2;

-- name: record_notification
INSERT INTO google_wallet_notifications (object_id, notified, silent_reason, reason, at)
VALUES ($1, $2, $3, $4, $5);

-- name: expire_offers
-- Google coupons that expired unredeemed while Google still shows them active: one
-- update per shopper, unless one is already waiting.
WITH q AS (
    INSERT INTO pass_updates (merchant_id, shopper_id, reason, target)
    SELECT DISTINCT o.merchant_id, o.shopper_id, 'coupon_expired', 'google'
    FROM google_wallet_objects o JOIN coupons c ON c.id = o.coupon_id
    WHERE o.kind = 'offer' AND o.state = 'ACTIVE' AND o.deleted_at IS NULL
      AND c.expires_at <= $1
      AND NOT EXISTS (SELECT 1 FROM redemptions r
                      WHERE r.coupon_id = c.id AND r.voided_at IS NULL)
      AND NOT EXISTS (SELECT 1 FROM pass_updates p
                      WHERE p.shopper_id = o.shopper_id AND p.target = 'google'
                        AND p.done_at IS NULL)
    RETURNING 1
)
SELECT count(*) FROM q;

-- name: queue_update
-- An object Google has never been sent: the worker inserts its class and itself, so the
-- save link works. (A second row while one waits costs nothing: nothing changed is sent.)
INSERT INTO pass_updates (merchant_id, shopper_id, reason, target) VALUES ($1, $2, $3, 'google');
