"""SQLite write operations for durable waits: human tasks, timers, signals, child intents.

A handler step that must wait is recorded in `waits` and its intent goes to WAITING with no
lease, so no process is held. Whatever ends the wait (a decision, a timer, a signal, a child
intent finishing) records the step's result and puts the intent back in the queue in the same
transaction; the redelivered handler then replays its steps and gets that result. Timers fire
by deleting their row in the transaction that applies them, so none fires twice.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import replace
from typing import Any

from axme_cli.errors import AlreadyFinal, Conflict, NotFound
from axme_cli.protocol import MAX_REMINDERS, MIN_REMIND_SECONDS, IntentStatus
from axme_daemon.intents import Intent, NewIntent, Task, now_iso
from axme_daemon.store.base import Effects
from axme_daemon.store.sqlite_writes import (
    apply_change,
    check_lease,
    create,
    dump,
    load,
    load_intent,
    redeliver,
)
from axme_daemon.tasks import TaskSpec, check_decision, is_approval

S = IntentStatus

TASK_COLUMNS = (
    "t.task_id, i.intent_id, i.intent_type, i.to_agent, t.ordinal, t.spec, t.status, "
    "t.assignee, t.reminders, t.deadline_at, t.decision, t.created_at, t.decided_at"
)


def row_to_task(row: sqlite3.Row) -> Task:
    return Task(
        task_id=row[0],
        intent_id=row[1],
        intent_type=row[2],
        to_agent=row[3],
        ordinal=row[4],
        spec=load(row[5]),
        status=row[6],
        assignee=row[7],
        reminders=row[8],
        deadline_at=row[9],
        decision=load(row[10]),
        created_at=row[11],
        decided_at=row[12],
    )


def _task_row(db: sqlite3.Connection, task_id: str) -> tuple[int, Task]:
    cur = db.execute(
        f"SELECT {TASK_COLUMNS}, t.intent_pos FROM tasks t JOIN intents i ON i.pos = t.intent_pos "
        "WHERE t.task_id = ?",
        (task_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no task {task_id}", details={"task_id": task_id})
    return row[13], row_to_task(row)


def create_task(
    db: sqlite3.Connection,
    pos: int,
    intent: Intent,
    spec: TaskSpec,
    ordinal: int | None,
    effects: Effects,
) -> tuple[Intent, Task]:
    """Open a task for `intent` (WAITING_FOR_HUMAN, no lease) with its reminder and deadline."""
    now = time.time()
    task_id = str(uuid.uuid4())
    body = spec.model_dump(exclude_none=True)
    deadline = now + spec.deadline_seconds if spec.deadline_seconds else None
    assignee = spec.assignees[0] if spec.assignees else None
    created = now_iso()
    db.execute(
        "INSERT INTO tasks (task_id, intent_pos, ordinal, spec, status, assignee, deadline_at, "
        "created_at) VALUES (?, ?, ?, ?, 'PENDING', ?, ?, ?)",
        (task_id, pos, ordinal, dump(body), assignee, deadline, created),
    )
    if spec.remind_after_seconds:
        _timer(db, pos, "reminder", now + spec.remind_after_seconds, task_id, ordinal)
    if deadline is not None:
        _timer(db, pos, "deadline", deadline, task_id, ordinal)
    updated, _ = apply_change(
        db,
        pos,
        intent,
        S.WAITING,
        event_type="intent.human_task_assigned",
        details={
            "task_id": task_id,
            "human_task": body,
            "pending_with": {"type": "human", "ref": assignee},
        },
        waiting_reason="WAITING_FOR_HUMAN",
        lease_worker=None,
    )
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


def _timer(
    db: sqlite3.Connection,
    pos: int,
    kind: str,
    fire_at: float,
    task_id: str | None,
    ordinal: int | None,
) -> None:
    db.execute(
        "INSERT INTO timers (intent_pos, kind, fire_at, task_id, ordinal, armed_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (pos, kind, fire_at, task_id, ordinal, time.time()),
    )


def _record(
    db: sqlite3.Connection, pos: int, intent: Intent, ordinal: int, key: str, result: Any
) -> None:
    db.execute(
        "INSERT INTO steps (intent_pos, ordinal, step_key, result, attempt, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (pos, ordinal, key, dump(result), intent.delivery_attempt, now_iso()),
    )


def resume_wait(
    db: sqlite3.Connection,
    pos: int,
    ordinal: int,
    result: Any,
    reason: str,
    actor: str | None,
    effects: Effects,
) -> Intent | None:
    """End a step's wait: record `result` as the step's, and queue the intent again."""
    cur = db.execute(
        "SELECT step_key FROM waits WHERE intent_pos = ? AND ordinal = ?", (pos, ordinal)
    )
    row = cur.fetchone()
    if row is None:
        return None
    cur = db.execute("SELECT intent_id FROM intents WHERE pos = ?", (pos,))
    (intent_id,) = cur.fetchone() or (None,)
    _, intent = load_intent(db, str(intent_id))
    db.execute("DELETE FROM waits WHERE intent_pos = ? AND ordinal = ?", (pos, ordinal))
    db.execute(
        "DELETE FROM timers WHERE intent_pos = ? AND ordinal = ? AND kind != 'reminder'",
        (pos, ordinal),
    )
    _record(db, pos, intent, ordinal, row[0], result)
    if intent.status.is_final:
        return None
    # The wait ended the delivery without failing it: the one that resumes the handler goes
    # on with the same attempt (`ctx.attempt`), so a wait never counts against the attempts.
    updated, _ = apply_change(
        db,
        pos,
        intent,
        S.SUBMITTED,
        actor=actor,
        details={"reason": reason},
        waiting_reason=None,
        delivery_attempt=max(0, intent.delivery_attempt - 1),
    )
    effects.requeued.append(updated)
    effects.touched.add(updated.intent_id)
    return updated


# -- a worker starts a wait ------------------------------------------------------------


def begin_wait(
    db: sqlite3.Connection,
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
    pos, intent = load_intent(db, intent_id)
    if intent.status.is_final:
        raise AlreadyFinal(f"intent is already {intent.status.value}")
    if worker_id is not None:
        check_lease(intent, worker_id)
    cur = db.execute(
        "SELECT step_key, result FROM steps WHERE intent_pos = ? AND ordinal = ?", (pos, ordinal)
    )
    done = cur.fetchone()
    if done is not None:
        if done[0] != key:
            raise Conflict(f"step {ordinal} was recorded as {done[0]!r}, not {key!r}")
        return ({"state": "done", "result": load(done[1])}, effects), []
    cur = db.execute(
        "SELECT kind, target FROM waits WHERE intent_pos = ? AND ordinal = ?", (pos, ordinal)
    )
    existing = cur.fetchone()
    if existing is not None:
        return ({"state": "waiting", "target": existing[1]}, effects), []

    if kind == "signal":
        name = str(arguments["name"])
        cur = db.execute(
            "SELECT signal_id, data, at FROM signals WHERE intent_pos = ? AND name = ? "
            "AND taken_by IS NULL ORDER BY signal_id LIMIT 1",
            (pos, name),
        )
        kept = cur.fetchone()
        if kept is not None:  # it arrived before the wait: kept, not lost
            db.execute("UPDATE signals SET taken_by = ? WHERE signal_id = ?", (ordinal, kept[0]))
            result = {"name": name, "data": load(kept[1]), "at": kept[2]}
            _record(db, pos, intent, ordinal, key, result)
            apply_change(
                db,
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
        _, task = create_task(db, pos, intent, spec, ordinal, effects)
        target = task.task_id
    elif kind == "time":
        until = time.time() + float(arguments["seconds"])
        _timer(db, pos, "wake", until, None, ordinal)
        reason = f"sleeping {arguments['seconds']}s"
        _suspend(db, pos, intent, "WAITING_FOR_TIME", reason)
        target = None
    elif kind == "signal":
        target = str(arguments["name"])
        if arguments.get("timeout_seconds"):
            fire_at = time.time() + float(arguments["timeout_seconds"])
            _timer(db, pos, "wait_timeout", fire_at, None, ordinal)
        reason = f"waiting for signal {target!r}"
        _suspend(db, pos, intent, "WAITING_FOR_TOOL", reason, signal=target)
    elif kind == "child":
        target = str(arguments["child_intent_id"])
        _, child = load_intent(db, target)
        if child.status.is_final:
            result = child_result(child)
            _record(db, pos, intent, ordinal, key, result)
            return ({"state": "done", "result": result}, effects), [intent_id]
        reason = f"waiting for child intent {target}"
        _suspend(db, pos, intent, "WAITING_FOR_AGENT", reason, child_intent_id=target)
    else:
        raise ValueError(f"unknown wait kind {kind!r}")
    db.execute(
        "INSERT INTO waits (intent_pos, ordinal, step_key, kind, target) VALUES (?, ?, ?, ?, ?)",
        (pos, ordinal, key, kind, target),
    )
    effects.touched.add(intent_id)
    return ({"state": "waiting", "target": target}, effects), [intent_id]


def _suspend(
    db: sqlite3.Connection,
    pos: int,
    intent: Intent,
    waiting_reason: str,
    reason: str,
    **details: Any,
) -> None:
    """WAITING without a lease: the worker lets go until the wait is over."""
    apply_change(
        db,
        pos,
        intent,
        S.WAITING,
        details={"reason": reason, **details},
        waiting_reason=waiting_reason,
        lease_worker=None,
    )


def child_result(child: Intent) -> dict[str, Any]:
    return {
        "intent_id": child.intent_id,
        "status": child.status.value,
        "result": child.result,
        "error": child.error,
    }


# -- ending waits ----------------------------------------------------------------------


def create_task_intent(
    db: sqlite3.Connection, new: NewIntent, intent_id: str
) -> tuple[tuple[Intent, bool, Effects], list[str]]:
    """An intent with its own `human_task` (no agent code), which waits for the decision
    itself: inserted with its task in one transaction, so neither exists without the other
    (an intent left queued without its task would go to an agent as ordinary work)."""
    assert new.human_task is not None
    spec = TaskSpec(**new.human_task)  # before anything is written
    effects = Effects()
    (intent, created), _ = create(db, new, intent_id)
    if not created:  # an idempotent replay
        return (intent, False, effects), []
    pos, intent = load_intent(db, intent_id)
    waiting, _ = create_task(db, pos, intent, spec, None, effects)
    return (waiting, True, effects), [intent_id]


def decide(
    db: sqlite3.Connection,
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
    pos, task = _task_row(db, task_id)
    if task.status == "CLOSED":
        raise Conflict(
            f"task {task_id} is closed: its intent ended before anyone decided",
            details={"task_id": task_id},
        )
    if task.status != "PENDING":
        by = (task.decision or {}).get("actor", "a timeout")
        raise Conflict(
            f"task {task_id} is already decided ({task.status.lower()}, by {by})",
            details={"task_id": task_id, "decision": task.decision},
        )
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
    db.execute(
        "UPDATE tasks SET status = 'DECIDED', decision = ?, decided_at = ? WHERE task_id = ?",
        (dump(decision), decided_at, task_id),
    )
    db.execute("DELETE FROM timers WHERE task_id = ?", (task_id,))
    _, intent = load_intent(db, task.intent_id)
    apply_change(
        db,
        pos,
        intent,
        intent.status,
        event_type="intent.human_task_decided",
        actor=actor,
        details={k: v for k, v in decision.items() if k not in ("at", "approved", "actor") and v},
    )
    effects.touched.add(task.intent_id)
    if task.ordinal is not None:
        resume_wait(db, pos, task.ordinal, decision, f"{outcome} by {actor}", actor, effects)
    else:
        _, intent = load_intent(db, task.intent_id)
        if not intent.status.is_final:
            if decision["approved"]:
                final, _ = apply_change(
                    db,
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
                    db,
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


def send_signal(
    db: sqlite3.Connection, intent_id: str, name: str, data: Any
) -> tuple[tuple[bool, Effects], list[str]]:
    """Deliver a signal to the wait for it, or keep it for a wait to come."""
    effects = Effects()
    pos, intent = load_intent(db, intent_id)
    if intent.status.is_final:
        raise AlreadyFinal(f"intent is already {intent.status.value}")
    at = now_iso()
    cur = db.execute(
        "SELECT ordinal FROM waits WHERE intent_pos = ? AND kind = 'signal' AND target = ? "
        "ORDER BY ordinal LIMIT 1",
        (pos, name),
    )
    waiting = cur.fetchone()
    cur2 = db.execute(
        "INSERT INTO signals (intent_pos, name, data, taken_by, at) VALUES (?, ?, ?, ?, ?)",
        (pos, name, dump(data), waiting[0] if waiting else None, at),
    )
    cur2.close()
    apply_change(
        db,
        pos,
        intent,
        intent.status,
        event_type="intent.signal",
        details={"name": name, **({"data": data} if data is not None else {})},
    )
    effects.touched.add(intent_id)
    if waiting is not None:
        result = {"name": name, "data": data, "at": at}
        resume_wait(db, pos, waiting[0], result, f"signal {name!r}", None, effects)
    return (waiting is not None, effects), [intent_id]


def child_finished(db: sqlite3.Connection, child: Intent) -> tuple[Effects, list[str]]:
    """A child intent ended: its parent's waiting step gets the outcome."""
    effects = Effects()
    cur = db.execute(
        "SELECT intent_pos, ordinal FROM waits WHERE kind = 'child' AND target = ?",
        (child.intent_id,),
    )
    rows = list(cur.fetchall())
    for pos, ordinal in rows:
        resume_wait(
            db,
            pos,
            ordinal,
            child_result(child),
            f"child intent {child.intent_id} {child.status.value}",
            None,
            effects,
        )
    return effects, list(effects.touched)


def fire_timers(db: sqlite3.Connection, now: float) -> tuple[Effects, list[str]]:
    """Apply every timer due by `now`; each row is deleted as it is applied."""
    effects = Effects()
    # Armed after `now`: the clock went back since. Fire at most a full duration from now
    # (and a task shows the deadline it will have).
    moved = db.execute(
        "SELECT fire_at - (armed_at - ?), task_id FROM timers "
        "WHERE armed_at > ? AND kind = 'deadline'",
        (now, now),
    ).fetchall()
    db.executemany("UPDATE tasks SET deadline_at = ? WHERE task_id = ?", moved)
    db.execute(
        "UPDATE timers SET fire_at = fire_at - (armed_at - ?), armed_at = ? WHERE armed_at > ?",
        (now, now, now),
    )
    cur = db.execute(
        "SELECT timer_id, intent_pos, kind, fire_at, task_id, ordinal FROM timers "
        "WHERE fire_at <= ? ORDER BY fire_at LIMIT 200",
        (now,),
    )
    due = list(cur.fetchall())
    for timer_id, pos, kind, fire_at, task_id, ordinal in due:
        db.execute("DELETE FROM timers WHERE timer_id = ?", (timer_id,))
        if kind == "wake":
            resume_wait(db, pos, ordinal, {"slept_until": fire_at}, "sleep ended", None, effects)
        elif kind == "wait_timeout":
            resume_wait(db, pos, ordinal, None, "timed out waiting for a signal", None, effects)
        elif kind == "reminder":
            _remind(db, pos, task_id, fire_at, effects)
        elif kind == "deadline":
            _deadline(db, pos, task_id, effects)
        elif kind == "redeliver":
            again = redeliver(db, pos)
            if again is not None:
                effects.requeued.append(again)
                effects.touched.add(again.intent_id)
    return effects, list(effects.touched)


def _remind(
    db: sqlite3.Connection, pos: int, task_id: str, fire_at: float, effects: Effects
) -> None:
    _, task = _task_row(db, task_id)
    if task.status != "PENDING":
        return
    count = task.reminders + 1
    db.execute("UPDATE tasks SET reminders = ? WHERE task_id = ?", (count, task_id))
    _, intent = load_intent(db, task.intent_id)
    apply_change(
        db,
        pos,
        intent,
        intent.status,
        event_type="intent.reminder",
        actor="axme",
        details={"task_id": task_id, "reminder": count}
        | ({"assignee": task.assignee} if task.assignee else {}),
    )
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
        _timer(db, pos, "reminder", next_at, task_id, task.ordinal)


def _deadline(db: sqlite3.Connection, pos: int, task_id: str, effects: Effects) -> None:
    _, task = _task_row(db, task_id)
    if task.status != "PENDING":
        return
    action = task.spec.get("on_timeout", "reject")
    if action == "escalate" and not task.spec.get("escalated"):
        target = task.spec.get("escalate_to")
        spec = {**task.spec, "escalated": True, "on_timeout": "reject"}
        deadline = time.time() + float(task.spec["deadline_seconds"])
        db.execute(
            "UPDATE tasks SET assignee = ?, spec = ?, deadline_at = ? WHERE task_id = ?",
            (target, dump(spec), deadline, task_id),
        )
        _timer(db, pos, "deadline", deadline, task_id, task.ordinal)
        _, intent = load_intent(db, task.intent_id)
        apply_change(
            db,
            pos,
            intent,
            intent.status,
            event_type="intent.escalated",
            actor="axme",
            details={"task_id": task_id, "escalated_to": target, "from": task.assignee},
        )
        effects.touched.add(task.intent_id)
        effects.notices.append(
            {"event": "escalation", "task": {**task.to_wire(), "assignee": target}}
        )
        return
    effects.notices.append({"event": "timeout", "task": task.to_wire()})
    if action in ("approve", "reject", "escalate"):
        outcome = "approved" if action == "approve" else "rejected"
        (_, more), _ = decide(
            db,
            task_id,
            outcome,
            "axme (deadline passed)",
            "no decision before the deadline",
            {},
            automatic=True,
        )
        effects.requeued += more.requeued
        effects.finished += more.finished
        effects.touched |= more.touched
        return
    # "fail": nobody decided in time; the intent ends TIMED_OUT.
    db.execute("UPDATE tasks SET status = 'TIMED_OUT' WHERE task_id = ?", (task_id,))
    db.execute("DELETE FROM waits WHERE intent_pos = ?", (pos,))
    db.execute("DELETE FROM timers WHERE intent_pos = ?", (pos,))
    _, intent = load_intent(db, task.intent_id)
    if not intent.status.is_final:
        error = {"message": f"no decision on {task.spec.get('title')!r} before the deadline"}
        final, _ = apply_change(
            db,
            pos,
            intent,
            S.TIMED_OUT,
            event_type="intent.timed_out",
            actor="axme",
            details={"task_id": task_id, **error},
            error=error,
            waiting_reason=None,
            lease_worker=None,
        )
        effects.finished.append(final)
        effects.touched.add(task.intent_id)


def next_timer(db: sqlite3.Connection, now: float) -> float | None:
    """The earliest due time; `now` if the clock went back behind a timer's arming, so that
    `fire_timers` brings it forward at once. Two index lookups."""
    cur = db.execute("SELECT (SELECT min(fire_at) FROM timers), (SELECT max(armed_at) FROM timers)")
    row = cur.fetchone()
    if row is None or row[0] is None:
        return None
    return now if row[1] > now else float(row[0])


def list_tasks(
    db: sqlite3.Connection,
    status: str | None,
    intent_id: str | None,
    prefix: str | None,
    limit: int,
) -> list[Task]:
    where: list[str] = []
    args: list[Any] = []
    if status:
        where.append("t.status = ?")
        args.append(status)
    if intent_id:
        where.append("i.intent_id = ?")
        args.append(intent_id)
    if prefix:
        where.append("t.task_id >= ? AND t.task_id < ?")
        args += [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
    sql = f"SELECT {TASK_COLUMNS} FROM tasks t JOIN intents i ON i.pos = t.intent_pos"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY coalesce(t.deadline_at, 1e18), t.created_at LIMIT ?"
    args.append(limit)
    cur = db.execute(sql, args)
    return [row_to_task(r) for r in cur.fetchall()]
