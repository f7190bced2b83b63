-- Several daemons on one database: each daemon registers itself and heartbeats; a lease
-- names the daemon whose worker holds it, and lapses when that daemon's heartbeat is older
-- than its lease grace; each daemon's agents and projects are its own (`owner`: its id).
-- Delivery cursors come from a sequence: unique across daemons.
CREATE TABLE daemons (
    daemon_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    home TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,  -- unix time, the database's clock
    lease_grace DOUBLE PRECISION NOT NULL    -- its leases lapse this long after its heartbeat
);
ALTER TABLE intents ADD COLUMN lease_daemon TEXT;
CREATE INDEX intents_lease_daemon ON intents (lease_daemon) WHERE lease_worker IS NOT NULL;
CREATE SEQUENCE delivery_seq;
SELECT setval('delivery_seq', greatest((SELECT max(delivery_seq) FROM intents), 1));

ALTER TABLE agents ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE agents DROP CONSTRAINT agents_pkey;
ALTER TABLE agents ADD CONSTRAINT agents_pkey PRIMARY KEY (owner, address);
ALTER TABLE projects ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE projects DROP CONSTRAINT projects_pkey;
ALTER TABLE projects ADD CONSTRAINT projects_pkey PRIMARY KEY (owner, config_path);
