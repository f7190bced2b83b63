-- Growth: what a big store must not scan. The inbox (pending tasks, nearest deadline first)
-- reads its first page from an index instead of sorting every pending task; the daemon's
-- start reads the last delivery cursor from an index instead of scanning every intent.
CREATE INDEX tasks_inbox ON tasks (status, coalesce(deadline_at, 1e18), created_at);
CREATE INDEX intents_delivery_seq ON intents (delivery_seq);
