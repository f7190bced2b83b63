-- Notification hooks: a project's [[hooks]] from its axme.toml, kept with its digest.
ALTER TABLE projects ADD COLUMN hooks TEXT NOT NULL DEFAULT '[]';  -- JSON array of hooks
