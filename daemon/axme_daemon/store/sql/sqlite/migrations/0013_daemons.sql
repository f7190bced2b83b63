-- Several daemons on one database (PostgreSQL; SQLite keeps one per file, and the same
-- tables): each daemon registers itself and heartbeats; a lease names the daemon whose worker
-- holds it, and lapses when that daemon's heartbeat is older than its lease grace; each
-- daemon's agents and projects are its own (`owner`: the daemon id, '' on SQLite).
CREATE TABLE daemons (
    daemon_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    home TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at REAL NOT NULL,              -- unix time, the database's clock
    lease_grace REAL NOT NULL                -- its leases lapse this long after its heartbeat
);
ALTER TABLE intents ADD COLUMN lease_daemon TEXT;
CREATE INDEX intents_lease_daemon ON intents (lease_daemon) WHERE lease_worker IS NOT NULL;

CREATE TABLE agents_owned (
    address TEXT NOT NULL,
    spec TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (owner, address)
);
INSERT INTO agents_owned (address, spec, source, created_at, updated_at)
SELECT address, spec, source, created_at, updated_at FROM agents;
DROP TABLE agents;
ALTER TABLE agents_owned RENAME TO agents;

CREATE TABLE projects_owned (
    config_path TEXT NOT NULL,
    digest TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    hooks TEXT NOT NULL DEFAULT '[]',
    owner TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (owner, config_path)
);
INSERT INTO projects_owned (config_path, digest, applied_at, hooks)
SELECT config_path, digest, applied_at, hooks FROM projects;
DROP TABLE projects;
ALTER TABLE projects_owned RENAME TO projects;
