-- PostgreSQL's own versions of the queries in ../queries.sql. At READ COMMITTED several
-- writers interleave: a `*_for_update` read locks what it read, and a queue or timer sweep
-- skips the rows another writer holds (its rows go to the next sweep).

-- name: intent_for_update
-- An intent a write is about to change.
SELECT * FROM intents WHERE intent_id = :intent_id FOR UPDATE;

-- name: intent_at_for_update
SELECT * FROM intents WHERE pos = :pos FOR UPDATE;

-- name: insert_intent
INSERT INTO intents (intent_id, intent_type, to_agent, from_agent, reply_to, correlation_id,
    payload, human_task, status, idempotency_key, request_hash, max_delivery_attempts,
    deadline_at, last_seq, created_at, updated_at, delivery_attempt, delivery_seq, lease_worker)
VALUES (:intent_id, :intent_type, :to_agent, :from_agent, :reply_to, :correlation_id,
    :payload, :human_task, :status, :idempotency_key, :request_hash, :max_delivery_attempts,
    :deadline_at, :last_seq, :created_at, :updated_at, :delivery_attempt, :delivery_seq,
    :lease_worker) RETURNING pos;

-- name: queued_for_lease
-- Oldest first, never a person's own intent (one with a human_task and no workflow).
SELECT * FROM intents
WHERE to_agent = :address AND status = 'SUBMITTED' AND (human_task IS NULL
    OR EXISTS (SELECT 1 FROM workflows w WHERE w.intent_pos = intents.pos))
ORDER BY pos LIMIT :limit FOR UPDATE SKIP LOCKED;

-- name: agent_spec_for_update
SELECT spec FROM agents WHERE address = :address FOR UPDATE;

-- name: leased_by_worker_for_update
SELECT * FROM intents WHERE lease_worker = :worker_id FOR UPDATE;

-- name: leased_by_anyone_for_update
SELECT * FROM intents WHERE lease_worker IS NOT NULL FOR UPDATE;

-- name: due_timers_for_update
SELECT timer_id, intent_pos, kind, fire_at, task_id, ordinal FROM timers
WHERE fire_at <= :now ORDER BY fire_at LIMIT 200 FOR UPDATE SKIP LOCKED;

-- name: workflow_for_update
SELECT scenario_id, plan, step, step_attempt, entries, results FROM workflows
WHERE intent_pos = :pos FOR UPDATE;
