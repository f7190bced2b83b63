-- Delivery to agents: leases, a per-delivery cursor, memoized steps, and the agent registry.
ALTER TABLE intents ADD COLUMN delivery_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE intents ADD COLUMN lease_worker TEXT;

CREATE INDEX intents_queue ON intents (to_agent, status, pos);
CREATE INDEX intents_lease ON intents (lease_worker) WHERE lease_worker IS NOT NULL;

CREATE TABLE steps (
    intent_pos INTEGER NOT NULL REFERENCES intents (pos),
    ordinal INTEGER NOT NULL,                -- 1-based order in the handler
    step_key TEXT NOT NULL,                  -- name, or name#N for its Nth occurrence
    result TEXT,                             -- JSON
    attempt INTEGER NOT NULL,                -- the delivery attempt that ran it
    at TEXT NOT NULL,
    PRIMARY KEY (intent_pos, ordinal)
) WITHOUT ROWID;

CREATE TABLE agents (
    address TEXT PRIMARY KEY,
    spec TEXT NOT NULL,                      -- JSON: command, cwd, env, replicas, ...
    source TEXT NOT NULL,                    -- the axme.toml that declares it, or 'cli'
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE projects (
    config_path TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
