-- Foundation: merchants (tenants), their stores, shoppers and API keys.
-- Tenancy is enforced by the schema as well as by the code: composite foreign
-- keys make it impossible to scope a key to another merchant's store or to
-- bind a shopper token to another merchant's shopper.

CREATE TABLE merchants (
    id          bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__merchants PRIMARY KEY,
    name        text NOT NULL CONSTRAINT ck__merchants__name CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Stores get their location, time zone and hours in the places migration; keys
-- need to be scoped to them from the start.
CREATE TABLE stores (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__stores PRIMARY KEY,
    merchant_id  bigint NOT NULL
                 CONSTRAINT fk__stores__merchant_id REFERENCES merchants (id) ON DELETE CASCADE,
    name         text NOT NULL CONSTRAINT ck__stores__name CHECK (length(name) BETWEEN 1 AND 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__stores__merchant_id_id UNIQUE (merchant_id, id)
);

CREATE TABLE shoppers (
    id                 bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__shoppers PRIMARY KEY,
    merchant_id        bigint NOT NULL
                       CONSTRAINT fk__shoppers__merchant_id REFERENCES merchants (id) ON DELETE CASCADE,
    name               text,
    email              text,
    marketing_consent  boolean NOT NULL,
    consent_at         timestamptz NOT NULL DEFAULT now(),
    timezone           text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__shoppers__merchant_id_id UNIQUE (merchant_id, id)
);
-- One enrolment per e-mail address within a program; case does not make a new person.
CREATE UNIQUE INDEX uq__shoppers__merchant_id_email ON shoppers (merchant_id, lower(email))
    WHERE email IS NOT NULL;

CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__api_keys PRIMARY KEY,
    -- The lookup half of a token; the secret half is only ever stored hashed.
    public_id     text NOT NULL CONSTRAINT uq__api_keys__public_id UNIQUE,
    secret_hash   bytea NOT NULL CONSTRAINT ck__api_keys__secret_hash CHECK (length(secret_hash) = 32),
    merchant_id   bigint NOT NULL
                  CONSTRAINT fk__api_keys__merchant_id REFERENCES merchants (id) ON DELETE CASCADE,
    role          text NOT NULL CONSTRAINT ck__api_keys__role
                  CHECK (role IN ('admin', 'manager', 'reviewer', 'pos', 'app', 'shopper')),
    -- A store-scoped key whose stores were all deleted must reach nothing,
    -- not everything, so the scope flag is kept apart from the store list.
    store_scoped  boolean NOT NULL DEFAULT false,
    shopper_id    bigint,
    label         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    CONSTRAINT uq__api_keys__id_merchant_id UNIQUE (id, merchant_id),
    CONSTRAINT fk__api_keys__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT ck__api_keys__shopper_role CHECK ((role = 'shopper') = (shopper_id IS NOT NULL)),
    CONSTRAINT ck__api_keys__shopper_unscoped CHECK (NOT (role = 'shopper' AND store_scoped))
);
CREATE INDEX ix__api_keys__merchant_id ON api_keys (merchant_id);
CREATE INDEX ix__api_keys__shopper_id ON api_keys (shopper_id) WHERE shopper_id IS NOT NULL;

CREATE TABLE api_key_stores (
    key_id       bigint NOT NULL,
    merchant_id  bigint NOT NULL,
    store_id     bigint NOT NULL,
    CONSTRAINT pk__api_key_stores PRIMARY KEY (key_id, store_id),
    CONSTRAINT fk__api_key_stores__key FOREIGN KEY (key_id, merchant_id)
        REFERENCES api_keys (id, merchant_id) ON DELETE CASCADE,
    CONSTRAINT fk__api_key_stores__store FOREIGN KEY (merchant_id, store_id)
        REFERENCES stores (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__api_key_stores__store_id ON api_key_stores (store_id);
