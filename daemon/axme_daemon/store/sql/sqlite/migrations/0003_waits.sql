-- Durable waits: human tasks, timers, signals, and handler steps waiting on any of them.
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

CREATE TABLE timers (
    timer_id INTEGER PRIMARY KEY,
    intent_pos INTEGER NOT NULL REFERENCES intents (pos),
    kind TEXT NOT NULL,                      -- reminder, deadline, wake, wait_timeout
    fire_at REAL NOT NULL,                   -- unix time
    task_id TEXT,
    ordinal INTEGER
);
CREATE INDEX timers_due ON timers (fire_at);

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
