-- Intents and their append-only event timeline.
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
    updated_at TEXT NOT NULL
);

CREATE INDEX intents_status ON intents (status, pos);
CREATE INDEX intents_to_agent ON intents (to_agent, pos);
CREATE INDEX intents_intent_type ON intents (intent_type, pos);

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
