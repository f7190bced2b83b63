"""A saga: book, charge, (maybe ask a person, maybe work a while), notify; on failure the
charge and the booking are undone, last first.

Every real run of a step or a compensation is appended to STEP_LOG ("do" / "undo"), so tests
can tell a replay from a re-run. Files in SAGA_DIR steer it, per intent and step name:
`fail-notify` makes notify raise; `hold-<name>` (`hold-undo-<name>`) holds that step (that
compensation) until the file is gone; `down-<name>` makes that compensation raise;
`kill-<name>` SIGKILLs the process as that compensation starts, `kill-after-<name>` once it
has done its work but before it returns (once each: the file goes first).
"""

import json
import os
import signal
import time
from pathlib import Path

from axme_cli.agent import Agent, IntentCanceled

agent = Agent(os.environ["AXME_AGENT"])
LOG = os.environ["STEP_LOG"]
DIR = Path(os.environ["SAGA_DIR"])


def log(intent_id: str, event: str, name: str) -> None:
    with open(LOG, "a") as f:
        line = {"intent": intent_id, "event": event, "step": name, "pid": os.getpid()}
        f.write(json.dumps(line) + "\n")


def hold(name: str) -> None:
    deadline = time.monotonic() + 60
    while (DIR / f"hold-{name}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def do(intent_id: str, name: str) -> dict:
    log(intent_id, "start", name)
    hold(name)
    if name == "notify" and (DIR / "fail-notify").exists():
        raise ValueError("the mail server said no")
    log(intent_id, "do", name)
    return {"id": f"{name}-{intent_id[:8]}"}


def undo(result: dict, intent_id: str, name: str) -> dict:
    kill = DIR / f"kill-{name}"
    if kill.exists():
        kill.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    log(intent_id, "undo-start", name)
    hold(f"undo-{name}")
    if (DIR / f"down-{name}").exists():
        raise ConnectionError(f"{name} service unreachable")
    log(intent_id, "undo", name)
    died = DIR / f"kill-after-{name}"
    if died.exists():  # done, but its record never leaves: the next delivery runs it again
        died.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"undid": result["id"]}


@agent.handler("intent.test.saga.v1")
def saga(ctx):
    quick = {"compensate_retries": 1, "backoff": 0.05}
    booking = ctx.step("book", do, ctx.intent_id, "book", compensate=undo, **quick)
    charge = ctx.step("charge", do, ctx.intent_id, "charge", compensate=undo, **quick)
    if ctx.payload.get("approval"):
        ctx.request_approval("Ship it?", details={"charge": charge}, on_reject="compensate")
    try:
        if ctx.payload.get("work"):
            ctx.step("work", do, ctx.intent_id, "work")
        ctx.step("notify", do, ctx.intent_id, "notify")
    except IntentCanceled:
        log(ctx.intent_id, "cleanup", "handler")
        raise
    return {"booking": booking, "charge": charge}


agent.run()
