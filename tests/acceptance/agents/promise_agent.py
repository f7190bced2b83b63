"""An agent whose handlers probe the step and attempt promises.

Every real step execution is appended to STEP_LOG (intent, step, attempt), so a test can tell
a replay from a re-run. Files under MARKS (the test's dir) switch behaviour between deliveries.
"""

import json
import os
import sys
from pathlib import Path

from axme_cli.agent import Agent

agent = Agent(os.environ["AXME_AGENT"])
LOG = os.environ["STEP_LOG"]
MARKS = Path(os.environ["MARKS"])


class CardDeclined(Exception):
    """A step's own failure, which the handler catches and handles."""


def ran(intent_id: str, step: str, attempt: int) -> str:
    with open(LOG, "a") as f:
        f.write(json.dumps({"intent": intent_id, "step": step, "attempt": attempt}) + "\n")
    return step


def once(name: str) -> bool:
    """True the first time `name` is asked for (a file under MARKS remembers)."""
    mark = MARKS / name
    if mark.exists():
        return False
    mark.write_text("1")
    return True


@agent.handler("intent.test.fail_then_fixed.v1")
def fail_then_fixed(ctx):
    """Steps a and b, then a failure until the test creates MARKS/fixed."""
    ctx.step("a", ran, ctx.intent_id, "a", ctx.attempt)
    ctx.step("b", ran, ctx.intent_id, "b", ctx.attempt)
    if not (MARKS / "fixed").exists():
        raise ValueError("the source is not reachable")
    ctx.step("c", ran, ctx.intent_id, "c", ctx.attempt)
    return {"attempt": ctx.attempt}


@agent.handler("intent.test.sleepy.v1")
def sleepy(ctx):
    """`sleeps` durable sleeps, then one crash of the process (once), then done."""
    for n in range(int(ctx.payload["sleeps"])):
        ctx.step(f"work{n}", ran, ctx.intent_id, f"work{n}", ctx.attempt)
        ctx.sleep(0.05, key=f"nap{n}")
    if once(f"crash-{ctx.intent_id}"):
        os._exit(1)
    return {"attempt": ctx.attempt}


@agent.handler("intent.test.nap.v1")
def nap(ctx):
    """One long durable sleep (the test looks at the intent while it waits)."""
    ctx.sleep(600)
    return {"attempt": ctx.attempt}


@agent.handler("intent.test.poison.v1")
def poison(ctx):
    """Kills its process (exit code 3, a line on stderr) when the payload says so."""
    if ctx.payload.get("poison"):
        print(f"poison pill in {ctx.intent_id}: giving up", file=sys.stderr, flush=True)
        os._exit(3)
    return {"ok": ctx.step("ok", ran, ctx.intent_id, "ok", ctx.attempt)}


def charge(intent_id: str, attempt: int) -> None:
    ran(intent_id, "charge", attempt)
    raise CardDeclined("card declined")


@agent.handler("intent.test.catch.v1")
def catch(ctx):
    """A raising step caught by the handler, then steps after it; one crash after them."""
    try:
        ctx.step("charge", charge, ctx.intent_id, ctx.attempt)
        paid = True
    except CardDeclined as exc:
        paid = False
        ctx.step("notify", ran, ctx.intent_id, f"notify: {exc}", ctx.attempt)
    ctx.step("release", ran, ctx.intent_id, "release", ctx.attempt)
    if ctx.payload.get("crash") and once(f"crash-{ctx.intent_id}"):
        ctx.progress("about to crash")  # the records above are in the store before it
        os._exit(1)
    return {"paid": paid, "attempt": ctx.attempt}


agent.run()
