-- Places and pings: store locations and hours, geofences, each shopper's open
-- visits, the transition log and the raw ping log.

ALTER TABLE stores
    ADD COLUMN lat double precision NOT NULL DEFAULT 0
        CONSTRAINT ck__stores__lat CHECK (lat BETWEEN -90 AND 90),
    ADD COLUMN lon double precision NOT NULL DEFAULT 0
        CONSTRAINT ck__stores__lon CHECK (lon BETWEEN -180 AND 180),
    ADD COLUMN timezone text NOT NULL DEFAULT 'UTC',
    ADD COLUMN opening_hours jsonb,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
-- The defaults only served rows that existed before stores had a place.
ALTER TABLE stores ALTER COLUMN lat DROP DEFAULT, ALTER COLUMN lon DROP DEFAULT,
    ALTER COLUMN timezone DROP DEFAULT;

CREATE TABLE geofences (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__geofences PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    store_id     bigint NOT NULL,
    name         text NOT NULL CONSTRAINT ck__geofences__name CHECK (length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL CONSTRAINT ck__geofences__kind CHECK (kind IN ('circle', 'polygon')),
    -- The GeoJSON geometry as accepted (for export), and its WKB (for fast index builds).
    geometry     jsonb NOT NULL,
    wkb          bytea NOT NULL,
    radius_m     double precision CONSTRAINT ck__geofences__radius_m
                 CHECK (radius_m IS NULL OR radius_m BETWEEN 10 AND 10000),
    properties   jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__geofences__merchant_id_id UNIQUE (merchant_id, id),
    CONSTRAINT fk__geofences__store FOREIGN KEY (merchant_id, store_id)
        REFERENCES stores (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT ck__geofences__circle_radius CHECK ((kind = 'circle') = (radius_m IS NOT NULL))
);
CREATE INDEX ix__geofences__store_id ON geofences (store_id);

-- Every change to the geofences bumps this counter and notifies listeners, so
-- each replica knows whether its in-memory index is current.
CREATE SEQUENCE geofence_changes_seq;

CREATE FUNCTION geofences_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('geofences_changed', nextval('geofence_changes_seq')::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER geofences_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON geofences
    FOR EACH STATEMENT EXECUTE FUNCTION geofences_changed();

-- One row per shopper: open visits (only what enter/dwell/exit needs) and the
-- last accepted position (the baseline of the impossible-travel check, kept
-- fresh by the batched ping log writer, not by the request path).
CREATE TABLE shopper_geo (
    shopper_id       bigint NOT NULL CONSTRAINT pk__shopper_geo PRIMARY KEY,
    merchant_id      bigint NOT NULL,
    visits           jsonb NOT NULL DEFAULT '[]',
    -- Bumped on every write of visits: the compare-and-set of the ping path.
    version          bigint NOT NULL DEFAULT 0,
    last_lat         double precision,
    last_lon         double precision,
    last_ts          timestamptz,
    last_accuracy_m  real,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT fk__shopper_geo__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);

-- Enter, dwell and exit events, written in the transaction that changes the visits.
CREATE TABLE geofence_events (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__geofence_events PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    geofence_id  bigint NOT NULL,
    event        text NOT NULL CONSTRAINT ck__geofence_events__event
                 CHECK (event IN ('enter', 'dwell', 'exit')),
    at           timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix__geofence_events__geofence_id_at ON geofence_events (geofence_id, at);
CREATE INDEX ix__geofence_events__shopper_id_at ON geofence_events (shopper_id, at);

-- Raw pings, written in batches off the request path and purged after the
-- retention period. No foreign keys: the batch writer must not stall on them,
-- and erasing a shopper deletes their pings explicitly.
CREATE TABLE pings (
    id                 bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__pings PRIMARY KEY,
    merchant_id        bigint NOT NULL,
    shopper_id         bigint NOT NULL,
    ts                 timestamptz NOT NULL,
    received_at        timestamptz NOT NULL,
    lat                double precision NOT NULL,
    lon                double precision NOT NULL,
    accuracy_m         real NOT NULL,
    speed_mps          real,
    weather_condition  text,
    temp_c             real,
    verdict            text NOT NULL,
    transitions        smallint NOT NULL DEFAULT 0
);
CREATE INDEX ix__pings__received_at ON pings (received_at);
CREATE INDEX ix__pings__shopper_id_ts ON pings (shopper_id, ts);
