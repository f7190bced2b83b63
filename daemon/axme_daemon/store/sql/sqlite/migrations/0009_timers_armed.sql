-- When each timer was armed (unix time). A timer armed after `now` means the wall clock went
-- back since: it is brought forward to fire at most its own duration from `now`, instead of
-- waiting out the step. Timers armed before this migration keep 0: never brought forward.
ALTER TABLE timers ADD COLUMN armed_at REAL NOT NULL DEFAULT 0;
CREATE INDEX timers_armed ON timers (armed_at);
