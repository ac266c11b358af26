-- Delivery: Web Push subscriptions and the VAPID key, per-delivery tracking
-- (delivered, opened, dismissed, failed) feeding the funnel, and the wallet's
-- queue of passes to refresh.

CREATE TABLE push_subscriptions (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__push_subscriptions PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    endpoint     text NOT NULL,
    p256dh       text NOT NULL,
    auth         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__push_subscriptions__shopper_id_endpoint UNIQUE (shopper_id, endpoint),
    CONSTRAINT fk__push_subscriptions__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);

-- One key pair for the whole deployment, made by the first process that needs
-- it, so every replica signs with the key the apps subscribed with.
CREATE TABLE vapid_keys (
    id           smallint CONSTRAINT pk__vapid_keys PRIMARY KEY CONSTRAINT ck__vapid_keys__one CHECK (id = 1),
    private_pem  text NOT NULL,
    public_key   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Per-delivery firsts (the funnel totals) and the open/dismiss record.
ALTER TABLE deliveries
    ADD COLUMN delivered_at timestamptz,
    ADD COLUMN opened_at timestamptz,
    ADD COLUMN dismissed_at timestamptz;

-- What happened to each delivery on each channel. Unique per (delivery,
-- channel, kind): a repeated open or a redelivery counts once.
CREATE TABLE delivery_events (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__delivery_events PRIMARY KEY,
    delivery_id  uuid NOT NULL
                 CONSTRAINT fk__delivery_events__delivery_id REFERENCES deliveries (id) ON DELETE CASCADE,
    channel      text NOT NULL CONSTRAINT ck__delivery_events__channel
                 CHECK (channel IN ('inbox', 'webpush', 'wallet')),
    kind         text NOT NULL CONSTRAINT ck__delivery_events__kind
                 CHECK (kind IN ('delivered', 'opened', 'dismissed', 'failed')),
    detail       text,
    at           timestamptz NOT NULL,
    CONSTRAINT uq__delivery_events__delivery_id_channel_kind UNIQUE (delivery_id, channel, kind)
);

CREATE FUNCTION delivery_events_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offer_stats_delta (offer_id, day, store_id, channel, metric, n)
    SELECT dl.offer_id, store_day(d.store_id, d.decided_at), d.store_id, e.channel, e.kind,
           count(*)
    FROM new_rows e
    JOIN deliveries dl ON dl.id = e.delivery_id
    JOIN decisions d ON d.id = dl.decision_id
    GROUP BY 1, 2, 3, 4, 5;
    RETURN NULL;
END
$$;
CREATE TRIGGER delivery_events_stats AFTER INSERT ON delivery_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION delivery_events_stats();

-- The first delivered/opened/dismissed of a delivery on any channel: one
-- channel-less funnel row each, which the report's totals count.
CREATE FUNCTION deliveries_firsts_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offer_stats_delta (offer_id, day, store_id, channel, metric, n)
    SELECT n.offer_id, store_day(d.store_id, d.decided_at), d.store_id, '', m.metric, count(*)
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id
    JOIN decisions d ON d.id = n.decision_id
    CROSS JOIN LATERAL (VALUES
        (CASE WHEN o.delivered_at IS NULL AND n.delivered_at IS NOT NULL THEN 'delivered' END),
        (CASE WHEN o.opened_at IS NULL AND n.opened_at IS NOT NULL THEN 'opened' END),
        (CASE WHEN o.dismissed_at IS NULL AND n.dismissed_at IS NOT NULL THEN 'dismissed' END)
    ) AS m(metric)
    WHERE m.metric IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_firsts_stats AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION deliveries_firsts_stats();

-- Web Push targets already served for a row being retried, so a retry after a
-- partial failure does not push twice to the subscriptions that got it.
ALTER TABLE outbox ADD COLUMN done_targets text[] NOT NULL DEFAULT '{}';
CREATE INDEX ix__outbox__dead ON outbox (merchant_id, id) WHERE status = 'dead';

-- Passes the wallet must refresh (a coupon issued or redeemed); the wallet's
-- pass-update pusher drains it.
CREATE TABLE pass_updates (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__pass_updates PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    reason       text NOT NULL,
    delivery_id  uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz
);
CREATE INDEX ix__pass_updates__pending ON pass_updates (created_at) WHERE done_at IS NULL;

CREATE FUNCTION redemptions_pass_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pass_updates (merchant_id, shopper_id, reason)
    VALUES (NEW.merchant_id, NEW.shopper_id,
            CASE WHEN TG_OP = 'INSERT' THEN 'coupon_redeemed' ELSE 'redemption_voided' END);
    RETURN NULL;
END
$$;
CREATE TRIGGER redemptions_pass_update AFTER INSERT OR UPDATE OF voided_at ON redemptions
    FOR EACH ROW EXECUTE FUNCTION redemptions_pass_update();
