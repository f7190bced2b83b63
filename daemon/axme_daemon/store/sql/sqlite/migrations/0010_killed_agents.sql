-- Agents killed through the mesh API (AXME's kill switch): no new intents to or from them,
-- and no delivery stream for them, until resumed. Any address, registered or not.
CREATE TABLE killed_agents (
    address TEXT PRIMARY KEY,
    killed_at TEXT NOT NULL,
    actor TEXT NOT NULL
);
