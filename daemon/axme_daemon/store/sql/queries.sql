-- The named queries of the lifecycle rules, loaded by name (store/queries.py), in the SQL
-- every dialect speaks; a dialect's own `<dialect>/queries.sql` replaces those it must say
-- its own way. Parameters are named (:name); rows are read by column name. A query that the
-- rules rely on to be exclusive says so: a `*_for_update` read is one the dialect locks
-- (SQLite needs nothing: every write transaction is BEGIN IMMEDIATE, one writer at a time),
-- and a conditional write (`WHERE ... AND last_seq = :expected_seq`) reports its row count
-- for the rule to check.

-- name: intent_for_update
-- An intent a write is about to change.
SELECT * FROM intents WHERE intent_id = :intent_id;

-- name: intent_and_step_count_for_update
-- An intent a worker reports steps on, and how many it has recorded: ordinals run 1..n
-- without gaps, so the last one is the count, read from the key's end (a count(*) reads
-- every step, and a handler with hundreds records them one by one).
SELECT *, (SELECT coalesce(max(ordinal), 0) FROM steps WHERE intent_pos = intents.pos)
    AS step_count
FROM intents WHERE intent_id = :intent_id;

-- name: intent_at_for_update
SELECT * FROM intents WHERE pos = :pos;

-- name: intent_by_id
SELECT * FROM intents WHERE intent_id = :intent_id;

-- name: intent_by_idempotency_key
SELECT * FROM intents WHERE idempotency_key = :idempotency_key;

-- name: insert_intent
-- Nothing when another writer took its idempotency key first (the rule reads that one).
INSERT INTO intents (intent_id, intent_type, to_agent, from_agent, reply_to, correlation_id,
    payload, human_task, status, idempotency_key, request_hash, max_delivery_attempts,
    deadline_at, last_seq, created_at, updated_at, delivery_attempt, delivery_seq, lease_worker,
    lease_daemon)
VALUES (:intent_id, :intent_type, :to_agent, :from_agent, :reply_to, :correlation_id,
    :payload, :human_task, :status, :idempotency_key, :request_hash, :max_delivery_attempts,
    :deadline_at, :last_seq, :created_at, :updated_at, :delivery_attempt, :delivery_seq,
    :lease_worker, :lease_daemon)
ON CONFLICT (idempotency_key) DO NOTHING;

-- name: update_intent
-- Only when nobody changed the intent since it was read (its last_seq is still the one read).
UPDATE intents SET status = :status, last_seq = :last_seq, updated_at = :updated_at,
    waiting_reason = :waiting_reason, delivery_attempt = :delivery_attempt,
    delivery_seq = :delivery_seq, lease_worker = :lease_worker,
    lease_daemon = :lease_daemon
WHERE pos = :pos AND last_seq = :expected_seq;

-- name: update_intent_outcome
-- update_intent, with the result and the error.
UPDATE intents SET status = :status, last_seq = :last_seq, updated_at = :updated_at,
    waiting_reason = :waiting_reason, delivery_attempt = :delivery_attempt,
    delivery_seq = :delivery_seq, lease_worker = :lease_worker,
    lease_daemon = :lease_daemon, result = :result,
    error = :error
WHERE pos = :pos AND last_seq = :expected_seq;

-- name: insert_event
INSERT INTO events (intent_pos, seq, event_type, status, at, actor, details)
VALUES (:intent_pos, :seq, :event_type, :status, :at, :actor, :details);

-- name: last_event_details
SELECT details FROM events WHERE intent_pos = :pos AND event_type = :event_type
ORDER BY seq DESC LIMIT 1;

-- name: events_since
SELECT e.seq, e.event_type, e.status, e.at, e.actor, e.details
FROM events e JOIN intents i ON i.pos = e.intent_pos
WHERE i.intent_id = :intent_id AND e.seq > :since ORDER BY e.seq LIMIT :limit;

-- name: close_open_tasks
UPDATE tasks SET status = 'CLOSED' WHERE intent_pos = :pos AND status = 'PENDING';

-- name: drop_waits
DELETE FROM waits WHERE intent_pos = :pos;

-- name: drop_timers
DELETE FROM timers WHERE intent_pos = :pos;

-- name: step_at
SELECT step_key, result, attempt, at, error, undo, undone FROM steps
WHERE intent_pos = :pos AND ordinal = :ordinal;

-- name: insert_step
INSERT INTO steps (intent_pos, ordinal, step_key, result, attempt, at, error, undo)
VALUES (:pos, :ordinal, :step_key, :result, :attempt, :at, :error, :undo);

-- name: steps_of
SELECT s.ordinal, s.step_key, s.result, s.attempt, s.at, s.error, s.undo, s.undone
FROM steps s JOIN intents i ON i.pos = s.intent_pos
WHERE i.intent_id = :intent_id ORDER BY s.ordinal;

-- name: set_saga
UPDATE intents SET saga = :saga WHERE pos = :pos;

-- name: compensations_of
-- The steps that carry a compensation, last first (the order they are undone in).
SELECT ordinal, step_key, result, undo, undone FROM steps
WHERE intent_pos = :pos AND undo IS NOT NULL ORDER BY ordinal DESC;

-- name: set_undone
-- A compensation's outcome, once: only while none is recorded.
UPDATE steps SET undone = :undone
WHERE intent_pos = :pos AND ordinal = :ordinal AND undo IS NOT NULL AND undone IS NULL;

-- name: open_tasks_of
SELECT task_id, spec FROM tasks WHERE intent_pos = :pos AND status = 'PENDING';

-- name: queued_for_lease
-- Oldest first, never a person's own intent (one with a human_task and no workflow).
SELECT * FROM intents
WHERE to_agent = :address AND status = 'SUBMITTED' AND (human_task IS NULL
    OR EXISTS (SELECT 1 FROM workflows w WHERE w.intent_pos = intents.pos))
ORDER BY pos LIMIT :limit;

-- name: oldest_queued
SELECT intents.*,
    EXISTS (SELECT 1 FROM workflows w WHERE w.intent_pos = intents.pos) AS in_workflow
FROM intents WHERE to_agent = :address AND status = 'SUBMITTED'
ORDER BY pos LIMIT 1;

-- name: next_queued
-- oldest_queued, for the slot a completion frees: most often nothing waits then, and a
-- backend may assume so (postgres_tx.py), where oldest_queued's own caller expects a row.
SELECT intents.*,
    EXISTS (SELECT 1 FROM workflows w WHERE w.intent_pos = intents.pos) AS in_workflow
FROM intents WHERE to_agent = :address AND status = 'SUBMITTED'
ORDER BY pos LIMIT 1;

-- name: any_queued
SELECT 1 AS found FROM intents
WHERE to_agent = :address AND status = 'SUBMITTED' AND (human_task IS NULL
    OR EXISTS (SELECT 1 FROM workflows w WHERE w.intent_pos = intents.pos)) LIMIT 1;

-- name: count_queued
SELECT count(*) AS n FROM intents WHERE to_agent = :address AND status = 'SUBMITTED';

-- name: queued_by_id
SELECT * FROM intents
WHERE intent_id = :intent_id AND status = 'SUBMITTED' AND (human_task IS NULL
    OR EXISTS (SELECT 1 FROM workflows w WHERE w.intent_pos = intents.pos));

-- name: leased_by_worker_for_update
SELECT * FROM intents WHERE lease_worker = :worker_id;

-- name: leased_by_anyone_for_update
SELECT * FROM intents WHERE lease_worker IS NOT NULL;

-- name: leased_by_daemon_for_update
-- Held through daemon :daemon_id, or through none (leased before daemons registered).
SELECT * FROM intents
WHERE lease_worker IS NOT NULL AND (lease_daemon = :daemon_id OR lease_daemon IS NULL);

-- name: lapsed_leases_for_update
-- Held through another daemon whose heartbeat is older than its lease grace, or that is not
-- registered (any more).
SELECT i.* FROM intents i LEFT JOIN daemons d ON d.daemon_id = i.lease_daemon
WHERE i.lease_worker IS NOT NULL AND i.lease_daemon IS NOT NULL
    AND i.lease_daemon IS NOT :daemon_id
    AND (d.daemon_id IS NULL OR d.heartbeat_at + d.lease_grace < :now)
ORDER BY i.pos;

-- name: leased_to_since
-- Only deliveries already on disk (up to :durable).
SELECT * FROM intents
WHERE lease_worker = :worker_id AND delivery_seq > :after AND delivery_seq <= :durable
ORDER BY delivery_seq;

-- name: next_delivery_seqs
-- The next :count delivery cursors, ascending. A dialect with several writers allocates
-- them from a sequence (SQLite counts in its one writer and does not ask).
SELECT coalesce(max(delivery_seq), 0) + 1 AS n FROM intents WHERE :count > 0;

-- name: next_positions
-- Positions for the next :count intents a writer inserts. A dialect with several writers
-- takes them from the identity's sequence ahead of the inserts (SQLite's insert assigns
-- them, and nothing asks).
SELECT coalesce(max(pos), 0) + 1 AS n FROM intents WHERE :count > 0;

-- name: last_delivery_seq
SELECT coalesce(max(delivery_seq), 0) AS n FROM intents;

-- name: insert_timer
INSERT INTO timers (intent_pos, kind, fire_at, task_id, ordinal, armed_at)
VALUES (:pos, :kind, :fire_at, :task_id, :ordinal, :armed_at);

-- name: deadlines_armed_after
-- Deadline timers armed after :now (the clock went back): where each will fire once brought
-- forward, for its task to show.
SELECT task_id, fire_at - (armed_at - :now) AS deadline_at FROM timers
WHERE armed_at > :now AND kind = 'deadline';

-- name: move_task_deadline
UPDATE tasks SET deadline_at = :deadline_at WHERE task_id = :task_id;

-- name: bring_timers_forward
-- Timers armed after :now fire at most their own duration from :now.
UPDATE timers SET fire_at = fire_at - (armed_at - :now), armed_at = :now
WHERE armed_at > :now;

-- name: due_timers
SELECT timer_id, intent_pos, kind, fire_at, task_id, ordinal FROM timers
WHERE fire_at <= :now ORDER BY fire_at LIMIT 200;

-- name: intent_at_unless_held
-- The intent at :pos, locked, or nothing while another writer holds it.
SELECT pos FROM intents WHERE pos = :pos;

-- name: delete_timer
-- A timer fires by deleting its row: of two that try, one deletes it.
DELETE FROM timers WHERE timer_id = :timer_id;

-- name: next_timer
-- Two index lookups: the earliest due time and the latest arming.
SELECT (SELECT min(fire_at) FROM timers) AS fire_at,
    (SELECT max(armed_at) FROM timers) AS armed_at;

-- name: drop_wait_timers
DELETE FROM timers WHERE intent_pos = :pos AND ordinal = :ordinal AND kind != 'reminder';

-- name: drop_task_timers
DELETE FROM timers WHERE task_id = :task_id;

-- name: wait_at
SELECT step_key, kind, target FROM waits WHERE intent_pos = :pos AND ordinal = :ordinal;

-- name: insert_wait
INSERT INTO waits (intent_pos, ordinal, step_key, kind, target)
VALUES (:pos, :ordinal, :step_key, :kind, :target);

-- name: delete_wait
-- A wait ends by deleting its row: of two that try, one deletes it.
DELETE FROM waits WHERE intent_pos = :pos AND ordinal = :ordinal;

-- name: signal_wait
SELECT ordinal FROM waits WHERE intent_pos = :pos AND kind = 'signal' AND target = :name
ORDER BY ordinal LIMIT 1;

-- name: child_waits
SELECT intent_pos, ordinal FROM waits WHERE kind = 'child' AND target = :child_id;

-- name: kept_signal
SELECT signal_id, data, at FROM signals
WHERE intent_pos = :pos AND name = :name AND taken_by IS NULL ORDER BY signal_id LIMIT 1;

-- name: take_signal
UPDATE signals SET taken_by = :ordinal WHERE signal_id = :signal_id AND taken_by IS NULL;

-- name: insert_signal
INSERT INTO signals (intent_pos, name, data, taken_by, at)
VALUES (:pos, :name, :data, :taken_by, :at);

-- name: task_by_id
SELECT t.task_id, i.intent_id, i.intent_type, i.to_agent, t.ordinal, t.spec, t.status,
    t.assignee, t.reminders, t.deadline_at, t.decision, t.created_at, t.decided_at,
    t.intent_pos
FROM tasks t JOIN intents i ON i.pos = t.intent_pos WHERE t.task_id = :task_id;

-- name: insert_task
INSERT INTO tasks (task_id, intent_pos, ordinal, spec, status, assignee, deadline_at,
    created_at)
VALUES (:task_id, :pos, :ordinal, :spec, 'PENDING', :assignee, :deadline_at, :created_at);

-- name: decide_task
-- Only a pending task: of two decisions, one finds it pending.
UPDATE tasks SET status = 'DECIDED', decision = :decision, decided_at = :decided_at
WHERE task_id = :task_id AND status = 'PENDING';

-- name: count_reminder
UPDATE tasks SET reminders = :reminders
WHERE task_id = :task_id AND status = 'PENDING' AND reminders = :reminders - 1;

-- name: escalate_task
UPDATE tasks SET assignee = :assignee, spec = :spec, deadline_at = :deadline_at
WHERE task_id = :task_id AND status = 'PENDING';

-- name: time_out_task
UPDATE tasks SET status = 'TIMED_OUT' WHERE task_id = :task_id AND status = 'PENDING';

-- name: project_digest
SELECT digest FROM projects WHERE owner = :owner AND config_path = :source;

-- name: agents_of_source
SELECT address FROM agents WHERE owner = :owner AND source = :source;

-- name: upsert_agent
INSERT INTO agents (owner, address, spec, source, created_at, updated_at)
VALUES (:owner, :address, :spec, :source, :now, :now)
ON CONFLICT (owner, address) DO UPDATE SET spec = excluded.spec, source = excluded.source,
    updated_at = excluded.updated_at;

-- name: upsert_project
INSERT INTO projects (owner, config_path, digest, applied_at, hooks)
VALUES (:owner, :source, :digest, :now, :hooks)
ON CONFLICT (owner, config_path) DO UPDATE SET digest = excluded.digest,
    applied_at = excluded.applied_at, hooks = excluded.hooks;

-- name: delete_agent
DELETE FROM agents WHERE owner = :owner AND address = :address;

-- name: agent_spec_for_update
SELECT spec FROM agents WHERE owner = :owner AND address = :address;

-- name: set_agent_spec
UPDATE agents SET spec = :spec, updated_at = :now WHERE owner = :owner AND address = :address;

-- name: list_agents
SELECT spec, source, created_at, updated_at FROM agents WHERE owner = :owner ORDER BY address;

-- name: list_projects
SELECT config_path, digest, applied_at, hooks FROM projects WHERE owner = :owner
ORDER BY config_path;

-- name: api_key_exists
SELECT 1 AS found FROM api_keys WHERE name = :name;

-- name: insert_api_key
INSERT INTO api_keys (name, key_hash, scopes, created_at)
VALUES (:name, :key_hash, :scopes, :created_at);

-- name: delete_api_key
DELETE FROM api_keys WHERE name = :name;

-- name: list_api_keys
SELECT name, key_hash, scopes, created_at FROM api_keys ORDER BY name;

-- name: workflow_for_update
SELECT scenario_id, plan, step, step_attempt, entries, results FROM workflows
WHERE intent_pos = :pos;

-- name: workflow_of
SELECT w.scenario_id, w.plan, w.step, w.step_attempt, w.entries, w.results
FROM workflows w JOIN intents i ON i.pos = w.intent_pos WHERE i.intent_id = :intent_id;

-- name: insert_workflow
INSERT INTO workflows (intent_pos, scenario_id, plan, step, step_attempt, entries, results)
VALUES (:pos, :scenario_id, :plan, :step, :step_attempt, :entries, :results);

-- name: update_workflow
-- Only from the state read: of two writers moving one workflow, one does.
UPDATE workflows SET step = :step, step_attempt = :step_attempt, entries = :entries,
    results = :results
WHERE intent_pos = :pos AND entries = :expected_entries AND step_attempt = :expected_attempt;

-- name: set_intent_agent
-- A workflow's next agent step goes to that step's agent.
UPDATE intents SET to_agent = :to_agent WHERE pos = :pos;

-- name: drop_step_timers
DELETE FROM timers WHERE intent_pos = :pos AND kind IN ('step_deadline', 'step_retry');

-- name: kill_agent
INSERT INTO killed_agents (address, killed_at, actor) VALUES (:address, :killed_at, :actor)
ON CONFLICT (address) DO NOTHING;

-- name: resume_agent
DELETE FROM killed_agents WHERE address = :address;

-- name: killed_agent
SELECT address, killed_at, actor FROM killed_agents WHERE address = :address;

-- name: list_killed_agents
SELECT address, killed_at, actor FROM killed_agents ORDER BY address;

-- name: insert_inbox_entry
INSERT INTO inbox_entries (intent_pos, message_id, kind, owner, actor, at, details)
VALUES (:intent_pos, :message_id, :kind, :owner, :actor, :at, :details);

-- name: inbox_entries_of
-- A thread's entries, oldest first.
SELECT pos, message_id, kind, owner, actor, at, details, deleted_at
FROM inbox_entries WHERE intent_pos = :intent_pos ORDER BY pos;

-- name: inbox_threads_of
-- The threads `owner` holds now (its last entry's owner), newest change first.
SELECT i.intent_id FROM inbox_entries e JOIN intents i ON i.pos = e.intent_pos
WHERE e.owner = :owner
  AND e.pos = (SELECT max(l.pos) FROM inbox_entries l WHERE l.intent_pos = e.intent_pos)
ORDER BY e.pos DESC LIMIT :limit;

-- name: inbox_threads
-- Every thread, newest change first.
SELECT i.intent_id FROM inbox_entries e JOIN intents i ON i.pos = e.intent_pos
WHERE e.pos = (SELECT max(l.pos) FROM inbox_entries l WHERE l.intent_pos = e.intent_pos)
ORDER BY e.pos DESC LIMIT :limit;

-- name: inbox_changes_of
-- Changes of `owner`'s threads after a cursor, in order.
SELECT e.pos, i.intent_id FROM inbox_entries e JOIN intents i ON i.pos = e.intent_pos
WHERE e.owner = :owner AND e.pos > :cursor ORDER BY e.pos LIMIT :limit;

-- name: inbox_changes
SELECT e.pos, i.intent_id FROM inbox_entries e JOIN intents i ON i.pos = e.intent_pos
WHERE e.pos > :cursor ORDER BY e.pos LIMIT :limit;

-- name: delete_inbox_message
UPDATE inbox_entries SET deleted_at = :at, details = NULL
WHERE message_id = :message_id AND kind = 'reply' AND deleted_at IS NULL;

-- name: inbox_owner
-- A thread's owner now: its last entry's.
SELECT owner FROM inbox_entries WHERE intent_pos = :intent_pos ORDER BY pos DESC LIMIT 1;

-- name: clock
-- Now, as unix time, by the database's clock: the one every daemon's heartbeat is read by.
SELECT (julianday('now') - 2440587.5) * 86400.0 AS now;

-- name: upsert_daemon
INSERT INTO daemons (daemon_id, host, pid, home, started_at, heartbeat_at, lease_grace)
VALUES (:daemon_id, :host, :pid, :home, :started_at, :now, :lease_grace)
ON CONFLICT (daemon_id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
    home = excluded.home, started_at = excluded.started_at,
    heartbeat_at = excluded.heartbeat_at, lease_grace = excluded.lease_grace, listening = '[]';

-- name: adopt_agents
UPDATE agents SET owner = :owner WHERE owner = '' AND NOT EXISTS (
    SELECT 1 FROM agents mine WHERE mine.owner = :owner AND mine.address = agents.address);

-- name: adopt_projects
UPDATE projects SET owner = :owner WHERE owner = '' AND NOT EXISTS (
    SELECT 1 FROM projects mine
    WHERE mine.owner = :owner AND mine.config_path = projects.config_path);

-- name: daemon_heartbeat
UPDATE daemons SET heartbeat_at = :now, lease_grace = :lease_grace WHERE daemon_id = :daemon_id;

-- name: delete_daemon
DELETE FROM daemons WHERE daemon_id = :daemon_id;

-- name: list_daemons
SELECT daemon_id, host, pid, home, started_at, heartbeat_at, lease_grace, listening
FROM daemons ORDER BY started_at, daemon_id;

-- name: leases_by_daemon
-- How many deliveries each daemon's workers hold now.
SELECT lease_daemon, count(*) AS n FROM intents WHERE lease_worker IS NOT NULL
GROUP BY lease_daemon;

-- name: set_daemon_listening
UPDATE daemons SET listening = :listening WHERE daemon_id = :daemon_id;

-- name: agents_of_daemons
-- Every registered agent, by owner ('' on SQLite; removed or not: `spec` says).
SELECT owner, address, spec FROM agents;
