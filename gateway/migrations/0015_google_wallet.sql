-- Google Wallet beside Apple Wallet: each merchant's issuer and service account, one row
-- per Google object we issue (the loyalty card and each coupon), the notifications sent
-- against Google's 3-per-pass-per-24-h quota, and a target on the one pass-update queue.

CREATE TABLE google_wallet_configs (
    merchant_id      bigint CONSTRAINT pk__google_wallet_configs PRIMARY KEY
                     CONSTRAINT fk__google_wallet_configs__merchant_id REFERENCES merchants (id)
                     ON DELETE CASCADE,
    issuer_id        text NOT NULL CONSTRAINT ck__google_wallet_configs__issuer_id
                     CHECK (issuer_id ~ '^[0-9]{1,30}$'),
    -- The service-account JSON as Google issues it (private key included): a secret,
    -- like wallet_configs.key_pem; never logged, never answered.
    service_account  text NOT NULL,
    client_email     text NOT NULL,
    program_name     text NOT NULL,
    issuer_name      text NOT NULL,
    logo_url         text NOT NULL,
    background_color text,
    -- Written by `gateway wallet google-dev-account`: not valid at Google.
    dev              boolean NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE google_wallet_objects (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__google_wallet_objects
                 PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    kind         text NOT NULL CONSTRAINT ck__google_wallet_objects__kind
                 CHECK (kind IN ('loyalty', 'offer')),
    coupon_id    bigint CONSTRAINT fk__google_wallet_objects__coupon_id REFERENCES coupons (id)
                 ON DELETE CASCADE,
    -- <issuerId>.<suffix>, as Google names objects.
    object_id    text NOT NULL CONSTRAINT uq__google_wallet_objects__object_id UNIQUE,
    class_id     text NOT NULL,
    -- What Google was last told: ACTIVE, COMPLETED (redeemed) or EXPIRED; NULL until then.
    state        text,
    -- A digest of the body Google last accepted: an unchanged object is not sent again.
    synced_hash  text,
    -- The shopper deleted the pass from Google Wallet (set by the callback): no updates.
    deleted_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT fk__google_wallet_objects__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT ck__google_wallet_objects__coupon CHECK ((kind = 'offer') = (coupon_id IS NOT NULL))
);
CREATE UNIQUE INDEX uq__google_wallet_objects__loyalty ON google_wallet_objects (shopper_id)
    WHERE kind = 'loyalty';
CREATE UNIQUE INDEX uq__google_wallet_objects__coupon_id ON google_wallet_objects (coupon_id)
    WHERE kind = 'offer';

-- Every update of a Google object that could notify: whether it did, or went silent and why.
CREATE TABLE google_wallet_notifications (
    id         bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__google_wallet_notifications
               PRIMARY KEY,
    object_id  bigint NOT NULL CONSTRAINT fk__google_wallet_notifications__object_id
               REFERENCES google_wallet_objects (id) ON DELETE CASCADE,
    notified   boolean NOT NULL,
    -- NULL when notified; 'quota' (our count) or 'google_quota' (Google said so) when silent.
    silent_reason text,
    reason     text NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX ix__google_wallet_notifications__object_at ON google_wallet_notifications
    (object_id, at) WHERE notified;

-- One queue for both wallets: a row is for Apple (APNs) or Google (the REST API). A
-- Google row that keeps failing is dead-lettered with its reason.
ALTER TABLE pass_updates
    ADD COLUMN target text NOT NULL DEFAULT 'apple'
        CONSTRAINT ck__pass_updates__target CHECK (target IN ('apple', 'google')),
    ADD COLUMN dead_at timestamptz;
CREATE INDEX ix__pass_updates__google_pending ON pass_updates (id)
    WHERE done_at IS NULL AND target = 'google';
