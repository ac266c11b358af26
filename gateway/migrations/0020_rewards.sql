-- Spending points: a rewards catalog shoppers buy with points, partner gift-card code
-- pools, the grants a purchase of a reward makes, and payments with points at the till.

-- A coupon can be granted by the program (a reward, a referral...) rather than sent by
-- a decision: it belongs to an offer whose trigger is 'reward' (never fired by a place,
-- and hidden from the offers API), and has no decision. Granted coupons reach the inbox,
-- Web Push and the wallet through the same deliveries and outbox as sent ones.
ALTER TABLE offers DROP CONSTRAINT ck__offers__trigger;
ALTER TABLE offers ADD CONSTRAINT ck__offers__trigger
    CHECK (trigger IN ('enter', 'dwell', 'reward'));
ALTER TABLE coupons ALTER COLUMN decision_id DROP NOT NULL;
ALTER TABLE deliveries ALTER COLUMN decision_id DROP NOT NULL;
ALTER TABLE deliveries ALTER COLUMN store_id DROP NOT NULL;

CREATE TABLE rewards (
    id                 bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__rewards PRIMARY KEY,
    merchant_id        bigint NOT NULL
                       CONSTRAINT fk__rewards__merchant_id REFERENCES merchants (id)
                       ON DELETE CASCADE,
    kind               text NOT NULL CONSTRAINT ck__rewards__kind
                       CHECK (kind IN ('free_item', 'discount', 'gift_card')),
    name               text NOT NULL,
    -- The offer row that carries the coupon's title, body, channels, validity and stores.
    offer_id           bigint NOT NULL,
    points             integer NOT NULL CONSTRAINT ck__rewards__points CHECK (points > 0),
    -- NULL: unlimited (a gift card's stock is also bounded by its unused codes).
    stock              integer CONSTRAINT ck__rewards__stock CHECK (stock >= 0),
    -- The counter row is the stock's lock across replicas.
    issued_count       integer NOT NULL DEFAULT 0,
    per_shopper_limit  integer CONSTRAINT ck__rewards__per_shopper_limit
                       CHECK (per_shopper_limit > 0),
    -- NULL: every tier; else the tiers that may buy it.
    tiers              text[],
    status             text NOT NULL DEFAULT 'active'
                       CONSTRAINT ck__rewards__status CHECK (status IN ('active', 'paused')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    CONSTRAINT uq__rewards__merchant_id_id UNIQUE (merchant_id, id),
    CONSTRAINT fk__rewards__offer FOREIGN KEY (merchant_id, offer_id)
        REFERENCES offers (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT ck__rewards__stock_count CHECK (stock IS NULL OR issued_count <= stock)
);
CREATE INDEX ix__rewards__merchant_id ON rewards (merchant_id, id) WHERE deleted_at IS NULL;

-- A partner's gift-card codes, uploaded by managers; each goes to one grant.
CREATE TABLE reward_codes (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__reward_codes PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    reward_id    bigint NOT NULL,
    code         text NOT NULL,
    grant_id     bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__reward_codes__reward_id_code UNIQUE (reward_id, code),
    CONSTRAINT fk__reward_codes__reward FOREIGN KEY (merchant_id, reward_id)
        REFERENCES rewards (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__reward_codes__unused ON reward_codes (reward_id, id) WHERE grant_id IS NULL;

-- One row per reward bought: the points spent, the coupon issued, the code given.
CREATE TABLE reward_grants (
    id               bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__reward_grants PRIMARY KEY,
    merchant_id      bigint NOT NULL,
    reward_id        bigint NOT NULL,
    shopper_id       bigint NOT NULL,
    points           integer NOT NULL,
    coupon_id        bigint NOT NULL CONSTRAINT fk__reward_grants__coupon_id
                     REFERENCES coupons (id) ON DELETE CASCADE,
    gift_code        text,
    idempotency_key  text NOT NULL,
    request_hash     bytea NOT NULL,
    created_at       timestamptz NOT NULL,
    CONSTRAINT uq__reward_grants__shopper_id_idempotency_key UNIQUE (shopper_id, idempotency_key),
    CONSTRAINT fk__reward_grants__reward FOREIGN KEY (merchant_id, reward_id)
        REFERENCES rewards (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT fk__reward_grants__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__reward_grants__reward_id_shopper_id ON reward_grants (reward_id, shopper_id);

-- Paying with points at the till: the spend is a ledger entry; a void gives them back.
CREATE TABLE point_payments (
    id               bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__point_payments PRIMARY KEY,
    merchant_id      bigint NOT NULL,
    shopper_id       bigint NOT NULL,
    store_id         bigint NOT NULL,
    points           bigint NOT NULL CONSTRAINT ck__point_payments__points CHECK (points > 0),
    -- What the till asked the points to pay, and what they covered (at most that).
    requested        numeric(14, 2) NOT NULL,
    amount           numeric(14, 2) NOT NULL,
    order_ref        text,
    key_id           bigint NOT NULL,
    idempotency_key  text NOT NULL,
    request_hash     bytea NOT NULL,
    created_at       timestamptz NOT NULL,
    voided_at        timestamptz,
    voided_by        bigint,
    void_reason      text,
    CONSTRAINT uq__point_payments__merchant_id_idempotency_key
        UNIQUE (merchant_id, idempotency_key),
    -- No foreign key to stores, as for redemptions: a store closed and deleted keeps its
    -- till's history.
    CONSTRAINT fk__point_payments__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__point_payments__shopper_id ON point_payments (shopper_id, created_at);

-- The points report sums the ledger by month.
CREATE INDEX ix__points_ledger__merchant_id_created_at ON points_ledger (merchant_id, created_at);

-- The till finds a shopper by the barcode on the card: the Apple pass's serial, or the
-- member code on the Google card (the first 16 hex digits of the object id's suffix).
CREATE INDEX ix__google_wallet_objects__member_code ON google_wallet_objects
    (merchant_id, upper(left(split_part(object_id, '.loyalty-', 2), 16))) WHERE kind = 'loyalty';
