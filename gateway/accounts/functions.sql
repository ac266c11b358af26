-- Accounts' triggers: every process hears at once that an API key stopped being valid.
-- The current definitions, which `gateway migrate` re-applies after the numbered
-- migrations every time (see gateway/migrate.py): edit them here, CREATE OR REPLACE only.

-- Revoked, or deleted with its shopper or merchant: the token caches keep verified keys
-- for minutes, so they must not honour a dead one for that long.
CREATE OR REPLACE FUNCTION api_keys_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('api_keys_invalidated', OLD.public_id);
    ELSIF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
        PERFORM pg_notify('api_keys_invalidated', NEW.public_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER api_keys_invalidated AFTER UPDATE OF revoked_at OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_invalidated();

-- Store scopes shrink when a store is deleted: the key's principal changes too.
CREATE OR REPLACE FUNCTION api_key_stores_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_keys_invalidated', k.public_id)
    FROM api_keys k WHERE k.id = OLD.key_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER api_key_stores_changed AFTER DELETE ON api_key_stores
    FOR EACH ROW EXECUTE FUNCTION api_key_stores_changed();

-- A merchant's allowed web origins changed (or the merchant went): every process reloads
-- its copy of the lists (gateway/accounts/origins.py).
CREATE OR REPLACE FUNCTION merchant_origins_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('merchant_origins_changed', '');
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER merchant_origins_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON merchant_origins
    FOR EACH STATEMENT EXECUTE FUNCTION merchant_origins_changed();
