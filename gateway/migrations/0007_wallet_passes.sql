-- Apple Wallet: each merchant's pass signing configuration, and the passes
-- issued (serial number and authentication token never change across updates).

CREATE TABLE wallet_configs (
    merchant_id    bigint CONSTRAINT pk__wallet_configs PRIMARY KEY
                   CONSTRAINT fk__wallet_configs__merchant_id REFERENCES merchants (id)
                   ON DELETE CASCADE,
    pass_type_id   text NOT NULL,
    team_id        text NOT NULL,
    organization   text NOT NULL,
    cert_pem       text NOT NULL,
    key_pem        text NOT NULL,
    wwdr_pem       text NOT NULL,
    -- Generated on first use, labelled not valid on Apple devices.
    dev            boolean NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE passes (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__passes PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    kind         text NOT NULL CONSTRAINT ck__passes__kind CHECK (kind IN ('loyalty', 'coupon')),
    coupon_id    bigint,
    serial       text NOT NULL CONSTRAINT uq__passes__serial UNIQUE,
    auth_token   text NOT NULL CONSTRAINT ck__passes__auth_token CHECK (length(auth_token) >= 16),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT fk__passes__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT ck__passes__coupon CHECK ((kind = 'coupon') = (coupon_id IS NOT NULL))
);
CREATE UNIQUE INDEX uq__passes__loyalty ON passes (shopper_id) WHERE kind = 'loyalty';
CREATE UNIQUE INDEX uq__passes__coupon_id ON passes (coupon_id) WHERE kind = 'coupon';
