-- Keys for people and programs on the TCP listener (`axme keys create`): only a hash of
-- each key is kept, so the database does not hold what would let a reader use one.
CREATE TABLE api_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,           -- sha256 of the key, hex
    scopes TEXT NOT NULL,                    -- JSON array: intents:read, tasks:decide, ...
    created_at TEXT NOT NULL
);
