-- Pass updates at fleet scale (issue 23).
--
-- A pass update retried after 429, 5xx or no answer goes again only to the devices that
-- did not take it (retry_tokens; NULL: every registered device), so a device that got
-- its push is not pushed twice. The fan-out claims a batch's registrations by shopper
-- and drops gone devices by push token, so both are indexed.
--
-- pass_cache keeps the last signed build of each pass with the digest of everything it
-- was built from (version): a device fetching a pass after a push gets the stored bytes
-- while the digest still matches, so a fan-out signs each changed pass once, whatever
-- the replica, process or device that asks.

ALTER TABLE pass_updates ADD COLUMN retry_tokens text[];

CREATE INDEX ix__passes__shopper_id ON passes (shopper_id);
CREATE INDEX ix__device_registrations__push_token ON device_registrations (push_token);

CREATE TABLE pass_cache (
    pass_id   bigint CONSTRAINT pk__pass_cache PRIMARY KEY
              CONSTRAINT fk__pass_cache__pass_id REFERENCES passes (id) ON DELETE CASCADE,
    version   bytea NOT NULL,
    body      bytea NOT NULL,
    built_at  timestamptz NOT NULL DEFAULT now()
);
