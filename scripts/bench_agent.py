"""The agent `scripts/bench_agents.py` measures: one step, or a step that hangs on attempt 1."""

import os
import time

from axme_cli.agent import Agent

agent = Agent(os.environ["AXME_AGENT"])


def work(hang: bool) -> dict:
    if hang:
        time.sleep(60)  # SIGKILLed here
    return {"ok": True}


@agent.handler("intent.bench.one.v1")
def one(ctx):
    hang = bool(ctx.payload.get("hang")) and ctx.attempt == 1
    if hang:
        ctx.progress("hanging")
    return ctx.step("work", work, hang)


agent.run()
