"""A person in the loop: tasks, decisions, reminders, deadlines and escalation.

A decision is a conditional write on a pending task: of two decisions, exactly one finds
it pending and wins; the other is a `Conflict`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from axme_cli.errors import Conflict, NotFound
from axme_cli.protocol import MAX_REMINDERS, MIN_REMIND_SECONDS, IntentStatus
from axme_daemon.intents import Intent, NewIntent, Task, now_iso
from axme_daemon.lifecycle import compensation
from axme_daemon.lifecycle.delivery import add_timer
from axme_daemon.lifecycle.timeline import apply_change, dump, load, load_intent
from axme_daemon.lifecycle.tx import Row, Tx
from axme_daemon.lifecycle.waits import end_wait, resume_wait
from axme_daemon.lifecycle.work import create
from axme_daemon.store.base import Effects
from axme_daemon.tasks import TaskSpec, check_decision, is_approval

S = IntentStatus


def row_to_task(row: Row) -> Task:
    return Task(
        task_id=row["task_id"],
        intent_id=row["intent_id"],
        intent_type=row["intent_type"],
        to_agent=row["to_agent"],
        ordinal=row["ordinal"],
        spec=load(row["spec"]),
        status=row["status"],
        assignee=row["assignee"],
        reminders=row["reminders"],
        deadline_at=row["deadline_at"],
        decision=load(row["decision"]),
        created_at=row["created_at"],
        decided_at=row["decided_at"],
    )


def _task_row(tx: Tx, task_id: str) -> tuple[int, Task]:
    row = tx.one("task_by_id", task_id=task_id)
    if row is None:
        raise NotFound(f"no task {task_id}", details={"task_id": task_id})
    return row["intent_pos"], row_to_task(row)


def create_task(
    tx: Tx,
    pos: int,
    intent: Intent,
    spec: TaskSpec,
    ordinal: int | None,
    effects: Effects,
    *,
    about: dict[str, Any] | None = None,
) -> tuple[Intent, Task]:
    """Open a task for `intent` (WAITING_FOR_HUMAN, no lease) with its reminder and deadline;
    `about` goes into its event (a workflow's step)."""
    now = time.time()
    task_id = str(uuid.uuid4())
    body = spec.model_dump(exclude_none=True)
    deadline = now + spec.deadline_seconds if spec.deadline_seconds else None
    assignee = spec.assignees[0] if spec.assignees else None
    created = now_iso()
    updated, _ = apply_change(
        tx,
        pos,
        intent,
        S.WAITING,
        event_type="intent.human_task_assigned",
        details={
            "task_id": task_id,
            "human_task": body,
            "pending_with": {"type": "human", "ref": assignee, "name": assignee or "a person"},
            **(about or {}),
        },
        waiting_reason="WAITING_FOR_HUMAN",
        lease_worker=None,
    )
    tx.write(
        "insert_task",
        task_id=task_id,
        pos=pos,
        ordinal=ordinal,
        spec=dump(body),
        assignee=assignee,
        deadline_at=deadline,
        created_at=created,
    )
    if spec.remind_after_seconds:
        add_timer(tx, pos, "reminder", now + spec.remind_after_seconds, task_id, ordinal)
    if deadline is not None:
        add_timer(tx, pos, "deadline", deadline, task_id, ordinal)
    task = Task(
        task_id,
        intent.intent_id,
        intent.intent_type,
        intent.to_agent,
        ordinal,
        body,
        "PENDING",
        assignee,
        0,
        deadline,
        None,
        created,
        None,
    )
    effects.touched.add(intent.intent_id)
    effects.notices.append({"event": "assigned", "task": task.to_wire()})
    return updated, task


def create_task_intent(
    tx: Tx, new: NewIntent, intent_id: str
) -> tuple[tuple[Intent, bool, Effects], list[str]]:
    """An intent with its own `human_task` (no agent code), which waits for the decision
    itself: inserted with its task in one transaction, so neither exists without the other
    (an intent left queued without its task would go to an agent as ordinary work)."""
    assert new.human_task is not None
    spec = TaskSpec(**new.human_task)  # before anything is written
    effects = Effects()
    (intent, created), _ = create(tx, new, intent_id)
    if not created:  # an idempotent replay
        return (intent, False, effects), []
    pos, intent = load_intent(tx, intent_id)
    waiting, _ = create_task(tx, pos, intent, spec, None, effects)
    return (waiting, True, effects), [intent_id]


def _refuse_decision(task: Task) -> Conflict:
    if task.status == "CLOSED":
        return Conflict(
            f"task {task.task_id} is closed: its intent ended before anyone decided",
            details={"task_id": task.task_id},
        )
    by = (task.decision or {}).get("actor", "a timeout")
    return Conflict(
        f"task {task.task_id} is already decided ({task.status.lower()}, by {by})",
        details={"task_id": task.task_id, "decision": task.decision},
    )


def decide(
    tx: Tx,
    task_id: str,
    outcome: str,
    actor: str,
    comment: str | None,
    data: dict[str, Any],
    *,
    automatic: bool = False,
) -> tuple[tuple[Task, Effects], list[str]]:
    """Record a decision once: a second one is a Conflict, whichever comes first wins."""
    effects = Effects()
    pos, task = _task_row(tx, task_id)
    if task.status != "PENDING":
        raise _refuse_decision(task)
    if not automatic:
        check_decision(task.spec, outcome, comment, data)
    decided_at = now_iso()
    decision = {
        "task_id": task_id,
        "outcome": outcome,
        "approved": is_approval(outcome),
        "actor": actor,
        "comment": comment,
        "data": data,
        "at": decided_at,
    }
    if not tx.run("decide_task", task_id=task_id, decision=dump(decision), decided_at=decided_at):
        _, task = _task_row(tx, task_id)  # another decision landed first
        raise _refuse_decision(task)
    tx.write("drop_task_timers", task_id=task_id)
    _, intent = load_intent(tx, task.intent_id)
    intent, _ = apply_change(
        tx,
        pos,
        intent,
        intent.status,
        event_type="intent.human_task_decided",
        actor=actor,
        details={k: v for k, v in decision.items() if k not in ("at", "approved", "actor") and v},
    )
    effects.touched.add(task.intent_id)
    if task.spec.get("compensation") is not None:
        compensation.decided(tx, pos, task, decision, effects)
    elif task.ordinal is not None:
        if not decision["approved"] and task.spec.get("on_reject") == "compensate":
            _rejected(tx, pos, task.ordinal, decision, effects)
        else:
            resume_wait(tx, pos, task.ordinal, decision, f"{outcome} by {actor}", actor, effects)
    elif not intent.status.is_final and _workflow_decided(tx, pos, decision, actor, effects):
        pass
    elif not intent.status.is_final:
        if decision["approved"]:
            final, _ = apply_change(
                tx,
                pos,
                intent,
                S.COMPLETED,
                actor=actor,
                details={"result": decision},
                result=decision,
                waiting_reason=None,
            )
        else:
            why = {"message": f"{outcome} by {actor}", "decision": decision}
            final, _ = apply_change(
                tx,
                pos,
                intent,
                S(task.spec.get("reject_status", "CANCELED")),
                actor=actor,
                details={"reason": why["message"], "decision": decision},
                error=why,
                waiting_reason=None,
            )
        effects.finished.append(final)
    decided = replace(task, status="DECIDED", decision=decision, decided_at=decided_at)
    return (decided, effects), [task.intent_id]


def _workflow_decided(
    tx: Tx, pos: int, decision: dict[str, Any], actor: str, effects: Effects
) -> bool:
    """The decision of a workflow's sign-off step moves the workflow on."""
    from axme_daemon.lifecycle.scenarios import decided

    return decided(tx, pos, decision, actor, effects) is not None


def _rejected(tx: Tx, pos: int, ordinal: int, decision: dict[str, Any], effects: Effects) -> None:
    """A person said no where the handler asked to compensate then: the decision is the
    step's record, and the intent is canceled, its steps undone first."""
    intent = end_wait(tx, pos, ordinal, decision)
    if intent is None:
        return
    reason = f"{decision['outcome']} by {decision['actor']}"
    if decision.get("comment"):
        reason += f": {decision['comment']}"
    ended, _ = compensation.end(
        tx, pos, intent, S.CANCELED, actor=decision["actor"], details={"reason": reason}
    )
    (effects.finished if ended.status.is_final else effects.requeued).append(ended)
    effects.touched.add(ended.intent_id)


def remind(tx: Tx, pos: int, task_id: str, fire_at: float, effects: Effects) -> None:
    _, task = _task_row(tx, task_id)
    count = task.reminders + 1
    if task.status != "PENDING" or not tx.run("count_reminder", task_id=task_id, reminders=count):
        return
    details: dict[str, Any] = {"task_id": task_id, "reminder": count}
    if task.assignee:
        details["assignee"] = task.assignee
    _note(tx, pos, task, "intent.reminder", details)
    effects.touched.add(task.intent_id)
    effects.notices.append(
        {"event": "reminder", "task": {**task.to_wire(), "reminders_sent": count}}
    )
    # Bounded here too: a task stored before the bounds were checked must not remind forever.
    interval = task.spec.get("remind_interval_seconds")
    limit = task.spec.get("max_reminders")
    limit = MAX_REMINDERS if limit is None else min(int(limit), MAX_REMINDERS)
    if interval and count < limit:
        next_at = fire_at + max(float(interval), MIN_REMIND_SECONDS)
        add_timer(tx, pos, "reminder", next_at, task_id, task.ordinal)


def deadline_passed(tx: Tx, pos: int, task_id: str, effects: Effects) -> None:
    """Nobody decided in time: escalate once, decide by the task's `on_timeout`, or end
    the intent TIMED_OUT."""
    _, task = _task_row(tx, task_id)
    if task.status != "PENDING":
        return
    action = task.spec.get("on_timeout", "reject")
    if action == "escalate" and not task.spec.get("escalated"):
        _escalate(tx, pos, task, effects)
        return
    if action in ("approve", "reject", "escalate"):
        outcome = "approved" if action == "approve" else "rejected"
        try:
            (_, more), _ = decide(
                tx,
                task_id,
                outcome,
                "axme (deadline passed)",
                "no decision before the deadline",
                {},
                automatic=True,
            )
        except Conflict:  # a person decided first
            return
        effects.notices.append({"event": "timeout", "task": task.to_wire()})
        effects.requeued += more.requeued
        effects.finished += more.finished
        effects.touched |= more.touched
        return
    # "fail": nobody decided in time; the intent ends TIMED_OUT.
    if not tx.run("time_out_task", task_id=task_id):
        return
    effects.notices.append({"event": "timeout", "task": task.to_wire()})
    tx.write("drop_waits", pos=pos)
    tx.write("drop_timers", pos=pos)
    _, intent = load_intent(tx, task.intent_id)
    error = {"message": f"no decision on {task.spec.get('title')!r} before the deadline"}
    from axme_daemon.lifecycle.scenarios import task_timed_out

    if task_timed_out(tx, pos, {**error, "task_id": task_id}, effects):
        return
    if not intent.status.is_final:
        ended, _ = compensation.end(
            tx,
            pos,
            intent,
            S.TIMED_OUT,
            event_type="intent.timed_out",
            actor="axme",
            details={"task_id": task_id, **error},
            error=error,
        )
        (effects.finished if ended.status.is_final else effects.requeued).append(ended)
        effects.touched.add(task.intent_id)


def _escalate(tx: Tx, pos: int, task: Task, effects: Effects) -> None:
    target = task.spec.get("escalate_to")
    spec = {**task.spec, "escalated": True, "on_timeout": "reject"}
    deadline = time.time() + float(task.spec["deadline_seconds"])
    changed = tx.run(
        "escalate_task",
        task_id=task.task_id,
        assignee=target,
        spec=dump(spec),
        deadline_at=deadline,
    )
    if not changed:
        return
    add_timer(tx, pos, "deadline", deadline, task.task_id, task.ordinal)
    details = {"task_id": task.task_id, "escalated_to": target, "from": task.assignee}
    _note(tx, pos, task, "intent.escalated", details)
    effects.touched.add(task.intent_id)
    effects.notices.append({"event": "escalation", "task": {**task.to_wire(), "assignee": target}})


def _note(tx: Tx, pos: int, task: Task, event_type: str, details: dict[str, Any]) -> None:
    """An event of axme's own on the task's intent, its status unchanged."""
    _, intent = load_intent(tx, task.intent_id)
    apply_change(
        tx, pos, intent, intent.status, event_type=event_type, actor="axme", details=details
    )
