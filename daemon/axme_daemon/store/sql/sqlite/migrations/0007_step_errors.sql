-- A step whose function raised, and whose handler went on (it caught the exception): the
-- failure is recorded so that a replay raises it again instead of running the step.
ALTER TABLE steps ADD COLUMN error TEXT;
