-- Two-sided referrals: codes, rules, referrals and their settlement, the report.

-- name: code_of
SELECT code FROM referral_codes WHERE shopper_id = $1 AND merchant_id = $2;

-- name: insert_code
-- A shopper's code is made once; a concurrent first request keeps the first one.
INSERT INTO referral_codes (shopper_id, merchant_id, code, created_at)
SELECT $1, $2, $3, $4
WHERE EXISTS (SELECT 1 FROM shoppers WHERE id = $1 AND merchant_id = $2)
ON CONFLICT (shopper_id) DO NOTHING;

-- name: referrer_by_code
SELECT c.shopper_id, s.email
FROM referral_codes c JOIN shoppers s ON s.id = c.shopper_id
WHERE c.merchant_id = $1 AND c.code = $2;

-- name: record_refusal
INSERT INTO referral_refusals (merchant_id, referrer_id, reason, at) VALUES ($1, $2, $3, $4);

-- name: insert_referral
INSERT INTO referrals (merchant_id, referrer_id, referee_id, status, created_at)
VALUES ($1, $2, $3, 'pending', $4)
RETURNING id;

-- name: rules_columns
qualify, threshold_points, referrer_points, referee_points, referrer_offer_id,
referee_offer_id, cap_limit, cap_days

-- name: rules
SELECT {rules_columns} FROM referral_rules WHERE merchant_id = $1;

-- name: set_rules
INSERT INTO referral_rules (merchant_id, qualify, threshold_points, referrer_points,
                            referee_points, referrer_offer_id, referee_offer_id, cap_limit,
                            cap_days, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (merchant_id) DO UPDATE SET
    qualify = excluded.qualify, threshold_points = excluded.threshold_points,
    referrer_points = excluded.referrer_points, referee_points = excluded.referee_points,
    referrer_offer_id = excluded.referrer_offer_id, referee_offer_id = excluded.referee_offer_id,
    cap_limit = excluded.cap_limit, cap_days = excluded.cap_days,
    updated_at = excluded.updated_at
RETURNING {rules_columns};

-- name: claim
-- The referred shopper's pending referral, locked. A concurrent settlement of the
-- same referral waits here; once it commits, the row is no longer pending and this
-- finds nothing: the reward is paid once, on any replica, whatever the retries.
SELECT id, referrer_id FROM referrals
WHERE merchant_id = $1 AND referee_id = $2 AND status = 'pending'
FOR UPDATE;

-- name: lock_referrer
-- Settlements of one referrer's referrals queue here, so the cap counts each of them.
SELECT 1 FROM referral_codes WHERE shopper_id = $1 FOR UPDATE;

-- name: shared_device
-- The two shoppers share a Web Push endpoint, or an Apple Wallet device holds both
-- shoppers' passes (the same device library id or push token).
SELECT EXISTS (
    SELECT 1 FROM push_subscriptions a
    JOIN push_subscriptions b ON b.endpoint = a.endpoint AND b.shopper_id = $2
    WHERE a.shopper_id = $1
) OR EXISTS (
    SELECT 1
    FROM passes pa
    JOIN device_registrations da ON da.pass_id = pa.id
    JOIN device_registrations db
      ON (db.device_library_id = da.device_library_id OR db.push_token = da.push_token)
    JOIN passes pb ON pb.id = db.pass_id AND pb.shopper_id = $2
    WHERE pa.shopper_id = $1
);

-- name: rewarded_since
SELECT count(*) FROM referrals
WHERE referrer_id = $1 AND status = 'rewarded' AND settled_at > $2;

-- name: settle
UPDATE referrals SET status = $2, refused_reason = $3, qualified_at = $4, settled_at = $4,
    referrer_points = $5, referee_points = $6, coupons = $7
WHERE id = $1;

-- name: shopper_summary
SELECT count(*) AS invited,
       count(*) FILTER (WHERE status = 'rewarded') AS rewarded,
       coalesce(sum(referrer_points) FILTER (WHERE status = 'rewarded'), 0) AS points
FROM referrals WHERE referrer_id = $1 AND merchant_id = $2;

-- name: report
-- Counts over the referrals made in [$2, $3) (their enrolment time).
SELECT count(*) AS used,
       count(*) FILTER (WHERE qualified_at IS NOT NULL) AS qualified,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'rewarded') AS rewarded,
       count(*) FILTER (WHERE refused_reason = 'shared_device') AS shared_device,
       count(*) FILTER (WHERE refused_reason = 'cap_reached') AS cap_reached,
       coalesce(sum(referrer_points + referee_points) FILTER (WHERE status = 'rewarded'), 0)
           AS points_paid,
       coalesce(sum(coupons) FILTER (WHERE status = 'rewarded'), 0) AS coupons_issued,
       (SELECT count(*) FROM referral_refusals
        WHERE merchant_id = $1 AND reason = 'self_referral'
          AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at < $3))
           AS self_referral
FROM referrals
WHERE merchant_id = $1
  AND ($2::timestamptz IS NULL OR created_at >= $2) AND ($3::timestamptz IS NULL OR created_at < $3);

-- name: reward_place
-- Where a reward coupon's decision is logged: the offer's first geofence, else the first
-- geofence of one of its stores. An offer with neither can issue no coupon.
SELECT id AS fence_id, store_id FROM geofences
WHERE merchant_id = $1 AND (id = ANY($2::bigint[]) OR store_id = ANY($3::bigint[]))
ORDER BY (id = ANY($2::bigint[])) DESC, id
LIMIT 1;

-- name: reserve_reward
-- A reward coupon takes one unit of the offer's issue budget when it has one. The offer
-- may be paused (a reward kept off the geofences) but not archived.
UPDATE offers SET issued_count = issued_count + (budget_issued IS NOT NULL)::integer
WHERE id = $1 AND deleted_at IS NULL
  AND (budget_issued IS NULL OR issued_count < budget_issued)
RETURNING id;
