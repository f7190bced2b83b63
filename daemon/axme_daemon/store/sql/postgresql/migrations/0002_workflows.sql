-- A workflow run on one intent: a scenario's steps, or an intent's own agent-then-person
-- order. The step engine (lifecycle/scenarios.py) moves `step` along; `entries` counts the
-- steps entered, so a timer armed for an earlier step finds it moved on and does nothing.
CREATE TABLE workflows (
    intent_pos BIGINT PRIMARY KEY REFERENCES intents (pos),
    scenario_id TEXT,                        -- NULL: an intent's own agent-then-person plan
    plan TEXT NOT NULL,                      -- JSON: the steps by index (scenarios.py)
    step BIGINT,                             -- index of the current step; NULL once ended
    step_attempt BIGINT NOT NULL DEFAULT 1, -- the current step's try, from 1
    entries BIGINT NOT NULL DEFAULT 0,      -- steps entered so far
    results TEXT NOT NULL DEFAULT '{}'       -- JSON: step_id -> what the step gave
);
