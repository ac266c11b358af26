-- Idempotent resends: each ping that carried a client id, with the answer its first
-- attempt got. Written before that answer, in the transaction that wrote the ping's
-- effects (visits, decisions, coupons), so a resend finds it on any replica, even after
-- the first one died (`kill -9`) before its ping log batch reached the database.
-- Purged with the raw pings (GATEWAY_PING_RETENTION_DAYS).
CREATE TABLE ping_receipts (
    shopper_id   bigint NOT NULL,
    client_id    uuid NOT NULL,
    merchant_id  bigint NOT NULL,
    received_at  timestamptz NOT NULL,
    -- The ping's answer as the API gives it: status, reason, transitions, offers.
    answer       jsonb NOT NULL,
    CONSTRAINT pk__ping_receipts PRIMARY KEY (shopper_id, client_id),
    CONSTRAINT fk__ping_receipts__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__ping_receipts__received_at ON ping_receipts (received_at);
