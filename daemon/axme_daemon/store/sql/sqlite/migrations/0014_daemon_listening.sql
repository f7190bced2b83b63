-- The addresses a daemon's workers listen for now (a JSON array), so that every daemon
-- sharing the store knows an agent that only another one serves.
ALTER TABLE daemons ADD COLUMN listening TEXT NOT NULL DEFAULT '[]';
