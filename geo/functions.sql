-- geo's triggers: replicas learn that the geofences changed.
-- The current definitions, which `gateway migrate` re-applies after the numbered
-- migrations every time (see gateway/migrate.py): edit them here, CREATE OR REPLACE only.

-- Every change to the geofences bumps a counter and notifies listeners, so each
-- replica knows whether its in-memory index is current.
CREATE OR REPLACE FUNCTION geofences_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('geofences_changed', nextval('geofence_changes_seq')::text);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER geofences_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON geofences
    FOR EACH STATEMENT EXECUTE FUNCTION geofences_changed();
