-- Ending an intent drops its timers (and a wait that ends, its own): find them by intent
-- instead of scanning every pending timer.
CREATE INDEX timers_intent ON timers (intent_pos);
