"""A handler step starts a durable wait (human, time, signal or child): the intent goes to
WAITING without a lease, so no process is held, unless the wait is already over."""

from __future__ import annotations

import time
from typing import Any

from axme_cli.errors import AlreadyFinal, Conflict
from axme_cli.protocol import IntentStatus
from axme_daemon.lifecycle.compensation import refuse_while_undoing
from axme_daemon.lifecycle.delivery import add_timer
from axme_daemon.lifecycle.human import create_task
from axme_daemon.lifecycle.timeline import apply_change, check_lease, load, load_intent
from axme_daemon.lifecycle.tx import Tx
from axme_daemon.lifecycle.waits import child_result, record_result, suspend
from axme_daemon.store.base import Effects
from axme_daemon.tasks import TaskSpec

S = IntentStatus


def begin_wait(
    tx: Tx,
    intent_id: str,
    worker_id: str | None,
    ordinal: int,
    key: str,
    kind: str,
    arguments: dict[str, Any],
) -> tuple[tuple[dict[str, Any], Effects], list[str]]:
    """Returns `{"state": "done", "result": ...}` when the wait is already over (a decided
    task, a kept signal), else `{"state": "waiting", ...}`: the worker then lets go."""
    effects = Effects()
    pos, intent = load_intent(tx, intent_id)
    if intent.status.is_final:
        raise AlreadyFinal(f"intent is already {intent.status.value}")
    if worker_id is not None:
        check_lease(intent, worker_id)
    refuse_while_undoing(intent)
    if intent.saga_phase == "canceling":  # the handler stops here instead of waiting
        return ({"state": "canceled", "reason": (intent.saga or {}).get("reason")}, effects), []
    done = tx.one("step_at", pos=pos, ordinal=ordinal)
    if done is not None:
        if done["step_key"] != key:
            raise Conflict(f"step {ordinal} was recorded as {done['step_key']!r}, not {key!r}")
        return ({"state": "done", "result": load(done["result"])}, effects), []
    existing = tx.one("wait_at", pos=pos, ordinal=ordinal)
    if existing is not None:
        return ({"state": "waiting", "target": existing["target"]}, effects), []

    if kind == "signal":
        name = str(arguments["name"])
        kept = tx.one("kept_signal", pos=pos, name=name)
        # it arrived before the wait: kept, not lost (unless another wait just took it)
        if kept is not None and tx.run("take_signal", ordinal=ordinal, signal_id=kept["signal_id"]):
            result = {"name": name, "data": load(kept["data"]), "at": kept["at"]}
            record_result(tx, pos, intent, ordinal, key, result)
            apply_change(
                tx,
                pos,
                intent,
                S.IN_PROGRESS,
                event_type="intent.step_completed",
                details={"step": key, "ordinal": ordinal, "signal": name},
            )
            return ({"state": "done", "result": result}, effects), [intent_id]

    target: str | None
    if kind == "human":
        spec = TaskSpec(**arguments)
        _, task = create_task(tx, pos, intent, spec, ordinal, effects)
        target = task.task_id
    elif kind == "time":
        until = time.time() + float(arguments["seconds"])
        reason = f"sleeping {arguments['seconds']}s"
        suspend(tx, pos, intent, "WAITING_FOR_TIME", reason)
        add_timer(tx, pos, "wake", until, None, ordinal)
        target = None
    elif kind == "signal":
        target = str(arguments["name"])
        reason = f"waiting for signal {target!r}"
        suspend(tx, pos, intent, "WAITING_FOR_TOOL", reason, signal=target)
        if arguments.get("timeout_seconds"):
            fire_at = time.time() + float(arguments["timeout_seconds"])
            add_timer(tx, pos, "wait_timeout", fire_at, None, ordinal)
    elif kind == "child":
        target = str(arguments["child_intent_id"])
        _, child = load_intent(tx, target)
        if child.status.is_final:
            result = child_result(child)
            record_result(tx, pos, intent, ordinal, key, result)
            return ({"state": "done", "result": result}, effects), [intent_id]
        reason = f"waiting for child intent {target}"
        suspend(tx, pos, intent, "WAITING_FOR_AGENT", reason, child_intent_id=target)
    else:
        raise ValueError(f"unknown wait kind {kind!r}")
    tx.write("insert_wait", pos=pos, ordinal=ordinal, step_key=key, kind=kind, target=target)
    effects.touched.add(intent_id)
    return ({"state": "waiting", "target": target}, effects), [intent_id]
