-- Tell every gateway process at once when an API key stops being valid
-- (revoked, or deleted with its shopper or merchant), so the token caches can
-- keep verified keys for minutes without honouring a dead one for that long.

CREATE FUNCTION api_keys_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('api_keys_invalidated', OLD.public_id);
    ELSIF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
        PERFORM pg_notify('api_keys_invalidated', NEW.public_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_invalidated AFTER UPDATE OF revoked_at OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_invalidated();

-- Store scopes shrink when a store is deleted: the key's principal changes too.
CREATE FUNCTION api_key_stores_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_keys_invalidated', k.public_id)
    FROM api_keys k WHERE k.id = OLD.key_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_key_stores_changed AFTER DELETE ON api_key_stores
    FOR EACH ROW EXECUTE FUNCTION api_key_stores_changed();
