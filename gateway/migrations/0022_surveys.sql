-- Surveys with the NPS question: what managers define, the invitations a redemption
-- or a visit's exit schedules (sent after a delay through the decision engine), and
-- the shoppers' answers. The triggers that schedule invitations live in
-- offers/functions.sql.

CREATE TABLE surveys (
    id                     bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__surveys PRIMARY KEY,
    merchant_id            bigint NOT NULL
                           CONSTRAINT fk__surveys__merchant_id REFERENCES merchants (id) ON DELETE CASCADE,
    name                   text NOT NULL,
    nps_question           text NOT NULL,
    -- Optional extra questions: [{"id", "kind": "choice"|"text", "text", "choices", "required"}].
    questions              jsonb NOT NULL DEFAULT '[]',
    trigger                text NOT NULL CONSTRAINT ck__surveys__trigger
                           CHECK (trigger IN ('redemption', 'exit')),
    -- Where it is asked; empty: at every store of the merchant.
    store_ids              bigint[] NOT NULL DEFAULT '{}',
    delay_minutes          integer NOT NULL CONSTRAINT ck__surveys__delay_minutes
                           CHECK (delay_minutes BETWEEN 0 AND 10080),
    points                 integer NOT NULL DEFAULT 0 CONSTRAINT ck__surveys__points
                           CHECK (points BETWEEN 0 AND 1000000),
    status                 text NOT NULL DEFAULT 'active' CONSTRAINT ck__surveys__status
                           CHECK (status IN ('active', 'paused')),
    -- The invitation is an offer of its own (no places, so no ping makes it a
    -- candidate): its decisions, caps, holdout, coupon and deliveries are an offer's.
    offer_id               bigint NOT NULL CONSTRAINT uq__surveys__offer_id UNIQUE,
    -- Decided for a detractor's answer (0-6), at the store of the answer.
    recovery_offer_id      bigint,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz,
    CONSTRAINT uq__surveys__merchant_id_id UNIQUE (merchant_id, id),
    CONSTRAINT fk__surveys__offer FOREIGN KEY (merchant_id, offer_id)
        REFERENCES offers (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT fk__surveys__recovery_offer FOREIGN KEY (merchant_id, recovery_offer_id)
        REFERENCES offers (merchant_id, id) ON DELETE CASCADE
);
-- What the scheduling triggers look up on every exit and redemption.
CREATE INDEX ix__surveys__merchant_id_trigger ON surveys (merchant_id, trigger)
    WHERE status = 'active' AND deleted_at IS NULL;

-- One per trigger that asks a shopper: due at the trigger's time plus the
-- survey's delay, decided by the survey job (a decision row, sent or suppressed
-- with its reason, in the decision log), or closed without a decision when the shopper answered meanwhile.
CREATE TABLE survey_invitations (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__survey_invitations PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    survey_id    bigint NOT NULL,
    shopper_id   bigint NOT NULL,
    store_id     bigint NOT NULL,
    -- The fence the shopper left (exit), NULL after a redemption.
    geofence_id  bigint,
    source       text NOT NULL CONSTRAINT ck__survey_invitations__source
                 CHECK (source IN ('redemption', 'exit')),
    triggered_at timestamptz NOT NULL,
    due_at       timestamptz NOT NULL,
    done_at      timestamptz,
    -- sent | suppressed (reason: the decision's) | answered | stopped (survey paused or gone)
    outcome      text CONSTRAINT ck__survey_invitations__outcome
                 CHECK (outcome IN ('sent', 'suppressed', 'answered', 'stopped')),
    reason       text,
    -- The invitation's coupon (the shopper's ticket to answer) and its end.
    coupon_id    bigint,
    expires_at   timestamptz,
    CONSTRAINT fk__survey_invitations__survey FOREIGN KEY (merchant_id, survey_id)
        REFERENCES surveys (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT fk__survey_invitations__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT ck__survey_invitations__done CHECK ((done_at IS NULL) = (outcome IS NULL))
);
-- At most one waiting invitation per survey and shopper: a second exit before the
-- first is due asks nothing more.
CREATE UNIQUE INDEX uq__survey_invitations__survey_id_shopper_id_pending
    ON survey_invitations (survey_id, shopper_id) WHERE done_at IS NULL;
CREATE INDEX ix__survey_invitations__due_at ON survey_invitations (due_at) WHERE done_at IS NULL;
CREATE INDEX ix__survey_invitations__shopper_id_survey_id
    ON survey_invitations (shopper_id, survey_id, id) WHERE outcome = 'sent';
CREATE INDEX ix__survey_invitations__survey_id_done_at ON survey_invitations (survey_id, done_at);

-- An answer: once per survey and shopper; the Idempotency-Key makes a retry answer
-- the first result again.
CREATE TABLE survey_responses (
    id               bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__survey_responses PRIMARY KEY,
    merchant_id      bigint NOT NULL,
    survey_id        bigint NOT NULL,
    shopper_id       bigint NOT NULL,
    invitation_id    bigint NOT NULL
                     CONSTRAINT fk__survey_responses__invitation_id REFERENCES survey_invitations (id)
                     ON DELETE CASCADE,
    store_id         bigint NOT NULL,
    score            smallint NOT NULL CONSTRAINT ck__survey_responses__score
                     CHECK (score BETWEEN 0 AND 10),
    answers          jsonb NOT NULL DEFAULT '{}',
    points           integer NOT NULL,
    idempotency_key  text NOT NULL,
    request_hash     bytea NOT NULL,
    answered_at      timestamptz NOT NULL,
    -- The service-recovery decision of a detractor's answer: sent, or its reason.
    recovery_outcome text,
    recovery_coupon_id bigint,
    CONSTRAINT uq__survey_responses__survey_id_shopper_id UNIQUE (survey_id, shopper_id),
    CONSTRAINT uq__survey_responses__shopper_id_idempotency_key UNIQUE (shopper_id, idempotency_key),
    CONSTRAINT fk__survey_responses__survey FOREIGN KEY (merchant_id, survey_id)
        REFERENCES surveys (merchant_id, id) ON DELETE CASCADE,
    CONSTRAINT fk__survey_responses__shopper FOREIGN KEY (merchant_id, shopper_id)
        REFERENCES shoppers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX ix__survey_responses__merchant_id_answered_at
    ON survey_responses (merchant_id, answered_at);
CREATE INDEX ix__survey_responses__survey_id_id ON survey_responses (survey_id, id);

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
