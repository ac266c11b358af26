-- The event tables' time partitions (gateway/jobs/partitions.py, retention.py).
-- DDL cannot take parameters: the *_ddl blocks return the statements to run, with every
-- name quoted by format('%I') and every bound by format('%L').

-- name: partitions
-- The partitions of table $1 with their range, from the catalog: lower is NULL for
-- MINVALUE, upper for MAXVALUE, and the DEFAULT partition has is_default and no range.
SELECT c.relname AS name,
       b.expr = 'DEFAULT' AS is_default,
       nullif(btrim(m[1], ''''), 'MINVALUE')::timestamptz AS lower,
       nullif(btrim(m[2], ''''), 'MAXVALUE')::timestamptz AS upper
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) b
CROSS JOIN LATERAL (SELECT regexp_match(b.expr, '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') AS m) r
WHERE i.inhparent = $1::regclass
ORDER BY is_default, lower NULLS FIRST;

-- name: lock_timeout
-- DDL on a partition locks its parent: wait at most this long behind a long reader
-- rather than queue every writer behind the wait. The job tries again next round.
SELECT set_config('lock_timeout', $1::text, true);

-- name: default_periods_ddl
-- The periods ($3: day or month, UTC) of the rows in table $1's DEFAULT partition, by
-- its time column $2.
SELECT format('SELECT DISTINCT date_trunc(%L, %I, ''UTC'') AS period FROM %I',
              $3::text, $2::text, $1::text || '_default');

-- name: create_partition_ddl
-- Partition $2 of table $1 for [$4, $5) of column $3: made apart, given the rows of that
-- range that the DEFAULT partition kept meanwhile, then attached (ATTACH checks that the
-- DEFAULT partition holds nothing of the range any more). Writes to the table wait for
-- the transaction, which takes milliseconds when the DEFAULT partition is empty: a write
-- already routed to the DEFAULT partition when the new one appears would fail its check,
-- and one in between the move and the attach would make the attach fail. Readers go on.
SELECT format('LOCK TABLE %I IN EXCLUSIVE MODE; LOCK TABLE %I IN ACCESS EXCLUSIVE MODE',
              $1::text, $1::text || '_default') AS lock,
       format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
              'INCLUDING STORAGE INCLUDING COMPRESSION)', $2::text, $1::text) AS create,
       format('WITH moved AS (DELETE FROM %I WHERE %I >= %L AND %I < %L RETURNING *) '
              'INSERT INTO %I SELECT * FROM moved',
              $1::text || '_default', $3::text, $4::timestamptz, $3::text, $5::timestamptz,
              $2::text) AS move,
       format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
              $1::text, $2::text, $4::timestamptz, $5::timestamptz) AS attach;

-- name: drop_partition_ddl
SELECT format('DROP TABLE %I', $1::text);
