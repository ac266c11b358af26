-- Two-sided referrals: each shopper's shareable code, each program's referral rules,
-- the referrals made with a code (one per referred shopper), and the refusals at
-- enrolment. The fraud limits live here so that they hold across replicas: a
-- referred shopper has at most one referral (so one reward), a referral is never
-- its own referrer, and status moves pending -> qualified -> rewarded | refused
-- under the referral row's lock.

CREATE TABLE referral_codes (
    shopper_id   bigint CONSTRAINT pk__referral_codes PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    -- Canonical form (no separators), check symbol included, as offers/codes.py makes it.
    code         text NOT NULL,
    created_at   timestamptz NOT NULL,
    CONSTRAINT uq__referral_codes__merchant_id_code UNIQUE (merchant_id, code),
    CONSTRAINT fk__referral_codes__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);

CREATE TABLE referral_rules (
    merchant_id       bigint CONSTRAINT pk__referral_rules PRIMARY KEY
                      CONSTRAINT fk__referral_rules__merchant_id REFERENCES merchants (id)
                      ON DELETE CASCADE,
    -- What the referred shopper must do for both sides to be rewarded.
    qualify           text NOT NULL CONSTRAINT ck__referral_rules__qualify
                      CHECK (qualify IN ('first_purchase', 'first_redemption', 'points_threshold')),
    threshold_points  integer CONSTRAINT ck__referral_rules__threshold_points
                      CHECK (threshold_points > 0),
    referrer_points   integer NOT NULL CONSTRAINT ck__referral_rules__referrer_points
                      CHECK (referrer_points >= 0),
    referee_points    integer NOT NULL CONSTRAINT ck__referral_rules__referee_points
                      CHECK (referee_points >= 0),
    -- A coupon of this offer for each side, besides or instead of points.
    referrer_offer_id bigint,
    referee_offer_id  bigint,
    -- At most cap_limit rewarded referrals per referrer in any cap_days days.
    cap_limit         integer NOT NULL CONSTRAINT ck__referral_rules__cap_limit
                      CHECK (cap_limit BETWEEN 1 AND 100000),
    cap_days          integer NOT NULL CONSTRAINT ck__referral_rules__cap_days
                      CHECK (cap_days BETWEEN 1 AND 3660),
    updated_at        timestamptz NOT NULL,
    CONSTRAINT ck__referral_rules__threshold
        CHECK ((qualify = 'points_threshold') = (threshold_points IS NOT NULL)),
    CONSTRAINT fk__referral_rules__referrer_offer FOREIGN KEY (merchant_id, referrer_offer_id)
        REFERENCES offers (merchant_id, id),
    CONSTRAINT fk__referral_rules__referee_offer FOREIGN KEY (merchant_id, referee_offer_id)
        REFERENCES offers (merchant_id, id)
);

CREATE TABLE referrals (
    id               bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__referrals PRIMARY KEY,
    merchant_id      bigint NOT NULL,
    referrer_id      bigint NOT NULL,
    referee_id       bigint NOT NULL,
    status           text NOT NULL CONSTRAINT ck__referrals__status
                     CHECK (status IN ('pending', 'rewarded', 'refused')),
    refused_reason   text CONSTRAINT ck__referrals__refused_reason
                     CHECK (refused_reason IN ('shared_device', 'cap_reached')),
    created_at       timestamptz NOT NULL,
    qualified_at     timestamptz,
    settled_at       timestamptz,
    referrer_points  integer NOT NULL DEFAULT 0,
    referee_points   integer NOT NULL DEFAULT 0,
    coupons          integer NOT NULL DEFAULT 0,
    -- One referral per referred shopper: whatever the retries, one reward.
    CONSTRAINT uq__referrals__referee_id UNIQUE (referee_id),
    CONSTRAINT ck__referrals__not_self CHECK (referrer_id <> referee_id),
    CONSTRAINT ck__referrals__refused CHECK ((status = 'refused') = (refused_reason IS NOT NULL)),
    CONSTRAINT ck__referrals__settled CHECK ((status = 'pending') = (settled_at IS NULL)),
    CONSTRAINT fk__referrals__referrer FOREIGN KEY (merchant_id, referrer_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT fk__referrals__referee FOREIGN KEY (merchant_id, referee_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);
-- The cap (a referrer's rewarded referrals in the window) and a referrer's own summary.
CREATE INDEX ix__referrals__referrer_id_settled_at ON referrals (referrer_id, settled_at);
CREATE INDEX ix__referrals__merchant_id_created_at ON referrals (merchant_id, created_at);

-- Codes refused at enrolment that name a real referrer (a shopper's own code), for
-- the report. Unknown codes are not counted: they name nobody.
CREATE TABLE referral_refusals (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__referral_refusals PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    referrer_id  bigint NOT NULL,
    reason       text NOT NULL CONSTRAINT ck__referral_refusals__reason
                 CHECK (reason IN ('self_referral')),
    at           timestamptz NOT NULL,
    CONSTRAINT fk__referral_refusals__referrer FOREIGN KEY (merchant_id, referrer_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__referral_refusals__merchant_id_at ON referral_refusals (merchant_id, at);
