-- Delivery's triggers: delivery outcomes feed the funnel, and a redemption or void
-- queues a pass update.
-- The current definitions, which `gateway migrate` re-applies after the numbered
-- migrations every time (see gateway/migrate.py): edit them here, CREATE OR REPLACE only.

-- Each delivery event counts on its channel's funnel row.
CREATE OR REPLACE FUNCTION delivery_events_stats() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE OR REPLACE TRIGGER delivery_events_stats AFTER INSERT ON delivery_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION delivery_events_stats();

-- The first delivered/opened/dismissed of a delivery on any channel: one
-- channel-less funnel row each, which the report's totals count.
CREATE OR REPLACE FUNCTION deliveries_firsts_stats() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE OR REPLACE TRIGGER deliveries_firsts_stats AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION deliveries_firsts_stats();

-- A redemption or its void changes the shopper's pass.
CREATE OR REPLACE FUNCTION redemptions_pass_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pass_updates (merchant_id, shopper_id, reason)
    VALUES (NEW.merchant_id, NEW.shopper_id,
            CASE WHEN TG_OP = 'INSERT' THEN 'coupon_redeemed' ELSE 'redemption_voided' END);
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER redemptions_pass_update AFTER INSERT OR UPDATE OF voided_at ON redemptions
    FOR EACH ROW EXECUTE FUNCTION redemptions_pass_update();

-- One queue feeds both wallets: every Apple pass update (points, tier, a coupon issued,
-- redeemed, voided or expired) also queues the same update for the shopper's Google
-- objects, in the same transaction, when the shopper holds a Google card or coupon that
-- was not deleted. The WHEN clause keeps the Google row from queueing itself again.
CREATE OR REPLACE FUNCTION pass_updates_google() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM google_wallet_objects g
               WHERE g.shopper_id = NEW.shopper_id AND g.deleted_at IS NULL) THEN
        INSERT INTO pass_updates (merchant_id, shopper_id, reason, delivery_id, target)
        VALUES (NEW.merchant_id, NEW.shopper_id, NEW.reason, NEW.delivery_id, 'google');
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER pass_updates_google AFTER INSERT ON pass_updates
    FOR EACH ROW WHEN (NEW.target = 'apple') EXECUTE FUNCTION pass_updates_google();
