-- Where shoppers keep their passes, for the funnel's "saved to wallet" stage: Google
-- Wallet's signed save and delete callbacks (each kept once, by its nonce) and Apple
-- Wallet's device registrations both set whether a pass is in a wallet.

-- Every callback believed, once: Google retries and may deliver twice, with one nonce.
CREATE TABLE google_wallet_events (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__google_wallet_events
                 PRIMARY KEY,
    merchant_id  bigint NOT NULL CONSTRAINT fk__google_wallet_events__merchant_id
                 REFERENCES merchants (id) ON DELETE CASCADE,
    nonce        text NOT NULL CONSTRAINT uq__google_wallet_events__nonce UNIQUE,
    event        text NOT NULL CONSTRAINT ck__google_wallet_events__event
                 CHECK (event IN ('save', 'del')),
    class_id     text NOT NULL,
    object_id    text NOT NULL,
    -- The message's expTimeMillis.
    expires_at   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL
);
CREATE INDEX ix__google_wallet_events__merchant_id ON google_wallet_events
    (merchant_id, received_at);

-- Whether each pass is in a wallet now. Apple: the pass's serial, in a wallet while a
-- device is registered for it. Google: the object id, after its last save or delete.
CREATE TABLE wallet_saves (
    wallet          text NOT NULL CONSTRAINT ck__wallet_saves__wallet
                    CHECK (wallet IN ('apple', 'google')),
    object_id       text NOT NULL,
    merchant_id     bigint NOT NULL CONSTRAINT fk__wallet_saves__merchant_id
                    REFERENCES merchants (id) ON DELETE CASCADE,
    -- The coupon of a coupon's pass; NULL for the loyalty card.
    coupon_id       bigint CONSTRAINT fk__wallet_saves__coupon_id REFERENCES coupons (id)
                    ON DELETE CASCADE,
    in_wallet       boolean NOT NULL,
    first_saved_at  timestamptz NOT NULL,
    changed_at      timestamptz NOT NULL,
    CONSTRAINT pk__wallet_saves PRIMARY KEY (wallet, object_id)
);
