-- The PassKit web service: which devices hold which passes, for update pushes.

CREATE TABLE device_registrations (
    device_library_id  text NOT NULL,
    pass_id            bigint NOT NULL
                       CONSTRAINT fk__device_registrations__pass_id REFERENCES passes (id)
                       ON DELETE CASCADE,
    push_token         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk__device_registrations PRIMARY KEY (device_library_id, pass_id)
);
CREATE INDEX ix__device_registrations__pass_id ON device_registrations (pass_id);
