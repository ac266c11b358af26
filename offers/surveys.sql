-- Surveys, their invitations and responses, and the NPS reports.

-- name: survey_columns
id, merchant_id, name, nps_question, questions, trigger, store_ids, delay_minutes, points,
status, offer_id, recovery_offer_id, created_at, updated_at

-- name: insert_survey
INSERT INTO surveys (merchant_id, name, nps_question, questions, trigger, store_ids,
                     delay_minutes, points, status, offer_id, recovery_offer_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING {survey_columns};

-- name: get_survey
SELECT {survey_columns} FROM surveys WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL;

-- name: lock_survey
SELECT {survey_columns} FROM surveys WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
FOR UPDATE;

-- name: update_survey
UPDATE surveys SET name = $3, nps_question = $4, questions = $5, trigger = $6, store_ids = $7,
    delay_minutes = $8, points = $9, status = $10, recovery_offer_id = $11, updated_at = now()
WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
RETURNING {survey_columns};

-- name: list_surveys
-- A store-scoped reader ($2 not NULL) sees the surveys asked only at its stores.
SELECT {survey_columns} FROM surveys
WHERE merchant_id = $1 AND deleted_at IS NULL
  AND ($2::bigint[] IS NULL OR (store_ids <> '{}' AND store_ids <@ $2::bigint[]))
  AND id > $3
ORDER BY id
LIMIT $4;

-- name: archive_survey
-- The invitation offer goes with it; waiting invitations close when they come due.
WITH s AS (
    UPDATE surveys SET deleted_at = now(), status = 'paused', updated_at = now()
    WHERE merchant_id = $1 AND id = $2 AND deleted_at IS NULL
    RETURNING offer_id
)
UPDATE offers o SET deleted_at = now(), status = 'paused', updated_at = now()
FROM s WHERE o.id = s.offer_id
RETURNING o.id;

-- name: due_invitations
-- The invitations due now, oldest first; SKIP LOCKED so a replica that somehow runs
-- beside the job's lock holder never takes the same rows.
SELECT i.id, i.merchant_id, i.survey_id, i.shopper_id, i.store_id, i.geofence_id, i.source,
       s.offer_id, s.status AS survey_status, s.deleted_at IS NOT NULL AS survey_gone,
       EXISTS (SELECT 1 FROM survey_responses r
               WHERE r.survey_id = i.survey_id AND r.shopper_id = i.shopper_id) AS answered
FROM survey_invitations i JOIN surveys s ON s.id = i.survey_id
WHERE i.done_at IS NULL AND i.due_at <= $1
ORDER BY i.due_at
LIMIT $2
FOR UPDATE OF i SKIP LOCKED;

-- name: close_invitation
UPDATE survey_invitations SET done_at = $2, outcome = $3, reason = $4, coupon_id = $5,
    expires_at = $6
WHERE id = $1 AND done_at IS NULL;

-- name: live_invitation
-- The shopper's latest invitation to the survey that was sent and whose coupon is live.
SELECT id, store_id FROM survey_invitations
WHERE shopper_id = $1 AND survey_id = $2 AND outcome = 'sent' AND expires_at > $3
ORDER BY id DESC
LIMIT 1;

-- name: response_columns
id, survey_id, shopper_id, invitation_id, store_id, score, answers, points, request_hash,
answered_at, recovery_outcome, recovery_coupon_id

-- name: response_by_key
SELECT {response_columns} FROM survey_responses WHERE shopper_id = $1 AND idempotency_key = $2;

-- name: response_of
SELECT {response_columns} FROM survey_responses WHERE survey_id = $1 AND shopper_id = $2;

-- name: insert_response
INSERT INTO survey_responses (merchant_id, survey_id, shopper_id, invitation_id, store_id, score,
                              answers, points, idempotency_key, request_hash, answered_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING {response_columns};

-- name: set_recovery
UPDATE survey_responses SET recovery_outcome = $2, recovery_coupon_id = $3 WHERE id = $1
RETURNING {response_columns};

-- name: nps_counts
-- Answers by store and period (the period's start, in UTC; '' for no period), in the
-- merchant's scope ($2: a store, $3: the key's stores), for one survey ($4) or all.
SELECT r.store_id,
       CASE WHEN $7::text IS NULL THEN NULL
            ELSE date_trunc($7::text, r.answered_at AT TIME ZONE 'UTC')::date END AS period,
       count(*) FILTER (WHERE r.score >= 9) AS promoters,
       count(*) FILTER (WHERE r.score BETWEEN 7 AND 8) AS passives,
       count(*) FILTER (WHERE r.score <= 6) AS detractors
FROM survey_responses r
WHERE r.merchant_id = $1
  AND ($2::bigint IS NULL OR r.store_id = $2)
  AND ($3::bigint[] IS NULL OR r.store_id = ANY ($3::bigint[]))
  AND ($4::bigint IS NULL OR r.survey_id = $4)
  AND ($5::timestamptz IS NULL OR r.answered_at >= $5)
  AND ($6::timestamptz IS NULL OR r.answered_at < $6)
GROUP BY 1, 2;

-- name: invitation_counts
-- Invitations decided, by store: sent (the response rate's denominator) and suppressed.
SELECT i.store_id,
       count(*) FILTER (WHERE i.outcome = 'sent') AS sent,
       count(*) FILTER (WHERE i.outcome = 'suppressed') AS suppressed
FROM survey_invitations i
WHERE i.merchant_id = $1 AND i.done_at IS NOT NULL
  AND ($2::bigint IS NULL OR i.store_id = $2)
  AND ($3::bigint[] IS NULL OR i.store_id = ANY ($3::bigint[]))
  AND ($4::bigint IS NULL OR i.survey_id = $4)
  AND ($5::timestamptz IS NULL OR i.done_at >= $5)
  AND ($6::timestamptz IS NULL OR i.done_at < $6)
GROUP BY 1;

-- name: answers_log
-- Every answer of a survey, for the CSV export (streamed from a cursor).
SELECT r.id, r.answered_at, r.survey_id, r.store_id, r.shopper_id, r.score, r.answers, r.points,
       r.recovery_outcome
FROM survey_responses r
WHERE r.merchant_id = $1 AND r.survey_id = $2
  AND ($3::bigint[] IS NULL OR r.store_id = ANY ($3::bigint[]))
ORDER BY r.id;

-- name: open_invitations
-- The shopper's invitations still open: sent, live, and not answered yet.
SELECT i.survey_id, s.offer_id, i.expires_at, dl.id AS delivery_id, s.nps_question, s.questions,
       s.points
FROM survey_invitations i
JOIN surveys s ON s.id = i.survey_id AND s.deleted_at IS NULL
LEFT JOIN deliveries dl ON dl.coupon_id = i.coupon_id
WHERE i.shopper_id = $1 AND i.outcome = 'sent' AND i.expires_at > $2
  AND NOT EXISTS (SELECT 1 FROM survey_responses r
                  WHERE r.survey_id = i.survey_id AND r.shopper_id = i.shopper_id)
ORDER BY i.id DESC
LIMIT 100;
