"""A one-step agent: echoes its payload through a recorded step.

Prints a line when it starts (so `axme agents logs` has something to show) and reports
whether it was given a SECRET in its environment, without ever printing the value.
"""

import os

from axme_cli.agent import Agent

agent = Agent(os.environ["AXME_AGENT"])
print(f"echo agent starting (pid {os.getpid()})", flush=True)


@agent.handler("intent.test.echo.v1")
def echo(ctx):
    echoed = ctx.step("echo", dict, ctx.payload)
    return {"echo": echoed, "attempt": ctx.attempt, "has_secret": "SECRET" in os.environ}


agent.run()
