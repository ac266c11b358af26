-- How far into each process's local ping spool file the database has the records
-- (gateway/spool.py). Written in the same statement as each ping log batch, so a
-- spool left by a crashed process is replayed from exactly where it stopped.

CREATE TABLE ping_spools (
    id            text CONSTRAINT pk__ping_spools PRIMARY KEY,
    flushed_bytes bigint NOT NULL CONSTRAINT ck__ping_spools__flushed_bytes
                      CHECK (flushed_bytes >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
