-- Lifecycle journeys: rules that send an offer on time and behaviour rather than
-- on place (a welcome, a win-back, a tier-up thank-you, a birthday, points about
-- to expire). The offer a journey sends has trigger 'journey': it is never a
-- candidate on a ping, and one journey owns it, so the offer's funnel and uplift
-- are the journey's. The scheduler (gateway/jobs/journeys.py) finds due shoppers
-- through the indexes below and records one run per journey, shopper and
-- occurrence (a unique key), so nothing fires twice, whatever restarts happen.

ALTER TABLE offers DROP CONSTRAINT ck__offers__trigger;
ALTER TABLE offers ADD CONSTRAINT ck__offers__trigger
    CHECK (trigger IN ('enter', 'dwell', 'reward', 'journey'));

-- A journey's decision happens at no geofence (its store is the offer's first store).
ALTER TABLE decisions ALTER COLUMN geofence_id DROP NOT NULL;

-- The reason list grows by one, in the order decide() checks them.
ALTER TABLE decisions DROP CONSTRAINT ck__decisions__reason;
ALTER TABLE decisions ADD CONSTRAINT ck__decisions__reason CHECK (reason IN (
    'no_consent', 'quiet_hours', 'outside_schedule', 'occurrence_lapsed', 'store_closed',
    'weather_mismatch', 'audience_mismatch', 'budget_exhausted', 'frequency_capped',
    'fatigue_capped', 'holdout', 'lower_priority'));

-- An optional birthday the shopper gives (GET/PATCH /v1/me).
ALTER TABLE shoppers ADD COLUMN birthday date
    CONSTRAINT ck__shoppers__birthday CHECK (birthday >= DATE '1900-01-01');
-- Birthdays by day of the year (month * 100 + day): a day's birthdays in one index range.
CREATE INDEX ix__shoppers__merchant_id_birthday_md ON shoppers
    (merchant_id, ((extract(month FROM birthday) * 100 + extract(day FROM birthday))::integer))
    WHERE birthday IS NOT NULL;
-- Welcome journeys read the shoppers enrolled in a time range.
CREATE INDEX ix__shoppers__merchant_id_created_at ON shoppers (merchant_id, created_at);
-- Tier-up journeys read the tier changes of a time range.
CREATE INDEX ix__tier_changes__merchant_id_at ON tier_changes (merchant_id, at);
-- Points-expiry journeys read the earnings of a time range.
CREATE INDEX ix__points_ledger__merchant_id_earned_at ON points_ledger (merchant_id, created_at)
    WHERE kind = 'earn';

-- When each shopper was last seen doing something: enrolling, entering a
-- geofence of the program, or transacting at a till. Win-back journeys read the
-- shoppers whose last activity fell in a time range. Kept apart from `shoppers`
-- so that its frequent writes touch one small row and one index.
CREATE TABLE shopper_activity (
    shopper_id      bigint NOT NULL CONSTRAINT pk__shopper_activity PRIMARY KEY,
    merchant_id     bigint NOT NULL,
    last_active_at  timestamptz NOT NULL,
    CONSTRAINT fk__shopper_activity__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__shopper_activity__merchant_id_last_active_at
    ON shopper_activity (merchant_id, last_active_at);

INSERT INTO shopper_activity (shopper_id, merchant_id, last_active_at)
SELECT s.id, s.merchant_id,
       greatest(s.created_at,
                (SELECT max(e.at) FROM geofence_events e
                 WHERE e.shopper_id = s.id AND e.event = 'enter'),
                (SELECT max(c.at) FROM conversions c WHERE c.shopper_id = s.id))
FROM shoppers s;

CREATE TABLE journeys (
    id             bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__journeys PRIMARY KEY,
    merchant_id    bigint NOT NULL
                   CONSTRAINT fk__journeys__merchant_id REFERENCES merchants (id) ON DELETE CASCADE,
    name           text NOT NULL,
    kind           text NOT NULL CONSTRAINT ck__journeys__kind
                   CHECK (kind IN ('welcome', 'winback', 'tier_up', 'birthday', 'points_expiring')),
    offer_id       bigint NOT NULL,
    status         text NOT NULL DEFAULT 'active'
                   CONSTRAINT ck__journeys__status CHECK (status IN ('active', 'paused')),
    -- welcome: minutes after enrolment.
    delay_minutes  integer CONSTRAINT ck__journeys__delay_minutes
                   CHECK (delay_minutes BETWEEN 0 AND 525600),
    -- winback: days without a visit or a purchase.
    inactive_days  integer CONSTRAINT ck__journeys__inactive_days
                   CHECK (inactive_days BETWEEN 1 AND 3650),
    -- tier_up: the tier reached.
    tier           text,
    -- birthday, points_expiring: how many days ahead.
    days_before    integer CONSTRAINT ck__journeys__days_before
                   CHECK (days_before BETWEEN 0 AND 365),
    -- An occurrence not sent within this long (the scheduler was down, quiet hours
    -- kept deferring it) is recorded as occurrence_lapsed instead.
    grace_minutes  integer NOT NULL DEFAULT 1440
                   CONSTRAINT ck__journeys__grace_minutes CHECK (grace_minutes BETWEEN 1 AND 43200),
    -- Occurrences up to this moment have been found (the scheduler's watermark).
    scanned_until  timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    -- One journey per offer: the offer's report is the journey's.
    CONSTRAINT uq__journeys__offer_id UNIQUE (offer_id),
    CONSTRAINT uq__journeys__merchant_id_id UNIQUE (merchant_id, id),
    CONSTRAINT fk__journeys__offer FOREIGN KEY (merchant_id, offer_id)
        REFERENCES offers (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT ck__journeys__params CHECK (CASE kind
        WHEN 'welcome' THEN delay_minutes IS NOT NULL
        WHEN 'winback' THEN inactive_days IS NOT NULL
        WHEN 'tier_up' THEN tier IS NOT NULL
        ELSE days_before IS NOT NULL END)
);
CREATE INDEX ix__journeys__merchant_id ON journeys (merchant_id, id) WHERE deleted_at IS NULL;

-- One row per journey, shopper and occurrence: the unique key is what makes a
-- journey fire once per occurrence across restarts and replicas.
CREATE TABLE journey_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__journey_runs PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    journey_id   bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    -- What happened, as a key: 'welcome', 'inactive:<last activity>', 'tier:<name>',
    -- 'birthday:<year>', 'expiry:<date>'.
    occurrence   text NOT NULL,
    occurs_at    timestamptz NOT NULL,
    -- When to decide next: occurs_at, or the end of the shopper's quiet hours.
    due_at       timestamptz NOT NULL,
    state        text NOT NULL DEFAULT 'pending'
                 CONSTRAINT ck__journey_runs__state CHECK (state IN ('pending', 'done', 'cancelled')),
    -- 'sent', a decision reason, or why it was cancelled.
    outcome      text,
    decision_id  bigint,
    done_at      timestamptz,
    CONSTRAINT uq__journey_runs__journey_id_shopper_id_occurrence
        UNIQUE (journey_id, shopper_id, occurrence),
    CONSTRAINT fk__journey_runs__journey FOREIGN KEY (merchant_id, journey_id)
        REFERENCES journeys (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT fk__journey_runs__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__journey_runs__due ON journey_runs (due_at) WHERE state = 'pending';
CREATE INDEX ix__journey_runs__shopper_id ON journey_runs (shopper_id);

-- The current definitions of these live in offers/functions.sql.
-- Activity comes from enrolments, geofence entries and till transactions. Each
-- statement writes one row per shopper, and only when it moves the time forward.
CREATE FUNCTION shopper_activity_touch() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER shoppers_activity AFTER INSERT ON shoppers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION shopper_activity_touch();
CREATE TRIGGER geofence_events_activity AFTER INSERT ON geofence_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION shopper_activity_touch();
CREATE TRIGGER conversions_activity AFTER INSERT ON conversions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION shopper_activity_touch();
