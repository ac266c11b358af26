-- Offers: rules, program-wide fatigue rules, the decision log, coupons, the
-- delivery outbox, redemptions and conversions, and the rollups the funnel
-- report reads.

-- What audience rules look at. The wallet's points ledger keeps tier and
-- points current; tags (segments) are set by the program.
ALTER TABLE shoppers
    ADD COLUMN tier text,
    ADD COLUMN points bigint NOT NULL DEFAULT 0,
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}';

-- Program-wide rules that protect shoppers from fatigue.
ALTER TABLE merchants
    ADD COLUMN daily_offer_cap integer DEFAULT 3
        CONSTRAINT ck__merchants__daily_offer_cap CHECK (daily_offer_cap BETWEEN 1 AND 1000),
    -- Minutes after local midnight; equal values mean no quiet hours.
    ADD COLUMN quiet_start smallint NOT NULL DEFAULT 1260
        CONSTRAINT ck__merchants__quiet_start CHECK (quiet_start BETWEEN 0 AND 1439),
    ADD COLUMN quiet_end smallint NOT NULL DEFAULT 480
        CONSTRAINT ck__merchants__quiet_end CHECK (quiet_end BETWEEN 0 AND 1439);

CREATE TABLE offers (
    id               bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__offers PRIMARY KEY,
    merchant_id      bigint NOT NULL
                     CONSTRAINT fk__offers__merchant_id REFERENCES merchants (id) ON DELETE CASCADE,
    name             text NOT NULL,
    title            text NOT NULL,
    body             text NOT NULL,
    image_url        text,
    channels         text[] NOT NULL,
    trigger          text NOT NULL CONSTRAINT ck__offers__trigger CHECK (trigger IN ('enter', 'dwell')),
    status           text NOT NULL DEFAULT 'active'
                     CONSTRAINT ck__offers__status CHECK (status IN ('active', 'paused')),
    geofence_ids     bigint[] NOT NULL DEFAULT '{}',
    store_ids        bigint[] NOT NULL DEFAULT '{}',
    -- Every store the offer touches (its stores and its geofences' stores): where its
    -- coupons are valid, and what a store-scoped key must cover to see it.
    scope_store_ids  bigint[] NOT NULL,
    starts_at        timestamptz,
    ends_at          timestamptz,
    schedule         jsonb,
    weather          jsonb,
    audience         jsonb,
    caps             jsonb NOT NULL DEFAULT '[]',
    budget_issued    integer CONSTRAINT ck__offers__budget_issued CHECK (budget_issued > 0),
    budget_redeemed  integer CONSTRAINT ck__offers__budget_redeemed CHECK (budget_redeemed > 0),
    -- Kept only for offers with a budget (the counters are the budget's lock).
    issued_count     integer NOT NULL DEFAULT 0,
    redeemed_count   integer NOT NULL DEFAULT 0,
    priority         integer NOT NULL DEFAULT 0,
    holdout_pct      double precision NOT NULL DEFAULT 0
                     CONSTRAINT ck__offers__holdout_pct CHECK (holdout_pct BETWEEN 0 AND 100),
    coupon           jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Offers are archived, not deleted: coupons and reports refer to them.
    deleted_at       timestamptz,
    CONSTRAINT uq__offers__merchant_id_id UNIQUE (merchant_id, id),
    CONSTRAINT ck__offers__validity CHECK (starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at),
    CONSTRAINT ck__offers__budget_counts
        CHECK ((budget_issued IS NULL OR issued_count <= budget_issued)
               AND (budget_redeemed IS NULL OR redeemed_count <= budget_redeemed))
);
CREATE INDEX ix__offers__merchant_id ON offers (merchant_id) WHERE deleted_at IS NULL;

-- Each process caches the offers of the merchants it serves; a change (or a
-- store's time zone moving) tells them to reload.
CREATE FUNCTION offers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER offers_changed AFTER INSERT OR DELETE OR UPDATE OF
    name, title, body, image_url, channels, trigger, status, geofence_ids, store_ids,
    scope_store_ids, starts_at, ends_at, schedule, weather, audience, caps, budget_issued,
    budget_redeemed, priority, holdout_pct, coupon, deleted_at
    ON offers FOR EACH ROW EXECUTE FUNCTION offers_changed();
CREATE TRIGGER stores_changed_offers AFTER UPDATE OF timezone OR DELETE ON stores
    FOR EACH ROW EXECUTE FUNCTION offers_changed();
CREATE FUNCTION program_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('offers_changed', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER program_changed AFTER UPDATE OF daily_offer_cap, quiet_start, quiet_end
    ON merchants FOR EACH ROW EXECUTE FUNCTION program_changed();

-- Every decision on a candidate offer: sends and holdouts are written in the
-- transaction that reserves caps (they count against them); other suppressions
-- arrive in batches.
CREATE TABLE decisions (
    id            bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__decisions PRIMARY KEY,
    merchant_id   bigint NOT NULL,
    offer_id      bigint NOT NULL,
    shopper_id    bigint NOT NULL,
    store_id      bigint NOT NULL,
    geofence_id   bigint NOT NULL,
    trigger       text NOT NULL,
    outcome       text NOT NULL CONSTRAINT ck__decisions__outcome
                  CHECK (outcome IN ('sent', 'suppressed')),
    reason        text CONSTRAINT ck__decisions__reason CHECK (reason IN (
                      'no_consent', 'quiet_hours', 'outside_schedule', 'weather_mismatch',
                      'audience_mismatch', 'budget_exhausted', 'frequency_capped',
                      'fatigue_capped', 'holdout', 'lower_priority')),
    decided_at    timestamptz NOT NULL,
    -- The end of the attribution window: a transaction at one of the offer's
    -- stores before it converts this decision (sent or held out).
    attributable_until  timestamptz,
    converted_at  timestamptz,
    CONSTRAINT ck__decisions__reason_outcome CHECK ((outcome = 'sent') = (reason IS NULL))
);
-- Caps and attribution read a shopper's sends and holdouts.
CREATE INDEX ix__decisions__shopper_id_decided_at ON decisions (shopper_id, decided_at)
    WHERE outcome = 'sent' OR reason = 'holdout';
CREATE INDEX ix__decisions__offer_id_decided_at ON decisions (offer_id, decided_at);
CREATE INDEX ix__decisions__merchant_id_id ON decisions (merchant_id, id);

CREATE TABLE coupons (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__coupons PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    offer_id     bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    decision_id  bigint NOT NULL CONSTRAINT uq__coupons__decision_id UNIQUE,
    -- Canonical form (no separators); the check symbol is part of it.
    code         text NOT NULL,
    store_ids    bigint[] NOT NULL,
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    CONSTRAINT uq__coupons__merchant_id_code UNIQUE (merchant_id, code),
    CONSTRAINT fk__coupons__offer FOREIGN KEY (merchant_id, offer_id)
        REFERENCES offers (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT fk__coupons__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__coupons__shopper_id ON coupons (shopper_id, issued_at);

-- One row per sent offer: the delivery id the shopper's app dedupes on. The
-- outbox rows below carry it to each channel.
CREATE TABLE deliveries (
    id           uuid CONSTRAINT pk__deliveries PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    offer_id     bigint NOT NULL,
    coupon_id    bigint NOT NULL CONSTRAINT uq__deliveries__coupon_id UNIQUE
                 CONSTRAINT fk__deliveries__coupon_id REFERENCES coupons (id) ON DELETE CASCADE,
    decision_id  bigint NOT NULL,
    store_id     bigint NOT NULL,
    channels     text[] NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX ix__deliveries__shopper_id_created_at ON deliveries (shopper_id, created_at DESC);

-- The transactional outbox: written with the coupon, drained by delivery workers.
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__outbox PRIMARY KEY,
    delivery_id   uuid NOT NULL
                  CONSTRAINT fk__outbox__delivery_id REFERENCES deliveries (id) ON DELETE CASCADE,
    merchant_id   bigint NOT NULL,
    channel       text NOT NULL CONSTRAINT ck__outbox__channel
                  CHECK (channel IN ('inbox', 'webpush', 'wallet')),
    status        text NOT NULL DEFAULT 'pending' CONSTRAINT ck__outbox__status
                  CHECK (status IN ('pending', 'done', 'dead')),
    attempts      integer NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL,
    leased_until  timestamptz,
    expires_at    timestamptz NOT NULL,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__outbox__delivery_id_channel UNIQUE (delivery_id, channel)
);
CREATE INDEX ix__outbox__pending ON outbox (available_at) WHERE status = 'pending';

CREATE TABLE redemptions (
    id               bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__redemptions PRIMARY KEY,
    merchant_id      bigint NOT NULL,
    coupon_id        bigint NOT NULL CONSTRAINT fk__redemptions__coupon_id REFERENCES coupons (id)
                     ON DELETE CASCADE,
    offer_id         bigint NOT NULL,
    shopper_id       bigint NOT NULL,
    store_id         bigint NOT NULL,
    order_ref        text,
    amount           numeric(14, 2),
    key_id           bigint NOT NULL,
    idempotency_key  text NOT NULL,
    -- What the request asked for, so a reused key with another request is caught.
    request_hash     bytea NOT NULL,
    redeemed_at      timestamptz NOT NULL,
    voided_at        timestamptz,
    voided_by        bigint,
    void_reason      text,
    CONSTRAINT uq__redemptions__merchant_id_idempotency_key UNIQUE (merchant_id, idempotency_key)
);
-- Single use: at most one redemption of a coupon that has not been voided.
CREATE UNIQUE INDEX uq__redemptions__coupon_id_live ON redemptions (coupon_id)
    WHERE voided_at IS NULL;
CREATE INDEX ix__redemptions__merchant_id_redeemed_at ON redemptions (merchant_id, redeemed_at, id);
CREATE INDEX ix__redemptions__offer_id_redeemed_at ON redemptions (offer_id, redeemed_at, id);

-- Shopper transactions at the till that convert decisions (a redemption, or a
-- purchase recorded by the POS): the outcome the holdout comparison uses.
CREATE TABLE conversions (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__conversions PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    store_id     bigint NOT NULL,
    source       text NOT NULL CONSTRAINT ck__conversions__source
                 CHECK (source IN ('redemption', 'purchase')),
    amount       numeric(14, 2),
    at           timestamptz NOT NULL
);
CREATE INDEX ix__conversions__shopper_id_at ON conversions (shopper_id, at);

-- Funnel rollups, by offer, store-local day, store and channel ('' for what
-- happens before a channel is involved: decisions, redemptions). Delivery
-- outcomes (delivered, opened, dismissed, failed) arrive with the delivery
-- workers: one row per channel for the by-channel view, plus one channel-less
-- row the first time a delivery reaches that stage, which the totals count. Event tables
-- feed offer_stats_delta through statement triggers (plain inserts: no row is
-- contended, so redemptions and sends never queue behind each other on a
-- counter). A periodic compaction folds the
-- deltas into offer_stats; reports read both.
CREATE TABLE offer_stats (
    offer_id  bigint NOT NULL,
    day       date NOT NULL,
    store_id  bigint NOT NULL,
    channel   text NOT NULL,
    metric    text NOT NULL,
    n         bigint NOT NULL,
    CONSTRAINT pk__offer_stats PRIMARY KEY (offer_id, day, store_id, channel, metric)
);
CREATE TABLE offer_stats_delta (
    offer_id  bigint NOT NULL,
    day       date NOT NULL,
    store_id  bigint NOT NULL,
    channel   text NOT NULL,
    metric    text NOT NULL,
    n         bigint NOT NULL
);
CREATE INDEX ix__offer_stats_delta__offer_id ON offer_stats_delta (offer_id);

-- Days are local to the store where it happened.
CREATE FUNCTION store_day(store bigint, at timestamptz) RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT (at AT TIME ZONE coalesce((SELECT timezone FROM stores WHERE id = store), 'UTC'))::date
$$;

CREATE FUNCTION decisions_stats_insert() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER decisions_stats_insert AFTER INSERT ON decisions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION decisions_stats_insert();

-- Redemptions count on the day and at the store of the decision that sent the
-- coupon, so a report's rows line up from eligible to redeemed. Redemptions and
-- conversions write their deltas in redeem_coupon and record_conversion below
-- (one row each: cheaper than a transition table on the till's hot path);
-- voids, which are rare, go through this trigger.
CREATE FUNCTION redemptions_stats_void() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER redemptions_stats_void AFTER UPDATE ON redemptions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION redemptions_stats_void();

-- A shopper transacted at a store (a redemption, or a purchase the POS
-- recorded): every open decision of an offer at that store, sent or held out,
-- within its attribution window, has converted. Both groups are measured by the
-- same rule, which is what makes the holdout comparison fair.
CREATE FUNCTION record_conversion(
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
CREATE FUNCTION redeem_coupon(
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
