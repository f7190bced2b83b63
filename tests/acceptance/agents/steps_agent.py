"""A 4-step agent for crash tests: logs every step start and end with the delivery attempt.

Payload: `block_at` (a step that hangs on the first attempt, so a test can kill the process
during it), `step_seconds` (how long each step takes), `steps` (how many, default 4).
`intent.test.long.v1` works through `ticks` short steps and logs "stopped" when a cancel
stops it.
"""

import json
import os
import time

from axme_cli.agent import Agent, IntentCanceled

agent = Agent(os.environ["AXME_AGENT"])
LOG = os.environ["STEP_LOG"]


def note(**fields: object) -> None:
    with open(LOG, "a") as f:
        f.write(json.dumps({**fields, "pid": os.getpid()}) + "\n")


def work(n: int, intent_id: str, attempt: int, seconds: float, hang: bool) -> dict:
    note(intent=intent_id, step=n, attempt=attempt, event="start")
    if hang:
        time.sleep(60)  # the test SIGKILLs us here
    time.sleep(seconds)
    note(intent=intent_id, step=n, attempt=attempt, event="end")
    return {"step": n, "pid": os.getpid()}


@agent.handler("intent.test.steps.v1")
def steps(ctx):
    block_at = ctx.payload.get("block_at")
    seconds = float(ctx.payload.get("step_seconds", 0))
    for n in range(1, int(ctx.payload.get("steps", 4)) + 1):
        hang = n == block_at and ctx.attempt == 1
        ctx.step(f"s{n}", work, n, ctx.intent_id, ctx.attempt, seconds, hang)
    return {"done": True, "attempt": ctx.attempt}


@agent.handler("intent.test.long.v1")
def long_work(ctx):
    ticks = int(ctx.payload["ticks"])
    try:
        for n in range(1, ticks + 1):
            ctx.step(f"t{n}", work, n, ctx.intent_id, ctx.attempt, 0.05, False)
    except IntentCanceled:
        note(intent=ctx.intent_id, event="stopped", attempt=ctx.attempt)
        raise
    return {"ticks": ticks}


agent.run()
