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

-- Daemons sharing the database: a lease lapses once its daemon's heartbeat is older than
-- that daemon's lease grace.
CREATE TABLE daemons (
    daemon_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    home TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at REAL NOT NULL,                  -- unix time, the database's clock
    lease_grace REAL NOT NULL                    -- its leases lapse this long after its heartbeat
);
