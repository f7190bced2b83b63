-- PostgreSQL's own versions of the queries in ../queries.sql. At READ COMMITTED several
-- writers interleave: a `*_for_update` read locks what it read, and a queue or timer sweep
-- skips the rows another writer holds (its rows go to the next sweep).

-- name: intent_for_update
-- An intent a write is about to change.
SELECT * FROM intents WHERE intent_id = :intent_id FOR UPDATE;

-- name: intent_and_step_count_for_update
SELECT *, (SELECT coalesce(max(ordinal), 0) FROM steps WHERE intent_pos = intents.pos)
    AS step_count
FROM intents WHERE intent_id = :intent_id FOR UPDATE;

-- name: intent_at_for_update
SELECT * FROM intents WHERE pos = :pos FOR UPDATE;

-- name: insert_intent
-- Nothing when another writer took its idempotency key first: at READ COMMITTED the insert
-- waits for that writer's commit, then does nothing, and the rule reads the row it made.
-- Its pos is one the writer took from the sequence beforehand (`next_positions`), so that
-- the insert need not be waited for (postgres_tx.py).
INSERT INTO intents (pos, intent_id, intent_type, to_agent, from_agent, reply_to,
    correlation_id, payload, human_task, status, idempotency_key, request_hash,
    max_delivery_attempts, deadline_at, last_seq, created_at, updated_at, delivery_attempt,
    delivery_seq, lease_worker, lease_daemon)
VALUES (:pos, :intent_id, :intent_type, :to_agent, :from_agent, :reply_to, :correlation_id,
    :payload, :human_task, :status, :idempotency_key, :request_hash, :max_delivery_attempts,
    :deadline_at, :last_seq, :created_at, :updated_at, :delivery_attempt, :delivery_seq,
    :lease_worker, :lease_daemon)
ON CONFLICT (idempotency_key) DO NOTHING RETURNING pos;

-- name: queued_for_lease
-- Oldest first, never a person's own intent (one with a human_task and no workflow).
SELECT * FROM intents
WHERE to_agent = :address AND status = 'SUBMITTED' AND (human_task IS NULL
    OR EXISTS (SELECT 1 FROM workflows w WHERE w.intent_pos = intents.pos))
ORDER BY pos LIMIT :limit FOR UPDATE SKIP LOCKED;

-- name: oldest_queued
-- The oldest queued intent no other writer holds, locked: one held is being delivered or
-- changed by it. Waiting for it, while holding what the batch changed before, made two
-- daemons' writers deadlock (each completion hands its slot to the next queued intent).
SELECT intents.*,
    EXISTS (SELECT 1 FROM workflows w WHERE w.intent_pos = intents.pos) AS in_workflow
FROM intents WHERE to_agent = :address AND status = 'SUBMITTED'
ORDER BY pos LIMIT 1 FOR UPDATE SKIP LOCKED;

-- name: next_queued
-- oldest_queued, for the slot a completion frees (see there, and postgres_tx.py).
SELECT intents.*,
    EXISTS (SELECT 1 FROM workflows w WHERE w.intent_pos = intents.pos) AS in_workflow
FROM intents WHERE to_agent = :address AND status = 'SUBMITTED'
ORDER BY pos LIMIT 1 FOR UPDATE SKIP LOCKED;

-- name: agent_spec_for_update
SELECT spec FROM agents WHERE owner = :owner AND address = :address FOR UPDATE;

-- name: leased_by_worker_for_update
SELECT * FROM intents WHERE lease_worker = :worker_id FOR UPDATE;

-- name: leased_by_anyone_for_update
SELECT * FROM intents WHERE lease_worker IS NOT NULL FOR UPDATE;

-- name: leased_by_daemon_for_update
SELECT * FROM intents
WHERE lease_worker IS NOT NULL AND (lease_daemon = :daemon_id OR lease_daemon IS NULL)
FOR UPDATE;

-- name: lapsed_leases_for_update
-- A lease another writer holds (its owner ending it, or a live daemon's report) is skipped.
SELECT i.* FROM intents i LEFT JOIN daemons d ON d.daemon_id = i.lease_daemon
WHERE i.lease_worker IS NOT NULL AND i.lease_daemon IS NOT NULL
    AND i.lease_daemon IS DISTINCT FROM :daemon_id
    AND (d.daemon_id IS NULL OR d.heartbeat_at + d.lease_grace < :now)
ORDER BY i.pos FOR UPDATE OF i SKIP LOCKED;

-- name: clock
SELECT extract(epoch FROM clock_timestamp())::float8 AS now;

-- name: next_positions
-- Positions for intents this writer is about to insert, in order, from the identity's own
-- sequence (the values a writer never uses are gaps, as a rolled-back insert leaves).
SELECT nextval(pg_get_serial_sequence('intents', 'pos')) AS n
FROM generate_series(1, :count) ORDER BY n;

-- name: next_delivery_seqs
SELECT nextval('delivery_seq') AS n FROM generate_series(1, :count) ORDER BY n;

-- name: intent_at_unless_held
-- A timer sweep locks each due timer's intent before the timer, as every rule does (intent,
-- then its timers), and skips one another writer holds: it never waits holding a timer.
SELECT pos FROM intents WHERE pos = :pos FOR UPDATE SKIP LOCKED;

-- name: bring_timers_forward
-- Those another writer holds are skipped (the next sweep brings them forward).
UPDATE timers SET fire_at = fire_at - (armed_at - :now), armed_at = :now
WHERE timer_id IN (SELECT timer_id FROM timers WHERE armed_at > :now FOR UPDATE SKIP LOCKED);

-- name: workflow_for_update
SELECT scenario_id, plan, step, step_attempt, entries, results FROM workflows
WHERE intent_pos = :pos FOR UPDATE;
