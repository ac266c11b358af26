-- Time partitions for the event tables that grow with pings (deploy/SCALING.md, "The
-- event tables and time partitioning"): the raw ping log by day of received_at, the
-- decision log by month of decided_at, geofence events by month of at. Days and months
-- are UTC.
--
-- A populated table is not copied. It is renamed to <table>_legacy and attached, as it
-- is, as the partition of everything before the first new period (from MINVALUE); an
-- empty one is dropped. Attaching scans it once and builds its new primary key, which
-- must now include the partition key: (id, <time column>). Each table also gets a
-- DEFAULT partition, so a row for a period with no partition yet is kept rather than
-- refused, and the partition job (gateway/jobs/partitions.py) moves it out into its own
-- partition. That job creates the partitions ahead of time; this migration creates the
-- first ones so that writes land in place from the start.
--
-- No foreign key points at these tables and they point at none, and ids keep counting
-- from where they were, so no other table and no query has to change. The new parents
-- copy the columns, defaults, NOT NULL and CHECK constraints of the tables as they are
-- now (LIKE), whichever migration added them.

-- The parent in place of ``tbl``, partitioned by ``col``, with the table's columns and
-- checks and the primary key (id, col); the old table is left as <tbl>_legacy, its indexes
-- renamed (…__<tbl>_legacy__…) so the parent's indexes can take their names.
CREATE FUNCTION pg_temp.partitioned_parent(tbl text, col text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    legacy text := tbl || '_legacy';
    old_seq text := pg_get_serial_sequence(tbl, 'id');
    last bigint;
    called boolean;
    ix record;
    tg record;
BEGIN
    EXECUTE format('SELECT last_value, is_called FROM %s', old_seq) INTO last, called;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, legacy);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', legacy, 'pk__' || tbl);
    FOR ix IN
        SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = legacy::regclass
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', ix.relname,
                       replace(ix.relname, '__' || tbl || '__', '__' || legacy || '__'));
    END LOOP;
    -- Triggers belong to the parent (the migration recreates them there); a partition
    -- keeping a transition-table trigger could not be attached.
    FOR tg IN SELECT tgname FROM pg_trigger WHERE tgrelid = legacy::regclass AND NOT tgisinternal
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %I', tg.tgname, legacy);
    END LOOP;
    EXECUTE format(
        'CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY '
        'INCLUDING STORAGE INCLUDING COMPRESSION) PARTITION BY RANGE (%I)', tbl, legacy, col);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id, %I)',
                   tbl, 'pk__' || tbl, col);
    -- Ids go on from where the old table's sequence stood; the old one goes with its
    -- identity (rows reach the partitions through the parent only).
    PERFORM setval(pg_get_serial_sequence(tbl, 'id'), last, called);
    EXECUTE format('ALTER TABLE %I ALTER COLUMN id DROP IDENTITY', legacy);
END
$$;

-- Attach <tbl>_legacy for everything before the first new period (or drop it when
-- empty), add the DEFAULT partition, and create the partitions of the periods from the
-- current one to ``ahead`` periods ahead. Partition names: <tbl>_p<YYYYMMDD> by day,
-- <tbl>_p<YYYYMM> by month, <tbl>_default.
CREATE FUNCTION pg_temp.partitions(tbl text, col text, unit text, ahead integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    legacy text := tbl || '_legacy';
    step interval := ('1 ' || unit)::interval;
    newest timestamptz;
    first timestamptz;
    p timestamptz;
BEGIN
    EXECUTE format('SELECT max(%I) FROM %I', col, legacy) INTO newest;
    IF newest IS NULL THEN
        EXECUTE format('DROP TABLE %I', legacy);
        first := date_trunc(unit, now(), 'UTC');
    ELSE
        first := date_trunc(unit, greatest(newest, now()), 'UTC') + step;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
                       tbl, legacy, first);
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', tbl || '_default', tbl);
    FOR i IN 0 .. ahead LOOP
        p := first + i * step;
        CONTINUE WHEN p > date_trunc(unit, now(), 'UTC') + ahead * step;
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       tbl || '_p' || to_char(p AT TIME ZONE 'UTC',
                                              CASE unit WHEN 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END),
                       tbl, p, p + step);
    END LOOP;
END
$$;

-- The raw ping log: by far the fastest-growing table, and the one retention empties, so
-- one partition a day (retention drops whole days).
SELECT pg_temp.partitioned_parent('pings', 'received_at');
CREATE INDEX ix__pings__received_at ON pings (received_at);
CREATE INDEX ix__pings__shopper_id_ts ON pings (shopper_id, ts);
SELECT pg_temp.partitions('pings', 'received_at', 'day', 7);

-- The decision log: kept (coupons, attribution and the decision log read it), one
-- partition a month.
SELECT pg_temp.partitioned_parent('decisions', 'decided_at');
CREATE INDEX ix__decisions__shopper_id_decided_at ON decisions (shopper_id, decided_at)
    WHERE outcome = 'sent' OR reason = 'holdout';
CREATE INDEX ix__decisions__offer_id_decided_at ON decisions (offer_id, decided_at);
CREATE INDEX ix__decisions__merchant_id_id ON decisions (merchant_id, id);
CREATE TRIGGER decisions_stats_insert AFTER INSERT ON decisions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION decisions_stats_insert();
SELECT pg_temp.partitions('decisions', 'decided_at', 'month', 2);

-- Enter, dwell and exit events: one partition a month, like the decisions they lead to.
SELECT pg_temp.partitioned_parent('geofence_events', 'at');
CREATE INDEX ix__geofence_events__geofence_id_at ON geofence_events (geofence_id, at);
CREATE INDEX ix__geofence_events__shopper_id_at ON geofence_events (shopper_id, at);
-- The triggers 0022 (survey invitations on exit) and 0023 (journeys' last activity) put
-- on the table, now on the partitioned parent (statement triggers with transition
-- tables see the rows of every partition).
CREATE TRIGGER survey_invitations_on_exit AFTER INSERT ON geofence_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION survey_invitations_on_exit();
CREATE TRIGGER geofence_events_activity AFTER INSERT ON geofence_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION shopper_activity_touch();
SELECT pg_temp.partitions('geofence_events', 'at', 'month', 2);
