-- Sagas: a step may carry its compensation (the undo's name, JSON), whose outcome is
-- recorded on the step once it ran, was skipped or was done by hand; an intent that must
-- undo its steps before it ends keeps the saga's state (phase, ending, ...) as JSON.
ALTER TABLE intents ADD COLUMN saga TEXT;
ALTER TABLE steps ADD COLUMN undo TEXT;
ALTER TABLE steps ADD COLUMN undone TEXT;
