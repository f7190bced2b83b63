-- The whole current schema, for a fresh database. Must equal all migrations applied in order
-- (tests/integration/test_migrations.py checks it); change both together.
CREATE TABLE intents (
    pos INTEGER PRIMARY KEY,                 -- insertion order: list cursor, event key
    intent_id TEXT NOT NULL UNIQUE,
    intent_type TEXT NOT NULL,
    to_agent TEXT NOT NULL,
    from_agent TEXT,
    reply_to TEXT,
    correlation_id TEXT,
    payload TEXT NOT NULL,                   -- JSON object
    human_task TEXT,                         -- JSON object or NULL
    status TEXT NOT NULL,
    waiting_reason TEXT,
    result TEXT,                             -- JSON or NULL
    error TEXT,                              -- JSON or NULL
    idempotency_key TEXT UNIQUE,
    request_hash TEXT,
    delivery_attempt INTEGER NOT NULL DEFAULT 0,
    max_delivery_attempts INTEGER NOT NULL,
    deadline_at TEXT,
    last_seq INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    delivery_seq INTEGER NOT NULL DEFAULT 0, -- cursor of the agent stream, new per delivery
    lease_worker TEXT,                       -- the worker holding the current delivery
    saga TEXT,                               -- JSON: undoing its steps (phase, ending), or NULL
    lease_daemon TEXT                        -- the daemon that worker is connected to
);

CREATE INDEX intents_status ON intents (status, pos);
CREATE INDEX intents_to_agent ON intents (to_agent, pos);
CREATE INDEX intents_intent_type ON intents (intent_type, pos);
CREATE INDEX intents_queue ON intents (to_agent, status, pos);
CREATE INDEX intents_lease ON intents (lease_worker) WHERE lease_worker IS NOT NULL;
CREATE INDEX intents_delivery_seq ON intents (delivery_seq);
CREATE INDEX intents_lease_daemon ON intents (lease_daemon) WHERE lease_worker IS NOT NULL;

CREATE TABLE events (
    intent_pos INTEGER NOT NULL REFERENCES intents (pos),
    seq INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT,
    details TEXT,                            -- JSON object or NULL
    PRIMARY KEY (intent_pos, seq)
) WITHOUT ROWID;

CREATE TABLE steps (
    intent_pos INTEGER NOT NULL REFERENCES intents (pos),
    ordinal INTEGER NOT NULL,                -- 1-based order in the handler
    step_key TEXT NOT NULL,                  -- name, or name#N for its Nth occurrence
    result TEXT,                             -- JSON
    attempt INTEGER NOT NULL,                -- the delivery attempt that ran it
    at TEXT NOT NULL,
    error TEXT,                              -- JSON: it raised this (result is then NULL)
    undo TEXT,                               -- JSON: the name of its compensation, or NULL
    undone TEXT,                             -- JSON: the compensation's outcome once recorded
    PRIMARY KEY (intent_pos, ordinal)
) WITHOUT ROWID;

CREATE TABLE agents (
    address TEXT NOT NULL,
    spec TEXT NOT NULL,                      -- JSON: command, cwd, env, replicas, ...
    source TEXT NOT NULL,                    -- the axme.toml that declares it, or 'cli'
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',          -- the daemon that runs it ('' on SQLite)
    PRIMARY KEY (owner, address)
);

CREATE TABLE projects (
    config_path TEXT NOT NULL,
    digest TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    hooks TEXT NOT NULL DEFAULT '[]',        -- JSON array: command or webhook, secret, on, cwd
    owner TEXT NOT NULL DEFAULT '',          -- the daemon that applied it ('' on SQLite)
    PRIMARY KEY (owner, config_path)
);
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY,
    intent_pos INTEGER NOT NULL REFERENCES intents (pos),
    ordinal INTEGER,                         -- the handler step it answers; NULL: the intent's own human_task
    spec TEXT NOT NULL,                      -- JSON: task_type, title, form_schema, allowed_outcomes, timing, ...
    status TEXT NOT NULL,                    -- PENDING, DECIDED, TIMED_OUT
    assignee TEXT,
    reminders INTEGER NOT NULL DEFAULT 0,
    deadline_at REAL,                        -- unix time
    decision TEXT,                           -- JSON: outcome, actor, comment, data, at
    created_at TEXT NOT NULL,
    decided_at TEXT
);
CREATE INDEX tasks_status ON tasks (status, created_at);
CREATE INDEX tasks_intent ON tasks (intent_pos);
CREATE INDEX tasks_inbox ON tasks (status, coalesce(deadline_at, 1e18), created_at);

CREATE TABLE timers (
    timer_id INTEGER PRIMARY KEY,
    intent_pos INTEGER NOT NULL REFERENCES intents (pos),
    kind TEXT NOT NULL,                      -- reminder, deadline, wake, wait_timeout, redeliver
    fire_at REAL NOT NULL,                   -- unix time
    task_id TEXT,
    ordinal INTEGER,
    armed_at REAL NOT NULL DEFAULT 0         -- unix time it was set: see 0009_timers_armed
);
CREATE INDEX timers_due ON timers (fire_at);
CREATE INDEX timers_intent ON timers (intent_pos);
CREATE INDEX timers_armed ON timers (armed_at);

CREATE TABLE waits (
    intent_pos INTEGER NOT NULL REFERENCES intents (pos),
    ordinal INTEGER NOT NULL,                -- the handler step that waits
    step_key TEXT NOT NULL,
    kind TEXT NOT NULL,                      -- human, time, signal, child
    target TEXT,                             -- task id, signal name or child intent id
    PRIMARY KEY (intent_pos, ordinal)
) WITHOUT ROWID;
CREATE INDEX waits_target ON waits (kind, target);

CREATE TABLE signals (
    signal_id INTEGER PRIMARY KEY,
    intent_pos INTEGER NOT NULL REFERENCES intents (pos),
    name TEXT NOT NULL,
    data TEXT,                               -- JSON
    taken_by INTEGER,                        -- the ordinal of the wait that consumed it
    at TEXT NOT NULL
);
CREATE INDEX signals_pending ON signals (intent_pos, name, taken_by);

CREATE TABLE api_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,           -- sha256 of the key, hex
    scopes TEXT NOT NULL,                    -- JSON array: intents:read, tasks:decide, ...
    created_at TEXT NOT NULL
);

CREATE TABLE workflows (
    intent_pos INTEGER PRIMARY KEY REFERENCES intents (pos),
    scenario_id TEXT,                        -- NULL: an intent's own agent-then-person plan
    plan TEXT NOT NULL,                      -- JSON: the steps by index (scenarios.py)
    step INTEGER,                            -- index of the current step; NULL once ended
    step_attempt INTEGER NOT NULL DEFAULT 1, -- the current step's try, from 1
    entries INTEGER NOT NULL DEFAULT 0,      -- steps entered so far
    results TEXT NOT NULL DEFAULT '{}'       -- JSON: step_id -> what the step gave
);

-- Agents killed through the mesh API (AXME's kill switch): no new intents to or from them,
-- and no delivery stream for them, until resumed. Any address, registered or not.
CREATE TABLE killed_agents (
    address TEXT PRIMARY KEY,
    killed_at TEXT NOT NULL,
    actor TEXT NOT NULL
);

-- AXME inbox threads: one per intent sent with a `reply_to` address (its owner), its entries
-- in order: the send, the completion delivered, replies, delegations, deletions. `owner` is
-- the thread's owner after each entry (a delegation moves it); `pos` is the changes feed's
-- cursor.
CREATE TABLE inbox_entries (
    pos INTEGER PRIMARY KEY,
    intent_pos INTEGER NOT NULL REFERENCES intents (pos),
    message_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,                      -- sent, completed, reply, delegated, deleted
    owner TEXT NOT NULL,
    actor TEXT,
    at TEXT NOT NULL,
    details TEXT,                            -- JSON: message, delegate_to, note, status, ...
    deleted_at TEXT                          -- a deleted reply keeps its place, not its text
);
CREATE INDEX inbox_entries_thread ON inbox_entries (intent_pos, pos);
CREATE INDEX inbox_entries_owner ON inbox_entries (owner, pos);

-- Daemons sharing the database: a lease lapses once its daemon's heartbeat is older than
-- that daemon's lease grace.
CREATE TABLE daemons (
    daemon_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    home TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at REAL NOT NULL,                  -- unix time, the database's clock
    lease_grace REAL NOT NULL,                   -- its leases lapse this long after its heartbeat
    listening TEXT NOT NULL DEFAULT '[]'         -- JSON array: addresses its workers listen for
);
