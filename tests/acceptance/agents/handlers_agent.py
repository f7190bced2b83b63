"""Handlers that go wrong in the ways users' handlers do."""

import os

from axme_cli.agent import Agent, RetryableError

agent = Agent(os.environ["AXME_AGENT"])


@agent.handler("intent.test.set.v1")
def returns_a_set(ctx):
    ctx.step("collect", lambda: {1, 2, 3})
    return {"unreachable": True}


@agent.handler("intent.test.flaky.v1")
def flaky(ctx):
    if ctx.attempt == 1:
        raise RetryableError("the upstream is not ready yet")
    return {"ok": True, "attempt": ctx.attempt}


@agent.handler("intent.test.boom.v1")
def boom(ctx):
    raise ValueError(f"bad row {ctx.payload.get('row')}")


agent.run()
