"""An agent whose handlers wait durably: for a person, a timer, a signal, a child intent.

Every real step execution is appended to STEP_LOG, so tests can tell a replay from a re-run.
"""

import json
import os

from axme_cli.agent import Agent

agent = Agent(os.environ["AXME_AGENT"])
LOG = os.environ["STEP_LOG"]


def ran(intent_id: str, step: str) -> str:
    with open(LOG, "a") as f:
        f.write(json.dumps({"intent": intent_id, "step": step, "pid": os.getpid()}) + "\n")
    return step


@agent.handler("intent.test.approval.v1")
def change(ctx):
    plan = ctx.step("validate", ran, ctx.intent_id, "validate")
    options = ctx.payload.get("task", {})
    decision = ctx.request_approval("Apply migration?", details={"plan": plan}, **options)
    if not decision.approved:
        return {"status": "rejected", "by": decision.actor, "comment": decision.comment}
    applied = ctx.step("apply", ran, ctx.intent_id, "apply")
    return {"status": applied, "by": decision.actor, "comment": decision.comment}


@agent.handler("intent.test.quick.v1")
def quick(ctx):
    return {"quick": ctx.step("quick", ran, ctx.intent_id, "quick")}


@agent.handler("intent.test.sleep.v1")
def nap(ctx):
    ctx.step("before", ran, ctx.intent_id, "before")
    ctx.sleep(ctx.payload.get("seconds", 1))
    return {"after": ctx.step("after", ran, ctx.intent_id, "after")}


@agent.handler("intent.test.signal.v1")
def wait_signal(ctx):
    ctx.step("before", ran, ctx.intent_id, "before")
    got = ctx.wait_for_event("go", timeout=ctx.payload.get("timeout"))
    return {"signal": got}


@agent.handler("intent.test.parent.v1")
def parent(ctx):
    ctx.step("before", ran, ctx.intent_id, "before")
    child = ctx.call(os.environ["AXME_AGENT"], "intent.test.quick.v1", {"from": ctx.intent_id})
    return {"child": child}


agent.run()
