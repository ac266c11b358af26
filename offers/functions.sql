-- Offers' functions and triggers: cache invalidation, the funnel's stats deltas,
-- conversions, and redeeming and voiding at the till.
-- The current definitions, which `gateway migrate` re-applies after the numbered
-- migrations every time (see gateway/migrate.py): edit them here, CREATE OR REPLACE only.

-- Each process caches the offers of the merchants it serves; a change (or a
-- store's time zone or opening hours changing) tells them to reload.
CREATE OR REPLACE FUNCTION offers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('offers_changed', OLD.merchant_id::text);
    ELSE
        PERFORM pg_notify('offers_changed', NEW.merchant_id::text);
    END IF;
    RETURN NULL;
END
$$;
-- Counter bumps are not rule changes: a stale counter only costs a failed reservation.
CREATE OR REPLACE TRIGGER offers_changed AFTER INSERT OR DELETE OR UPDATE OF
    name, title, body, image_url, channels, trigger, status, geofence_ids, store_ids,
    scope_store_ids, starts_at, ends_at, schedule, weather, audience, caps, budget_issued,
    budget_redeemed, priority, holdout_pct, coupon, fire_when_closed, deleted_at
    ON offers FOR EACH ROW EXECUTE FUNCTION offers_changed();
-- The book holds each store's time zone and opening hours (offers are not sent
-- while a store is closed).
CREATE OR REPLACE TRIGGER stores_changed_offers
    AFTER UPDATE OF timezone, opening_hours OR DELETE ON stores
    FOR EACH ROW EXECUTE FUNCTION offers_changed();
CREATE OR REPLACE FUNCTION program_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('offers_changed', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER program_changed AFTER UPDATE OF daily_offer_cap, quiet_start, quiet_end
    ON merchants FOR EACH ROW EXECUTE FUNCTION program_changed();

-- Days are local to the store where it happened.
CREATE OR REPLACE FUNCTION store_day(store bigint, at timestamptz) RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT (at AT TIME ZONE coalesce((SELECT timezone FROM stores WHERE id = store), 'UTC'))::date
$$;

CREATE OR REPLACE FUNCTION decisions_stats_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offer_stats_delta (offer_id, day, store_id, channel, metric, n)
    SELECT d.offer_id, store_day(d.store_id, d.decided_at), d.store_id,
           '', m.metric, count(*)
    FROM new_rows d
    CROSS JOIN LATERAL (VALUES ('eligible'),
                               (CASE WHEN d.outcome = 'sent' THEN 'sent'
                                     ELSE 'suppressed:' || d.reason END)) AS m(metric)
    GROUP BY 1, 2, 3, 4, 5;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER decisions_stats_insert AFTER INSERT ON decisions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION decisions_stats_insert();

-- Redemptions count on the day and at the store of the decision that sent the
-- coupon, so a report's rows line up from eligible to redeemed. Redemptions and
-- conversions write their deltas in redeem_coupon and record_conversion below
-- (one row each: cheaper than a transition table on the till's hot path);
-- voids, which are rare, go through this trigger.
CREATE OR REPLACE FUNCTION redemptions_stats_void() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offer_stats_delta (offer_id, day, store_id, channel, metric, n)
    SELECT d.offer_id, store_day(d.store_id, d.decided_at), d.store_id,
           '', 'redeemed', -count(*)
    FROM new_rows r JOIN old_rows o ON o.id = r.id
    JOIN coupons c ON c.id = r.coupon_id JOIN decisions d ON d.id = c.decision_id
    WHERE o.voided_at IS NULL AND r.voided_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER redemptions_stats_void AFTER UPDATE ON redemptions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION redemptions_stats_void();

-- A shopper transacted at a store (a redemption, or a purchase the POS
-- recorded): every open decision of an offer at that store, sent or held out,
-- within its attribution window, has converted. Both groups are measured by the
-- same rule, which is what makes the holdout comparison fair.
CREATE OR REPLACE FUNCTION record_conversion(
    p_merchant bigint, p_shopper bigint, p_store bigint, p_source text, p_amount numeric,
    p_at timestamptz
) RETURNS void LANGUAGE sql VOLATILE AS $$
    INSERT INTO conversions (merchant_id, shopper_id, store_id, source, amount, at)
    VALUES (p_merchant, p_shopper, p_store, p_source, p_amount, p_at);
    WITH converted AS (
        UPDATE decisions d SET converted_at = p_at
        FROM offers o
        WHERE d.shopper_id = p_shopper AND (d.outcome = 'sent' OR d.reason = 'holdout')
          AND d.converted_at IS NULL AND d.decided_at <= p_at AND d.attributable_until > p_at
          AND o.id = d.offer_id AND p_store = ANY (o.scope_store_ids)
        RETURNING d.offer_id, d.store_id, d.decided_at, d.outcome
    )
    INSERT INTO offer_stats_delta (offer_id, day, store_id, channel, metric, n)
    SELECT offer_id, store_day(store_id, decided_at), store_id, '',
           CASE WHEN outcome = 'sent' THEN 'converted:sent' ELSE 'converted:holdout' END,
           count(*)
    FROM converted GROUP BY 1, 2, 3, 4, 5;
$$;

-- Redeeming a coupon in one round trip. The coupon row lock serializes attempts
-- on one coupon; each statement below reads a fresh snapshot (READ COMMITTED in
-- a volatile function), so after the lock it sees what an earlier attempt
-- committed. The partial unique index on live redemptions backs it up.
CREATE OR REPLACE FUNCTION redeem_coupon(
    p_merchant bigint, p_code text, p_store bigint, p_order_ref text, p_amount numeric,
    p_key_id bigint, p_idempotency_key text, p_request_hash bytea, p_now timestamptz
) RETURNS TABLE (outcome text, redemption_id bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c coupons%ROWTYPE;
    prior redemptions%ROWTYPE;
    budget integer;
    rid bigint;
BEGIN
    SELECT * INTO c FROM coupons WHERE merchant_id = p_merchant AND code = p_code FOR UPDATE;
    SELECT * INTO prior FROM redemptions
    WHERE merchant_id = p_merchant AND idempotency_key = p_idempotency_key;
    IF prior.id IS NOT NULL THEN
        IF prior.request_hash <> p_request_hash THEN
            RETURN QUERY SELECT 'idempotency_key_reused', NULL::bigint;
        ELSE
            RETURN QUERY SELECT 'replayed', prior.id;
        END IF;
        RETURN;
    END IF;
    IF c.id IS NULL THEN
        RETURN QUERY SELECT 'unknown_code', NULL::bigint;
        RETURN;
    END IF;
    IF NOT (p_store = ANY (c.store_ids)) THEN
        RETURN QUERY SELECT 'wrong_store', NULL::bigint;
        RETURN;
    END IF;
    IF p_now >= c.expires_at THEN
        RETURN QUERY SELECT 'coupon_expired', NULL::bigint;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM redemptions WHERE coupon_id = c.id AND voided_at IS NULL) THEN
        RETURN QUERY SELECT 'already_redeemed', NULL::bigint;
        RETURN;
    END IF;
    SELECT budget_redeemed INTO budget FROM offers WHERE id = c.offer_id;
    IF budget IS NOT NULL THEN
        UPDATE offers SET redeemed_count = redeemed_count + 1
        WHERE id = c.offer_id AND redeemed_count < budget_redeemed;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'budget_exhausted', NULL::bigint;
            RETURN;
        END IF;
    END IF;
    INSERT INTO redemptions (merchant_id, coupon_id, offer_id, shopper_id, store_id, order_ref,
                             amount, key_id, idempotency_key, request_hash, redeemed_at)
    VALUES (p_merchant, c.id, c.offer_id, c.shopper_id, p_store, p_order_ref, p_amount,
            p_key_id, p_idempotency_key, p_request_hash, p_now)
    RETURNING id INTO rid;
    INSERT INTO offer_stats_delta (offer_id, day, store_id, channel, metric, n)
    SELECT d.offer_id, store_day(d.store_id, d.decided_at), d.store_id, '', 'redeemed', 1
    FROM decisions d WHERE d.id = c.decision_id;
    PERFORM record_conversion(p_merchant, c.shopper_id, p_store, 'redemption', p_amount, p_now);
    RETURN QUERY SELECT 'redeemed', rid;
END
$$;

-- Voiding a redemption within p_window_minutes of it: the coupon becomes redeemable
-- again until it expires, and a redemption budget gets its unit back. The row lock
-- serializes voids of one redemption, so of two at once the second reads it voided.
-- A conversion the redemption attributed stays: the shopper did come to the till.
-- The outcome is 'unknown_redemption', 'already_voided', 'void_window_closed' or
-- 'voided', with the redemption as it stands after the call.
CREATE OR REPLACE FUNCTION void_redemption(
    p_merchant bigint, p_redemption bigint, p_key_id bigint, p_reason text,
    p_window_minutes integer, p_now timestamptz
) RETURNS TABLE (outcome text, redemption redemptions)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r redemptions%ROWTYPE;
BEGIN
    SELECT * INTO r FROM redemptions WHERE merchant_id = p_merchant AND id = p_redemption
    FOR UPDATE;
    IF r.id IS NULL THEN
        RETURN QUERY SELECT 'unknown_redemption', NULL::redemptions;
        RETURN;
    END IF;
    IF r.voided_at IS NOT NULL THEN
        RETURN QUERY SELECT 'already_voided', r;
        RETURN;
    END IF;
    IF p_now - r.redeemed_at > make_interval(mins => p_window_minutes) THEN
        RETURN QUERY SELECT 'void_window_closed', r;
        RETURN;
    END IF;
    UPDATE redemptions SET voided_at = p_now, voided_by = p_key_id, void_reason = p_reason
    WHERE id = r.id
    RETURNING * INTO r;
    UPDATE offers SET redeemed_count = redeemed_count - 1
    WHERE id = r.offer_id AND budget_redeemed IS NOT NULL AND redeemed_count > 0;
    RETURN QUERY SELECT 'voided', r;
END
$$;

-- Surveys: a visit's exit or a redemption at a store schedules the invitation of
-- every active survey asked there, due after the survey's delay. Statement triggers,
-- in the transaction that records the exit or the redemption, so every path that
-- records one (pings, batches, the till) schedules its surveys, and a crash keeps
-- both or neither. A shopper who answered the survey is not asked again; a waiting
-- invitation (the partial unique index) absorbs the next triggers.
CREATE OR REPLACE FUNCTION survey_invitations_on_exit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO survey_invitations (merchant_id, survey_id, shopper_id, store_id, geofence_id,
                                    source, triggered_at, due_at)
    SELECT DISTINCT ON (s.id, e.shopper_id) e.merchant_id, s.id, e.shopper_id, g.store_id,
           e.geofence_id, 'exit', e.at, e.at + make_interval(mins => s.delay_minutes)
    FROM new_rows e
    JOIN geofences g ON g.id = e.geofence_id
    JOIN surveys s ON s.merchant_id = e.merchant_id AND s.trigger = 'exit'
                  AND s.status = 'active' AND s.deleted_at IS NULL
                  AND (s.store_ids = '{}' OR g.store_id = ANY (s.store_ids))
    WHERE e.event = 'exit'
      AND NOT EXISTS (SELECT 1 FROM survey_responses r
                      WHERE r.survey_id = s.id AND r.shopper_id = e.shopper_id)
    ORDER BY s.id, e.shopper_id, e.at
    ON CONFLICT (survey_id, shopper_id) WHERE done_at IS NULL DO NOTHING;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER survey_invitations_on_exit AFTER INSERT ON geofence_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION survey_invitations_on_exit();

CREATE OR REPLACE FUNCTION survey_invitations_on_redemption() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO survey_invitations (merchant_id, survey_id, shopper_id, store_id, source,
                                    triggered_at, due_at)
    SELECT NEW.merchant_id, s.id, NEW.shopper_id, NEW.store_id, 'redemption', NEW.redeemed_at,
           NEW.redeemed_at + make_interval(mins => s.delay_minutes)
    FROM surveys s
    WHERE s.merchant_id = NEW.merchant_id AND s.trigger = 'redemption'
      AND s.status = 'active' AND s.deleted_at IS NULL
      AND (s.store_ids = '{}' OR NEW.store_id = ANY (s.store_ids))
      AND NOT EXISTS (SELECT 1 FROM survey_responses r
                      WHERE r.survey_id = s.id AND r.shopper_id = NEW.shopper_id)
    ON CONFLICT (survey_id, shopper_id) WHERE done_at IS NULL DO NOTHING;
    RETURN NULL;
END
$$;
-- A row trigger: one redemption per statement, and the till's path stays one
-- index probe when the merchant has no survey.
CREATE OR REPLACE TRIGGER survey_invitations_on_redemption AFTER INSERT ON redemptions
    FOR EACH ROW EXECUTE FUNCTION survey_invitations_on_redemption();

-- Lifecycle journeys' win-backs read shoppers' last activity (shopper_activity).
-- Activity comes from enrolments, geofence entries and till transactions. Each
-- statement writes one row per shopper, and only when it moves the time forward.
CREATE OR REPLACE FUNCTION shopper_activity_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'shoppers' THEN
        INSERT INTO shopper_activity (shopper_id, merchant_id, last_active_at)
        SELECT id, merchant_id, created_at FROM new_rows
        ON CONFLICT (shopper_id) DO NOTHING;
    ELSIF TG_TABLE_NAME = 'geofence_events' THEN
        INSERT INTO shopper_activity AS a (shopper_id, merchant_id, last_active_at)
        SELECT shopper_id, min(merchant_id), max(at) FROM new_rows WHERE event = 'enter'
        GROUP BY shopper_id
        ON CONFLICT (shopper_id) DO UPDATE SET last_active_at = excluded.last_active_at
        WHERE a.last_active_at < excluded.last_active_at;
    ELSE
        INSERT INTO shopper_activity AS a (shopper_id, merchant_id, last_active_at)
        SELECT shopper_id, min(merchant_id), max(at) FROM new_rows GROUP BY shopper_id
        ON CONFLICT (shopper_id) DO UPDATE SET last_active_at = excluded.last_active_at
        WHERE a.last_active_at < excluded.last_active_at;
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER shoppers_activity AFTER INSERT ON shoppers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION shopper_activity_touch();
CREATE OR REPLACE TRIGGER geofence_events_activity AFTER INSERT ON geofence_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION shopper_activity_touch();
CREATE OR REPLACE TRIGGER conversions_activity AFTER INSERT ON conversions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION shopper_activity_touch();
