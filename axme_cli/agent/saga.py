"""The compensation phase of a handler: undo the recorded steps of an intent that did not
complete, last first, each recorded in the daemon before the next starts.

How a worker finds the undo functions. A compensation is code in the handler's module,
often a closure over the step's arguments (`compensate=lambda booking: ...`, a bound
method, `refund` called with the step's `*args`): it cannot be stored, and naming it in a
registry would also need its arguments stored as JSON. So the daemon stores only which
steps have a compensation (and its name, for people), and a compensation delivery
(`phase: compensate`) makes the worker replay the handler over its record: every step and
wait returns its recorded result without running, and each `ctx.step(..., compensate=undo)`
registers `undo` with the arguments it is called with on that replay, under the step's key
(`name`, `name#2`, ...). The first step or wait past the record ends the replay
(`ReplayEnd`), so no new work starts; an exception the handler raises on the way (the
failure that stopped it, most likely) ends it too.

Crash safety: replaying runs no step, so it may happen any number of times. Each
compensation's outcome is sent (and committed by the daemon) before the next starts; the
delivery lists the ones already recorded, which never run again. A crash during a
compensation runs it again on the next delivery: compensations, like steps, are
at-least-once, so they must be idempotent (refund by the charge's id, not "refund 10").

A recorded compensation that the replay did not register (the handler changed, or no
longer passes `compensate=`) is reported as a failure: a person decides, as for one that
keeps raising.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from axme_cli.agent.context import (
    Context,
    IntentCanceled,
    ReplayEnd,
    Suspended,
    Undo,
    failure_record,
)

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient

log = logging.getLogger("axme.agent")


def replay(handler: Callable[..., Any], ctx: Context) -> None:
    """Run the handler over its record only, so that its steps register their undos."""
    try:
        if inspect.iscoroutinefunction(handler):
            asyncio.run(handler(ctx))
        else:
            handler(ctx)
    except (ReplayEnd, Suspended, IntentCanceled):
        pass
    except Exception as exc:  # what stopped it on its delivery, most likely
        log.info("%s: the replay ended with %s: %s", ctx.intent_id, type(exc).__name__, exc)


def pending(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded steps whose compensation has not been recorded, last first."""
    ordered = sorted(steps, key=lambda s: int(s["ordinal"]), reverse=True)
    return [s for s in ordered if s.get("compensate") and s.get("compensation") is None]


def compensate(client: DaemonClient, ctx: Context, steps: list[dict[str, Any]]) -> None:
    """Run and record each pending compensation; stop at the first that fails for good (the
    daemon then asks a person)."""
    for step in pending(steps):
        key = str(step["key"])
        undo = ctx.undo.get(key)
        if undo is None:
            error = {
                "type": "CompensationNotFound",
                "message": (
                    f"replaying the handler did not reach step {key!r} with "
                    f"compensate={step['compensate']}: the handler changed, or no longer "
                    "passes compensate= there"
                ),
            }
            client.record_compensation(ctx.intent_id, {"key": key, "ok": False, "error": error})
            return
        outcome = run(undo, step.get("result"))
        log.info("%s: compensation of %s: %s", ctx.intent_id, key, outcome["ok"])
        client.record_compensation(ctx.intent_id, {"key": key, **outcome})
        if not outcome["ok"]:
            return


def run(undo: Undo, result: Any) -> dict[str, Any]:
    """`undo(result, *args)` with its retries and backoff: what became of it."""
    for attempt in range(undo.retries + 1):
        try:
            value = undo.fn(result, *undo.args)
            if inspect.isawaitable(value):
                value = asyncio.run(_awaited(value))
            return {"ok": True, "result": _json_or_none(value), "attempts": attempt + 1}
        except Exception as exc:
            if attempt >= undo.retries:
                return {"ok": False, "error": failure_record(exc), "attempts": attempt + 1}
            time.sleep(undo.backoff * 2**attempt)
    raise AssertionError("unreachable")


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


def _json_or_none(value: Any) -> Any:
    """What the compensation returned, when it can be recorded as JSON."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return None
