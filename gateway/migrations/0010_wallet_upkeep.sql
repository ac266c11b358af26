-- Wallet upkeep: points that expire, tiers that fall when earnings leave the window,
-- and coupon passes that tell the device when their coupon has expired.

ALTER TABLE merchants
    -- NULL: points never expire. Otherwise points expire this many days after they
    -- were earned, oldest first (spends and earlier expiries use the oldest points).
    ADD COLUMN points_expire_days integer
        CONSTRAINT ck__merchants__points_expire_days CHECK (points_expire_days BETWEEN 1 AND 3660);

ALTER TABLE passes
    -- When upkeep saw the coupon expire and queued the pass update for it.
    ADD COLUMN expired_at timestamptz;

CREATE INDEX ix__points_ledger__merchant_shopper ON points_ledger (merchant_id, shopper_id);
CREATE INDEX ix__passes__coupon_unexpired ON passes (coupon_id)
    WHERE kind = 'coupon' AND expired_at IS NULL;
