-- Loyalty accounts: the program's earning rules and tiers, an append-only points
-- ledger, purchases recorded at the till, and the log of tier changes.

ALTER TABLE merchants
    -- What one point is worth in the program's currency.
    ADD COLUMN point_value numeric(12, 4) NOT NULL DEFAULT 0.01
        CONSTRAINT ck__merchants__point_value CHECK (point_value > 0),
    -- Points per unit of currency spent.
    ADD COLUMN earn_rate numeric(12, 4) NOT NULL DEFAULT 1
        CONSTRAINT ck__merchants__earn_rate CHECK (earn_rate >= 0),
    -- [{"name", "threshold"}], thresholds on points earned within tier_window_days.
    ADD COLUMN tiers jsonb NOT NULL DEFAULT
        '[{"name": "Bronze", "threshold": 0}, {"name": "Silver", "threshold": 500},
          {"name": "Gold", "threshold": 2000}, {"name": "Platinum", "threshold": 5000}]',
    ADD COLUMN tier_window_days integer NOT NULL DEFAULT 365
        CONSTRAINT ck__merchants__tier_window_days CHECK (tier_window_days BETWEEN 1 AND 3660),
    -- {"signup": {"points": 100, "limit": 1, "days": 3660}, ...}
    ADD COLUMN actions jsonb NOT NULL DEFAULT
        '{"signup": {"points": 100, "limit": 1, "days": 3660},
          "referral": {"points": 200, "limit": 10, "days": 365},
          "survey": {"points": 50, "limit": 4, "days": 30},
          "review": {"points": 50, "limit": 4, "days": 30}}';

-- The ledger is the truth; shoppers.points is its running sum, updated in the
-- same transaction as each entry while the shopper's row is locked, so
-- concurrent earns queue and the balance never drifts from the ledger.
CREATE TABLE points_ledger (
    id               bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__points_ledger PRIMARY KEY,
    merchant_id      bigint NOT NULL,
    shopper_id       bigint NOT NULL,
    kind             text NOT NULL CONSTRAINT ck__points_ledger__kind
                     CHECK (kind IN ('earn', 'spend', 'adjust', 'expire')),
    points           bigint NOT NULL,
    reason           text NOT NULL,
    purchase_id      bigint,
    key_id           bigint,
    created_at       timestamptz NOT NULL,
    CONSTRAINT ck__points_ledger__sign CHECK (
        (kind = 'earn' AND points > 0) OR (kind IN ('spend', 'expire') AND points < 0)
        OR (kind = 'adjust' AND points <> 0)),
    CONSTRAINT fk__points_ledger__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__points_ledger__shopper_id_created_at ON points_ledger (shopper_id, created_at);

CREATE TABLE purchases (
    id               bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__purchases PRIMARY KEY,
    merchant_id      bigint NOT NULL,
    shopper_id       bigint NOT NULL,
    store_id         bigint NOT NULL,
    amount           numeric(14, 2) NOT NULL CONSTRAINT ck__purchases__amount CHECK (amount >= 0),
    order_ref        text,
    points           bigint NOT NULL,
    key_id           bigint NOT NULL,
    idempotency_key  text NOT NULL,
    request_hash     bytea NOT NULL,
    created_at       timestamptz NOT NULL,
    CONSTRAINT uq__purchases__merchant_id_idempotency_key UNIQUE (merchant_id, idempotency_key),
    CONSTRAINT fk__purchases__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT fk__purchases__store FOREIGN KEY (merchant_id, store_id)
        REFERENCES stores (merchant_id, id)
);
CREATE INDEX ix__purchases__shopper_id ON purchases (shopper_id, created_at);

CREATE TABLE tier_changes (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__tier_changes PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    from_tier    text,
    to_tier      text,
    at           timestamptz NOT NULL
);
CREATE INDEX ix__tier_changes__shopper_id ON tier_changes (shopper_id, at);
