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
