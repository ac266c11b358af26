-- The web origins a merchant's pages call the API from (CORS). Every process keeps the
-- whole list in memory, so a preflight never waits on the database, and reloads it when
-- this table announces a change.

CREATE TABLE merchant_origins (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__merchant_origins PRIMARY KEY,
    merchant_id  bigint NOT NULL CONSTRAINT fk__merchant_origins__merchant_id
                 REFERENCES merchants (id) ON DELETE CASCADE,
    -- Serialised as browsers send it: scheme://host[:port], lower case, no default port.
    origin       text NOT NULL CONSTRAINT ck__merchant_origins__origin
                 CHECK (origin ~ '^https?://[^/?#@\s]+$' AND length(origin) <= 300),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__merchant_origins__merchant_id_origin UNIQUE (merchant_id, origin)
);

CREATE FUNCTION merchant_origins_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('merchant_origins_changed', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER merchant_origins_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON merchant_origins
    FOR EACH STATEMENT EXECUTE FUNCTION merchant_origins_changed();
