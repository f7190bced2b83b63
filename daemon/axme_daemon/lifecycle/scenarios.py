"""The step engine: a workflow's steps run in order on one intent.

An agent step puts the intent in its agent's queue (`to_agent` becomes that agent); the
agent's `resume` records the step's result and moves on (`on_success`, else the next step).
A person's step opens a task (`lifecycle/human.py`: reminders, deadline, escalation), whose
decision moves on when approved and ends the intent (`reject_status`, CANCELED by default)
or takes `on_failure` when rejected. A failed agent step is tried again (`retry`), then
takes `on_failure`, else fails the intent; a step past its deadline takes `on_failure`, else
ends the intent TIMED_OUT. After the last step the intent is COMPLETED.

The workflow row moves with the intent in the same transaction, conditionally on the state
it was read in; a timer names the step entry it was armed for (`entries`), so one armed for
a step the workflow has left does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from axme_cli.errors import AlreadyFinal, Conflict
from axme_cli.protocol import STATUS_EVENT, IntentStatus
from axme_daemon.intents import Intent, NewIntent, check_agent_outcome
from axme_daemon.lifecycle.delivery import add_timer
from axme_daemon.lifecycle.human import create_task
from axme_daemon.lifecycle.timeline import (
    NewEvent,
    apply_change,
    apply_events,
    check_lease,
    dump,
    load,
    load_intent,
    load_intent_at,
)
from axme_daemon.lifecycle.tx import StaleWrite, Tx
from axme_daemon.lifecycle.work import create, record_steps
from axme_daemon.store.base import Effects
from axme_daemon.tasks import TaskSpec

S = IntentStatus
#: Steps one workflow may enter in all: `on_failure` jumps may loop, not forever.
MAX_ENTRIES = 1000


@dataclass(frozen=True)
class Workflow:
    pos: int
    scenario_id: str | None
    plan: dict[str, Any]
    step: int | None
    step_attempt: int
    entries: int
    results: dict[str, Any]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.plan["steps"])

    @property
    def current(self) -> dict[str, Any] | None:
        return None if self.step is None else self.steps[self.step]

    @property
    def implicit(self) -> bool:
        """An intent's own agent-then-person order: no step events of its own."""
        return bool(self.plan.get("implicit"))

    def to_wire(self) -> dict[str, Any]:
        """What `axme show`, the TUI and AXME clients read: which step, who holds it."""
        step = self.current
        out: dict[str, Any] = {
            "scenario_id": self.scenario_id,
            "title": self.plan.get("title"),
            "compile_id": self.plan.get("compile_id"),
            "steps": [s["step_id"] for s in self.steps],
            "current_step": step["step_id"] if step else None,
            "step_index": self.step,
            "step_attempt": self.step_attempt,
            "results": self.results,
        }
        if step is not None:
            out["pending_with"] = pending_with(step)
        return out


def pending_with(step: dict[str, Any]) -> dict[str, Any]:
    if step["kind"] == "agent":
        return {"type": "agent", "ref": step.get("role"), "name": step["address"]}
    who = (step["task"].get("assignees") or [None])[0]
    return {"type": "human", "ref": who, "name": who or "a person"}


def _row_to_workflow(pos: int, row: Any) -> Workflow:
    return Workflow(
        pos,
        row["scenario_id"],
        load(row["plan"]),
        row["step"],
        row["step_attempt"],
        row["entries"],
        load(row["results"]),
    )


def workflow_at(tx: Tx, pos: int) -> Workflow | None:
    row = tx.one("workflow_for_update", pos=pos)
    return None if row is None else _row_to_workflow(pos, row)


def workflow_of(tx: Tx, intent_id: str) -> Workflow | None:
    """A read: the workflow an intent runs, or None."""
    row = tx.one("workflow_of", intent_id=intent_id)
    return None if row is None else _row_to_workflow(0, row)


def _save(tx: Tx, wf: Workflow, **changes: Any) -> Workflow:
    moved = replace(wf, **changes)
    if not tx.run(
        "update_workflow",
        pos=wf.pos,
        step=moved.step,
        step_attempt=moved.step_attempt,
        entries=moved.entries,
        results=dump(moved.results),
        expected_entries=wf.entries,
        expected_attempt=wf.step_attempt,
    ):
        raise StaleWrite("the workflow moved while this write was deciding; send it again")
    return moved


def create_workflow_intent(
    tx: Tx,
    new: NewIntent,
    intent_id: str,
    plan: dict[str, Any],
    scenario_id: str | None,
    keys: Sequence[tuple[str, str, list[str]]] = (),
) -> tuple[tuple[Intent, bool, Effects], list[str]]:
    """An intent and the workflow it runs, inserted together and started at its entry step;
    `keys` (name, hash, scopes) are the agents' keys a scenario provisions, in the same
    write. An idempotent replay returns the intent as it is and writes nothing."""
    from axme_daemon.lifecycle.registry import put_api_key

    effects = Effects()
    (intent, created), _ = create(tx, new, intent_id)
    if not created:
        return (intent, False, effects), []
    for name, key_hash, scopes in keys:
        put_api_key(tx, name, key_hash, scopes)
    pos, intent = load_intent(tx, intent_id)
    first = plan["steps"][plan["entry"]]
    implicit = bool(plan.get("implicit"))
    tx.write(
        "insert_workflow",
        pos=pos,
        scenario_id=scenario_id,
        plan=dump(plan),
        step=plan["entry"] if implicit else None,
        step_attempt=1,
        entries=1 if implicit else 0,
        results=dump({}),
    )
    wf = workflow_at(tx, pos)
    assert wf is not None
    if not implicit:  # the intent is queued for the agent already when it goes first
        intent = _enter(tx, pos, intent, wf, plan["entry"], effects)
    else:
        effects.requeued.append(intent)
        if first.get("deadline_seconds"):
            fire_at = time.time() + float(first["deadline_seconds"])
            add_timer(tx, pos, "step_deadline", fire_at, None, 1)
    effects.touched.add(intent_id)
    return (intent, True, effects), [intent_id]


def _enter(
    tx: Tx,
    pos: int,
    intent: Intent,
    wf: Workflow,
    index: int | None,
    effects: Effects,
    *,
    attempt: int = 1,
) -> Intent:
    """Start step `index` (None, or past the last: the workflow is done)."""
    tx.write("drop_step_timers", pos=pos)
    if index is None or index >= len(wf.steps):
        return _complete(tx, pos, intent, wf, effects)
    if wf.entries >= MAX_ENTRIES:
        why = f"the workflow entered {MAX_ENTRIES} steps: its on_failure jumps loop"
        return _end(tx, pos, intent, wf, S.FAILED, {"message": why}, effects)
    step = wf.steps[index]
    wf = _save(tx, wf, step=index, step_attempt=attempt, entries=wf.entries + 1)
    about = {"step_id": step["step_id"], "step_index": index, "step_attempt": attempt}
    effects.touched.add(intent.intent_id)
    if step["kind"] == "human":
        spec = TaskSpec(**step["task"])
        waiting, _ = create_task(tx, pos, intent, spec, None, effects, about=about)
        return waiting
    if intent.to_agent != step["address"]:
        tx.write("set_intent_agent", pos=pos, to_agent=step["address"])
        intent = replace(intent, to_agent=step["address"])
    details = {**about, "tool_id": step.get("tool_id"), "pending_with": pending_with(step)}
    queued, _ = apply_change(
        tx,
        pos,
        intent,
        S.SUBMITTED,
        event_type="intent.scenario.step_started",
        details=details,
        waiting_reason=None,
        lease_worker=None,
        delivery_attempt=0,
    )
    if step.get("deadline_seconds"):
        fire_at = time.time() + float(step["deadline_seconds"])
        add_timer(tx, pos, "step_deadline", fire_at, None, wf.entries)
    effects.requeued.append(queued)
    return queued


def _complete(tx: Tx, pos: int, intent: Intent, wf: Workflow, effects: Effects) -> Intent:
    """After the last step: COMPLETED, with what the last step gave and every step's."""
    last = wf.results.get(wf.current["step_id"]) if wf.current else None
    result = dict(last) if isinstance(last, dict) else {}
    if not wf.implicit:
        result = {**result, "steps": wf.results}
    _save(tx, wf, step=None)
    final, _ = apply_change(
        tx,
        pos,
        intent,
        S.COMPLETED,
        details={"result": result},
        result=result,
        waiting_reason=None,
        lease_worker=None,
    )
    effects.finished.append(final)
    effects.touched.add(intent.intent_id)
    return final


def _end(
    tx: Tx,
    pos: int,
    intent: Intent,
    wf: Workflow,
    status: IntentStatus,
    error: dict[str, Any],
    effects: Effects,
    *,
    actor: str | None = None,
) -> Intent:
    _save(tx, wf, step=None)
    event_type = "intent.timed_out" if status is S.TIMED_OUT else None
    final, _ = apply_change(
        tx,
        pos,
        intent,
        status,
        event_type=event_type,
        actor=actor,
        details={"reason": error.get("message"), "error": error},
        error=error,
        waiting_reason=None,
        lease_worker=None,
    )
    effects.finished.append(final)
    effects.touched.add(intent.intent_id)
    return final


def agent_outcome(
    tx: Tx,
    intent_id: str,
    worker_id: str | None,
    ok: bool,
    value: Any,
    steps: list[tuple[int, str, Any]],
    actor: str | None = None,
) -> Intent | None:
    """An agent's `resume` on an intent that runs a workflow: the step's result (or, not
    `ok`, its error) moves the workflow on. None when the intent runs none. `actor`: who
    else did the step (an `approve_current_step`); by default the agent."""
    pos, intent = load_intent(tx, intent_id)
    wf = workflow_at(tx, pos)
    if wf is None:
        return None
    step = wf.current
    if intent.status.is_final or step is None:
        raise AlreadyFinal(f"intent is already {intent.status.value}")
    if worker_id is not None:
        check_lease(intent, worker_id)
    check_agent_outcome(intent)
    if step["kind"] != "agent" or intent.status is S.WAITING:
        raise Conflict(
            f"intent {intent_id} is not at an agent's step (step {step['step_id']}, "
            f"{intent.status.value}): no agent outcome is awaited",
            details={"intent_id": intent_id, "step_id": step["step_id"]},
        )
    if steps:
        record_steps(tx, intent_id, steps, worker_id)
        pos, intent = load_intent(tx, intent_id)
    effects = Effects()
    who = actor or intent.to_agent
    events: list[NewEvent] = []
    if intent.status in (S.SUBMITTED, S.DELIVERED, S.ACKNOWLEDGED):
        details = {"step_id": step["step_id"]} if not wf.implicit else None
        events.append((STATUS_EVENT[S.IN_PROGRESS], S.IN_PROGRESS, who, details))
    if not wf.implicit:
        kind = "intent.scenario.step_completed" if ok else "intent.scenario.step_failed"
        what = {"step_id": step["step_id"], "step_attempt": wf.step_attempt}
        what["result" if ok else "error"] = value
        events.append((kind, S.IN_PROGRESS, who, what))
    if events:
        intent, _ = apply_events(tx, pos, intent, S.IN_PROGRESS, events, lease_worker=None)
    if ok:
        wf = _save(tx, wf, results={**wf.results, step["step_id"]: value})
        return _enter(tx, pos, intent, wf, _next(wf, step), effects)
    return _failed(tx, pos, intent, wf, value, effects)


def _next(wf: Workflow, step: dict[str, Any]) -> int:
    jump = step.get("on_success")
    return int(jump) if jump is not None else (wf.step or 0) + 1


def _failed(
    tx: Tx,
    pos: int,
    intent: Intent,
    wf: Workflow,
    error: Any,
    effects: Effects,
    *,
    timed_out: bool = False,
    actor: str | None = None,
) -> Intent:
    """A step failed (or its deadline passed): again after its retry delay while it has
    retries left, else its `on_failure`, else the intent ends FAILED (TIMED_OUT)."""
    step = wf.current
    assert step is not None
    retry = step.get("retry") or {}
    if not timed_out and wf.step_attempt <= int(retry.get("max_retries", 0)):
        delay = float(retry.get("retry_delay_seconds", 0))
        if delay <= 0:
            return _enter(tx, pos, intent, wf, wf.step, effects, attempt=wf.step_attempt + 1)
        tx.write("drop_step_timers", pos=pos)
        wf = _save(tx, wf, step_attempt=wf.step_attempt + 1)
        waiting, _ = apply_change(
            tx,
            pos,
            intent,
            S.WAITING,
            details={
                "reason": f"step {step['step_id']} failed; try {wf.step_attempt} in {delay:g}s",
                "step_id": step["step_id"],
            },
            waiting_reason="WAITING_FOR_TIME",
            lease_worker=None,
        )
        add_timer(tx, pos, "step_retry", time.time() + delay, None, wf.entries)
        effects.touched.add(intent.intent_id)
        return waiting
    if step.get("on_failure") is not None:
        return _enter(tx, pos, intent, wf, int(step["on_failure"]), effects)
    what = "passed its deadline" if timed_out else "failed"
    message = f"step {step['step_id']} {what}"
    status = S.TIMED_OUT if timed_out else S.FAILED
    details = {"message": message, "step_id": step["step_id"], "error": error}
    return _end(tx, pos, intent, wf, status, details, effects, actor=actor)


def decided(
    tx: Tx, pos: int, decision: dict[str, Any], actor: str, effects: Effects
) -> Intent | None:
    """A person decided the task of the workflow's current step: approved moves on; rejected
    takes the step's `on_failure`, else ends the intent as the task says (CANCELED by
    default). None when the intent runs no workflow."""
    wf = workflow_at(tx, pos)
    intent = load_intent_at(tx, pos)
    if wf is None or intent is None or intent.status.is_final or wf.current is None:
        return None
    step = wf.current
    wf = _save(tx, wf, results={**wf.results, step["step_id"]: decision})
    if decision["approved"]:
        return _enter(tx, pos, intent, wf, _next(wf, step), effects)
    if step.get("on_failure") is not None:
        return _enter(tx, pos, intent, wf, int(step["on_failure"]), effects)
    why = {"message": f"{decision['outcome']} by {actor}", "decision": decision}
    status = S(step["task"].get("reject_status", "CANCELED"))
    return _end(tx, pos, intent, wf, status, why, effects, actor=actor)


def task_timed_out(tx: Tx, pos: int, error: dict[str, Any], effects: Effects) -> bool:
    """A sign-off step's task passed its deadline (`on_timeout: fail`): the step's
    `on_failure`, else TIMED_OUT. False when the intent runs no workflow."""
    wf = workflow_at(tx, pos)
    intent = load_intent_at(tx, pos)
    if wf is None or intent is None or intent.status.is_final or wf.current is None:
        return False
    _failed(tx, pos, intent, wf, error, effects, timed_out=True, actor="axme")
    return True


def timer_fired(tx: Tx, pos: int, kind: str, entry: int, effects: Effects) -> None:
    """A step's deadline or retry delay is over, unless the workflow left that step since."""
    wf = workflow_at(tx, pos)
    intent = load_intent_at(tx, pos)
    if wf is None or intent is None or intent.status.is_final or wf.current is None:
        return
    if wf.entries != entry:
        return
    if kind == "step_retry":
        _enter(tx, pos, intent, wf, wf.step, effects, attempt=wf.step_attempt)
    else:
        seconds = wf.current.get("deadline_seconds")
        error = {"message": f"no outcome within {seconds}s"}
        _failed(tx, pos, intent, wf, error, effects, timed_out=True, actor="axme")
