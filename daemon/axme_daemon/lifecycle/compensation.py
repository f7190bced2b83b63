"""Sagas: an intent that does not complete undoes its steps first, as durably as it did them.

A step recorded with a compensation (`ctx.step(name, fn, compensate=undo)`) carries the
undo's name (`steps.undo`). When such an intent would end FAILED, CANCELED or TIMED_OUT
(its handler failed, its attempts ran out, it was canceled, a person rejected it where the
handler asked to compensate, a deadline passed), `end` does not end it: it keeps the status
and event it will end with in `intent.saga`, and queues it again for its agent. The worker
that takes that delivery runs the handler's compensation phase (`axme_cli/agent/saga.py`)
and reports each compensation's outcome, last step first, one at a time; each is recorded
on its step (`steps.undone`) once, so none runs again after its record, whatever crashes.
The record of the last ends the intent as it was going to end, with `compensated: true`.

A compensation that keeps failing stops the saga: a human task ("manual compensation
needed": what ran, what failed, the error) lets a person retry it, skip it or mark it done,
and the intent waits for that decision.

Phases of `intent.saga["phase"]`:

    canceling     a cancel was asked while a worker runs the handler; it stops at its next
                  ctx call, and the intent ends CANCELED (after its compensations)
    compensating  queued or delivered to run the compensations not recorded yet
    stuck         a compensation failed: WAITING_FOR_HUMAN on a manual compensation task
    compensated   every compensation recorded: the intent is final
"""

from __future__ import annotations

import time
from typing import Any

from axme_cli.errors import BadInput, Conflict
from axme_cli.protocol import STATUS_EVENT, IntentStatus
from axme_daemon.intents import Event, Intent, Task, now_iso, redelivery_delay
from axme_daemon.lifecycle.delivery import add_timer
from axme_daemon.lifecycle.timeline import (
    NewEvent,
    apply_change,
    apply_events,
    dump,
    load,
    load_intent,
    row_to_event,
)
from axme_daemon.lifecycle.tx import Row, Tx
from axme_daemon.lifecycle.work import start_work
from axme_daemon.store.base import Effects
from axme_daemon.tasks import TaskSpec

S = IntentStatus
#: The endings that undo an intent's steps first.
UNDOING_ENDS = frozenset({S.FAILED, S.CANCELED, S.TIMED_OUT})
#: A person's answers to a manual compensation task.
OUTCOMES = ("retry", "skip", "mark_done")
#: How often the agent's process may end while compensating before a person is asked.
MAX_CRASHES = 5
_UNDOING = ("compensating", "stuck")


def _rows(tx: Tx, pos: int) -> list[Row]:
    """The steps that carry a compensation, last first."""
    return tx.all("compensations_of", pos=pos)


def _pending(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r["undone"] is None]


def refuse_while_undoing(intent: Intent) -> None:
    """Nothing but its compensations' records and a person's decision ends a saga under way."""
    if intent.saga_phase in _UNDOING:
        ending = (intent.saga or {}).get("ending", {}).get("status", "?")
        raise Conflict(
            f"intent {intent.intent_id} is undoing its steps; it ends {ending} once they are "
            "undone (a compensation that fails asks a person: see axme inbox)",
            details={"intent_id": intent.intent_id, "saga": intent.saga},
        )


def stop(
    tx: Tx,
    pos: int,
    intent: Intent,
    status: IntentStatus,
    *,
    by_agent: bool,
    ask_worker: bool,
    event_type: str | None,
    actor: str | None,
    details: dict[str, Any] | None,
    error: Any,
) -> tuple[Intent, Event]:
    """An ending asked from outside or by the agent: with `ask_worker` (the worker hears
    cancels), a cancel of an intent in progress is asked of its worker
    (`intent.cancel_requested`, phase canceling); any other ending goes through `end`."""
    refuse_while_undoing(intent)
    # Only a handler known to run is asked; one delivered that has not said it started ends
    # at once, as does one whose worker would not hear (its next report is refused).
    if (
        status is S.CANCELED
        and not by_agent
        and ask_worker
        and intent.lease_worker
        and intent.status is S.IN_PROGRESS
    ):
        if intent.saga_phase == "canceling":
            raise Conflict(
                f"a cancel of intent {intent.intent_id} was already asked: its handler stops "
                "at its next ctx call",
                details={"intent_id": intent.intent_id, "saga": intent.saga},
            )
        saga = {"phase": "canceling", "actor": actor, **(details or {})}
        return apply_change(
            tx,
            pos,
            intent,
            intent.status,
            event_type="intent.cancel_requested",
            actor=actor,
            details={**(details or {}), "worker": intent.lease_worker},
            saga=saga,
        )
    return end(
        tx, pos, intent, status, event_type=event_type, actor=actor, details=details, error=error
    )


def end(
    tx: Tx,
    pos: int,
    intent: Intent,
    status: IntentStatus,
    *,
    event_type: str | None = None,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
    error: Any = None,
) -> tuple[Intent, Event]:
    """End an intent that does not complete: at once when none of its steps needs undoing,
    else queued for its compensations (`intent.compensating`, SUBMITTED) with the ending
    kept for when they are done. A canceled intent ends CANCELED whatever stopped it."""
    if intent.saga_phase == "canceling":
        saga = intent.saga or {}
        status, event_type, actor = S.CANCELED, None, saga.get("actor")
        details, error = {k: saga[k] for k in ("reason",) if saga.get(k)}, None
    changes: dict[str, Any] = {"error": error} if error is not None else {}
    pending = _pending(_rows(tx, pos))
    if not pending:
        return apply_change(
            tx,
            pos,
            intent,
            status,
            event_type=event_type,
            actor=actor,
            details=details,
            waiting_reason=None,
            lease_worker=None,
            saga=None,
            **changes,
        )
    ending = {
        "status": status.value,
        "event_type": event_type or STATUS_EVENT[status],
        "actor": actor,
        "details": details or None,
    }
    said: dict[str, Any] = {"ending": status.value, "compensations": _keys(pending)}
    reason = _reason(details, error)
    if reason:
        said["reason"] = reason
    _stop_waiting(tx, pos)
    return apply_change(
        tx,
        pos,
        intent,
        S.SUBMITTED,
        event_type="intent.compensating",
        actor=actor,
        details=said,
        waiting_reason=None,
        lease_worker=None,
        saga={"phase": "compensating", "ending": ending, "crashes": 0},
        **changes,
    )


def _keys(rows: list[Row]) -> list[str]:
    return [str(r["step_key"]) for r in rows]


def _reason(details: dict[str, Any] | None, error: Any) -> str | None:
    reason = (details or {}).get("reason")
    if reason is None and isinstance(error, dict):
        reason = error.get("message")
    return None if reason is None else str(reason)


def _stop_waiting(tx: Tx, pos: int) -> None:
    """What the intent waited for no longer matters: its tasks close, its waits go."""
    tx.write("close_open_tasks", pos=pos)
    tx.write("drop_waits", pos=pos)
    tx.write("drop_timers", pos=pos)


def record(
    tx: Tx,
    intent_id: str,
    key: str,
    outcome: dict[str, Any],
    worker_id: str | None,
) -> tuple[tuple[Intent, Effects], list[str]]:
    """A worker ran the compensation of step `key` (`outcome["ok"]`, its `result`), or gave
    up on it after its retries (`error`, `attempts`). Recorded once: the same record again
    changes nothing. The last one ends the intent; a failure asks a person."""
    effects = Effects()
    pos, intent = load_intent(tx, intent_id)
    rows = _rows(tx, pos)
    row = next((r for r in rows if r["step_key"] == key), None)
    if row is None:
        raise BadInput(
            f"key: step {key!r} of intent {intent_id} has no compensation",
            details={"intent_id": intent_id, "key": key},
        )
    if row["undone"] is not None:  # sent again (its answer was lost): already recorded
        return (intent, effects), []
    pos, intent, started = start_work(tx, intent_id, worker_id, undoing=True)
    if intent.saga_phase != "compensating":
        raise Conflict(
            f"intent {intent_id} is not compensating (it is {intent.status.value})",
            details={"intent_id": intent_id, "saga": intent.saga},
        )
    said: dict[str, Any] = {"step": key, "undo": row["undo"]}
    if not outcome.get("ok"):
        error = dict(outcome.get("error") or {})
        said |= {"outcome": "failed", "attempts": int(outcome.get("attempts") or 1)}
        said["error"] = {k: error.get(k) for k in ("type", "message")}
        event = ("intent.compensation", S.IN_PROGRESS, None, said)
        updated = _stuck(tx, pos, intent, row, rows, error, [*started, event], effects)
        return (updated, effects), [intent_id]
    undone = {
        "outcome": "compensated",
        "result": outcome.get("result"),
        "attempt": intent.delivery_attempt,
        "at": now_iso(),
    }
    _set_undone(tx, pos, row, undone)
    event = ("intent.compensation", S.IN_PROGRESS, None, {**said, "outcome": "compensated"})
    if len(_pending(rows)) > 1:
        updated, _ = apply_events(tx, pos, intent, S.IN_PROGRESS, [*started, event])
    else:
        updated = _finish(tx, pos, intent, [*started, event])
        effects.finished.append(updated)
    return (updated, effects), [intent_id]


def _set_undone(tx: Tx, pos: int, row: Row, undone: dict[str, Any]) -> None:
    tx.write("set_undone", pos=pos, ordinal=row["ordinal"], undone=dump(undone))


def _finish(tx: Tx, pos: int, intent: Intent, before: list[NewEvent]) -> Intent:
    """Every compensation is recorded: the intent ends as it was going to, compensated
    (`intent.compensated` says how each step was undone: compensated, skipped, marked_done)."""
    saga = intent.saga or {}
    ending = saga.get("ending") or {}
    status = S(ending.get("status", S.FAILED.value))
    outcomes: dict[str, list[str]] = {}
    for r in _rows(tx, pos):
        done = load(r["undone"]) or {}
        outcomes.setdefault(str(done.get("outcome")), []).append(r["step_key"])
    details = {**(ending.get("details") or {}), "compensated": True}
    events: list[NewEvent] = [
        *before,
        ("intent.compensated", S.IN_PROGRESS, None, {"ending": status.value, **outcomes}),
        (ending.get("event_type") or STATUS_EVENT[status], status, ending.get("actor"), details),
    ]
    updated, _ = apply_events(
        tx,
        pos,
        intent,
        status,
        events,
        saga={"phase": "compensated", "ending": ending},
        waiting_reason=None,
        lease_worker=None,
    )
    return updated


def _stuck(
    tx: Tx,
    pos: int,
    intent: Intent,
    row: Row,
    rows: list[Row],
    error: dict[str, Any],
    before: list[NewEvent],
    effects: Effects,
) -> Intent:
    """A compensation failed for good: a person decides (retry, skip, mark_done)."""
    from axme_daemon.lifecycle.human import create_task  # human.py decides through here

    key, undo = str(row["step_key"]), str(row["undo"])
    saga = {**(intent.saga or {}), "phase": "stuck", "step": key}
    updated, _ = apply_events(tx, pos, intent, S.IN_PROGRESS, before, saga=saga)
    ending = (intent.saga or {}).get("ending", {}).get("status")
    spec = TaskSpec.model_validate(
        {
            "task_type": "manual_action",
            "title": f"Manual compensation needed: {undo} for step {key}"[:255],
            "description": (
                f"The compensation {undo} of step {key} failed. retry: run it again; skip: leave "
                "it undone; mark_done: it was undone by hand. Then the saga goes on, and the "
                f"intent ends {ending}."
            ),
            "details": {
                "intent_id": intent.intent_id,
                "step": key,
                "undo": undo,
                "error": error,
                "compensated": [r["step_key"] for r in rows if r["undone"] is not None],
                "still_to_undo": [k for k in _keys(_pending(rows)) if k != key],
                "ending": ending,
            },
            "allowed_outcomes": list(OUTCOMES),
            "compensation": {"step": key},
        }
    )
    waiting, _ = create_task(tx, pos, updated, spec, None, effects)
    return waiting


def decided(tx: Tx, pos: int, task: Task, decision: dict[str, Any], effects: Effects) -> None:
    """A person answered a manual compensation task: run it again, or record it skipped or
    done by hand and go on with the next (or end the intent, when it was the last)."""
    _, intent = load_intent(tx, task.intent_id)
    if intent.saga_phase != "stuck":
        return
    actor = decision.get("actor")
    key = str(task.spec.get("compensation", {}).get("step"))
    rows = _rows(tx, pos)
    before: list[NewEvent] = []
    row = next((r for r in rows if r["step_key"] == key), None)
    if decision["outcome"] != "retry" and row is not None and row["undone"] is None:
        outcome = "skipped" if decision["outcome"] == "skip" else "marked_done"
        done = {"outcome": outcome, "actor": actor, "at": now_iso()}
        if decision.get("comment"):
            done["comment"] = decision["comment"]
        _set_undone(tx, pos, row, done)
        said = {"step": key, "undo": row["undo"], "outcome": outcome}
        before.append(("intent.compensation", S.WAITING, actor, said))
    pending = [r for r in _pending(rows) if decision["outcome"] == "retry" or r is not row]
    if not pending:
        effects.finished.append(_finish(tx, pos, intent, before))
        effects.touched.add(intent.intent_id)
        return
    reason = f"{decision['outcome']} by {actor}"
    said = {"reason": reason, "compensations": _keys(pending)}
    before.append(("intent.compensating", S.SUBMITTED, actor, said))
    saga = {**(intent.saga or {}), "phase": "compensating", "crashes": 0}
    saga.pop("step", None)
    updated, _ = apply_events(
        tx, pos, intent, S.SUBMITTED, before, saga=saga, waiting_reason=None, lease_worker=None
    )
    effects.requeued.append(updated)
    effects.touched.add(intent.intent_id)


def released(
    tx: Tx, pos: int, intent: Intent, reason: str, details: dict[str, Any] | None
) -> tuple[Intent, Event]:
    """A compensation delivery ended without its records (the process died, the daemon
    restarted): delivered again after a backoff; after `MAX_CRASHES`, a person decides."""
    saga = intent.saga or {}
    crashes = int(saga.get("crashes") or 0) + 1
    said = {"reason": reason, "compensating": True, "crashes": crashes, **(details or {})}
    if crashes >= MAX_CRASHES:
        rows = _rows(tx, pos)
        row = _pending(rows)[0]
        error = {"message": f"the agent stopped {crashes} times while compensating: {reason}"}
        event = ("intent.compensation", S.IN_PROGRESS, None, {"step": row["step_key"], **said})
        waiting = _stuck(tx, pos, intent, row, rows, error, [event], Effects())
        return waiting, Event(intent.intent_id, waiting.last_seq, "", S.WAITING, now_iso())
    delay = redelivery_delay(crashes)
    saga = {**saga, "crashes": crashes}
    if delay <= 0:
        return apply_change(
            tx, pos, intent, S.SUBMITTED, details=said, lease_worker=None, saga=saga
        )
    add_timer(tx, pos, "redeliver", time.time() + delay)
    return apply_change(
        tx,
        pos,
        intent,
        S.WAITING,
        details={**said, "redeliver_in_seconds": delay},
        waiting_reason="WAITING_FOR_TIME",
        lease_worker=None,
        saga=saga,
    )


def retry_stuck(tx: Tx, pos: int, intent: Intent, actor: str | None) -> tuple[Intent, Event]:
    """`axme retry` of an intent whose compensation failed: its task is decided "retry"."""
    from axme_daemon.lifecycle.human import decide  # human.py decides through here

    tasks = tx.all("open_tasks_of", pos=pos)
    task = next((t for t in tasks if (load(t["spec"]) or {}).get("compensation")), None)
    if task is None:
        raise Conflict(
            f"intent {intent.intent_id} has no open manual compensation task",
            details={"intent_id": intent.intent_id, "saga": intent.saga},
        )
    decide(tx, task["task_id"], "retry", actor or "axme", None, {})
    _, updated = load_intent(tx, intent.intent_id)
    row = tx.one("events_since", intent_id=intent.intent_id, since=updated.last_seq - 1, limit=1)
    assert row is not None
    return updated, row_to_event(intent.intent_id, row)
