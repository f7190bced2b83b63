"""An intent's own work: creating it, an agent's step records, progress and outcome, and a
status change asked for from outside. Each function checks everything before it writes and
returns its result plus the ids of the intents whose timelines it changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from axme_cli.errors import AlreadyFinal, AxmeError, BadInput, Conflict, IdempotencyConflict
from axme_cli.protocol import FINAL_STATUSES, STATUS_EVENT, IntentStatus
from axme_daemon.intents import (
    Event,
    Intent,
    NewIntent,
    Step,
    StepFailure,
    Undoable,
    check_agent_outcome,
    check_transition,
    now_iso,
)
from axme_daemon.lifecycle.delivery import Holder
from axme_daemon.lifecycle.threads import open_thread
from axme_daemon.lifecycle.timeline import (
    NewEvent,
    apply_change,
    apply_events,
    atomically,
    check_lease,
    dump,
    load,
    load_intent,
    load_row,
    row_to_event,
    row_to_intent,
)
from axme_daemon.lifecycle.tx import Tx
from axme_daemon.store.base import WorkerReport

S = IntentStatus
#: A step record as workers send it: (ordinal, key, result).
StepInput = tuple[int, str, Any]


def create(
    tx: Tx, new: NewIntent, intent_id: str, lease: Holder | None = None
) -> tuple[tuple[Intent, bool], list[str]]:
    """Insert a new intent, queued; or, with `lease`, already delivered to that worker: one
    insert, its three events together. An idempotency key seen already (also one another
    writer inserted while this one decided) answers with that intent."""
    if new.idempotency_key is not None and (seen := _seen_key(tx, new)) is not None:
        return (seen, False), []
    now = now_iso()
    events: list[tuple[str, str, str | None]] = [
        (STATUS_EVENT[S.CREATED], S.CREATED.value, None),
        (STATUS_EVENT[S.SUBMITTED], S.SUBMITTED.value, None),
    ]
    status, attempt, delivery_seq, worker_id, daemon_id = S.SUBMITTED, 0, 0, None, None
    if lease is not None:
        status, attempt = S.DELIVERED, 1
        worker_id, daemon_id, delivery_seq = lease.worker_id, lease.daemon_id, lease.next_seq()
        details = dump({"delivery_attempt": attempt, "worker": worker_id})
        events.append((STATUS_EVENT[S.DELIVERED], S.DELIVERED.value, details))
    intent = Intent(
        intent_id=intent_id,
        intent_type=new.intent_type,
        to_agent=new.to_agent,
        from_agent=new.from_agent,
        reply_to=new.reply_to,
        correlation_id=new.correlation_id,
        payload=new.payload,
        human_task=new.human_task,
        status=status,
        idempotency_key=new.idempotency_key,
        max_delivery_attempts=new.max_delivery_attempts,
        deadline_at=new.deadline_at,
        last_seq=len(events),
        created_at=now,
        updated_at=now,
        delivery_attempt=attempt,
        delivery_seq=delivery_seq,
        lease_worker=worker_id,
        lease_daemon=daemon_id,
    )
    columns = {f.name: getattr(intent, f.name) for f in fields(Intent)}
    pos = tx.insert(
        "insert_intent",
        **{
            **columns,
            "payload": dump(new.payload),
            "human_task": dump(new.human_task),
            "status": status.value,
            "request_hash": new.request_hash,
        },
    )
    if pos is None:  # another writer inserted this idempotency key since it was looked up
        seen = _seen_key(tx, new)
        assert seen is not None
        return (seen, False), []
    tx.run_many(
        "insert_event",
        [
            {
                "intent_pos": pos,
                "seq": n,
                "event_type": kind,
                "status": st,
                "at": now,
                "actor": None,
                "details": details,
            }
            for n, (kind, st, details) in enumerate(events, 1)
        ],
    )
    open_thread(tx, pos, intent)
    return (intent, True), [intent_id]


def _seen_key(tx: Tx, new: NewIntent) -> Intent | None:
    """The intent created with `new`'s idempotency key; `IdempotencyConflict` when it was
    created from another body."""
    row = tx.one("intent_by_idempotency_key", idempotency_key=new.idempotency_key)
    if row is None:
        return None
    if row["request_hash"] != new.request_hash:
        raise IdempotencyConflict(
            "Idempotency-Key was already used with a different request body",
            details={"intent_id": row["intent_id"]},
        )
    return row_to_intent(row)


def transition(
    tx: Tx,
    intent_id: str,
    status: IntentStatus,
    *,
    worker_id: str | None = None,
    event_type: str | None = None,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
    result: Any = None,
    error: Any = None,
    steps: Sequence[StepInput] = (),
    by_agent: bool = False,
    ask_worker: bool = False,
) -> tuple[tuple[Intent, Event], list[str]]:
    """A status change requested from outside; ending an intent also ends its lease.

    With `worker_id`, the change is refused unless that worker holds the delivery (or nobody
    does): a worker whose lease was taken away must not finish an intent twice. `steps` are
    recorded first, all or nothing together with the change. `by_agent`: an agent's outcome,
    refused while the intent waits for a person. `ask_worker`: a cancel of an intent in
    progress is asked of its worker, which hears cancels (`compensation.stop`).
    """
    if (
        by_agent
        and status in (S.COMPLETED, S.FAILED)
        and tx.one("workflow_of", intent_id=intent_id) is not None
    ):
        moved = atomically(
            tx,
            _workflow_outcome,
            intent_id=intent_id,
            worker_id=worker_id,
            ok=status is S.COMPLETED,
            value=result if status is S.COMPLETED else error,
            steps=list(steps),
            actor=actor,
        )
        if moved is not None:
            return moved
    if steps:
        change = dict(worker_id=worker_id, event_type=event_type, actor=actor, details=details)
        return atomically(
            tx,
            _steps_then_transition,
            intent_id=intent_id,
            steps=steps,
            status=status,
            result=result,
            error=error,
            by_agent=by_agent,
            **change,
        )
    from axme_daemon.lifecycle import compensation  # it builds on this module

    pos, current = load_intent(tx, intent_id)
    if by_agent:
        check_agent_outcome(current)
    check_transition(current.status, status)
    if worker_id is not None:
        check_lease(current, worker_id)
    if status in compensation.UNDOING_ENDS:
        stopped = compensation.stop(
            tx,
            pos,
            current,
            status,
            by_agent=by_agent,
            ask_worker=ask_worker,
            event_type=event_type,
            actor=actor,
            details=details,
            error=error,
        )
        return stopped, [intent_id]
    compensation.refuse_while_undoing(current)
    changes = _ending(status, result, error)
    updated = apply_change(
        tx,
        pos,
        current,
        status,
        event_type=event_type,
        actor=actor,
        details=details,
        **changes,
    )
    return updated, [intent_id]


def _workflow_outcome(tx: Tx, **outcome: Any) -> tuple[tuple[Intent, Event], list[str]] | None:
    """An agent's outcome on an intent that runs a workflow moves the workflow on (None:
    it runs none)."""
    from axme_daemon.lifecycle.scenarios import agent_outcome

    intent = agent_outcome(tx, **outcome)
    if intent is None:
        return None
    row = tx.one("events_since", intent_id=intent.intent_id, since=intent.last_seq - 1, limit=1)
    assert row is not None
    return (intent, row_to_event(intent.intent_id, row)), [intent.intent_id]


def _steps_then_transition(
    tx: Tx,
    *,
    intent_id: str,
    steps: Sequence[StepInput],
    status: IntentStatus,
    worker_id: str | None,
    event_type: str | None,
    actor: str | None,
    details: dict[str, Any] | None,
    result: Any,
    error: Any,
    by_agent: bool,
) -> tuple[tuple[Intent, Event], list[str]]:
    """The steps and the change in one write of the intent (one load, one update)."""
    pos, intent, started, count = _start_steps(tx, intent_id, worker_id)
    if by_agent:
        check_agent_outcome(intent)
    _, stepped = _insert_steps(tx, pos, intent, steps, count)
    current = S.IN_PROGRESS if started or stepped else intent.status
    check_transition(current, status)
    changes = _ending(status, result, error)
    event = (event_type or STATUS_EVENT[status], status, actor, details or None)
    updated, events = apply_events(tx, pos, intent, status, [*started, *stepped, event], **changes)
    return (updated, events[-1]), [intent_id]


def _ending(status: IntentStatus, result: Any, error: Any) -> dict[str, Any]:
    """The intent fields a status change from outside writes besides the status."""
    changes: dict[str, Any] = {"waiting_reason": None}
    if result is not None:
        changes["result"] = result
    if error is not None:
        changes["error"] = error
    if status in FINAL_STATUSES:
        changes["lease_worker"] = None
    if status is S.COMPLETED:
        changes["saga"] = None  # a handler that finished before it saw a cancel completes
    return changes


def report(
    tx: Tx, reports: Sequence[WorkerReport], worker_id: str | None
) -> tuple[list[Intent | AxmeError | None], list[str]]:
    """Several intents' reports as one write: each all or none (a savepoint apiece), a
    refused one answered with its error while the others apply."""
    answers: list[Intent | AxmeError | None] = []
    touched: list[str] = []
    for r in reports:
        try:
            if r.completed:
                (intent, _), ids = transition(
                    tx,
                    r.intent_id,
                    S.COMPLETED,
                    worker_id=worker_id,
                    details={"result": r.result} if r.result is not None else None,
                    result=r.result,
                    steps=r.steps,
                    by_agent=True,
                )
                answers.append(intent)
            else:
                _, ids = atomically(
                    tx, record_steps, intent_id=r.intent_id, steps=r.steps, worker_id=worker_id
                )
                answers.append(None)
        except AxmeError as exc:
            answers.append(exc)
        else:
            touched.extend(ids)
    return answers, touched


def start_work(
    tx: Tx, intent_id: str, worker_id: str | None, *, undoing: bool = False
) -> tuple[int, Intent, list[NewEvent]]:
    """Load an intent a worker reports on; its first report moves it to IN_PROGRESS (the
    event returned, for the caller to append with its own). While its steps are being
    undone, only a compensation's report (`undoing`) is taken."""
    pos, intent = load_intent(tx, intent_id)
    return pos, intent, _started(intent, worker_id, undoing)


def _start_steps(
    tx: Tx, intent_id: str, worker_id: str | None
) -> tuple[int, Intent, list[NewEvent], int]:
    """`start_work` and how many steps the intent has recorded, in one read."""
    row = load_row(tx, intent_id, "intent_and_step_count_for_update")
    intent = row_to_intent(row)
    return row["pos"], intent, _started(intent, worker_id, False), int(row["step_count"])


def _started(intent: Intent, worker_id: str | None, undoing: bool) -> list[NewEvent]:
    from axme_daemon.lifecycle import compensation  # it builds on this module

    if intent.status.is_final:
        raise AlreadyFinal(f"intent is already {intent.status.value}")
    if worker_id is not None:
        check_lease(intent, worker_id)
    if not undoing:
        compensation.refuse_while_undoing(intent)
    events: list[NewEvent] = []
    if intent.status in (S.DELIVERED, S.ACKNOWLEDGED, S.SUBMITTED):
        details = {"worker": worker_id} if worker_id else None
        events.append((STATUS_EVENT[S.IN_PROGRESS], S.IN_PROGRESS, None, details))
    return events


def _insert_steps(
    tx: Tx, pos: int, intent: Intent, steps: Sequence[StepInput], count: int
) -> tuple[list[Step], list[NewEvent]]:
    """Record `steps` in ordinal order after the `count` recorded; one already recorded
    under the same key is kept (a worker that sent it twice), under another key it is
    refused. A result that is a `StepFailure` records what the step raised."""
    now = now_iso()
    attempt = intent.delivery_attempt
    recorded: list[Step] = []
    events: list[NewEvent] = []
    for ordinal, key, result in steps:
        if ordinal <= count:
            existing = tx.one("step_at", pos=pos, ordinal=ordinal)
            if existing is not None:
                if existing["step_key"] != key:
                    raise Conflict(
                        f"step {ordinal} of this intent was recorded as "
                        f"{existing['step_key']!r}, not {key!r}",
                        details={"ordinal": ordinal, "recorded": existing["step_key"], "key": key},
                    )
                recorded.append(row_to_step(ordinal, existing))
                continue
        if ordinal != count + 1:
            raise BadInput(f"step ordinal {ordinal} is out of order: {count} steps are recorded")
        error = result.error if isinstance(result, StepFailure) else None
        undo = result.undo if isinstance(result, Undoable) else None
        value = result.result if isinstance(result, Undoable) else result
        value = None if error is not None else value
        insert_step(tx, pos, ordinal, key, value, attempt, now, error, undo)
        count += 1
        recorded.append(Step(ordinal, key, value, attempt, now, error, undo))
        details: dict[str, Any] = {"step": key, "ordinal": ordinal, "attempt": attempt}
        if undo is not None:
            details["compensate"] = undo
        if error is None:
            events.append(("intent.step_completed", S.IN_PROGRESS, None, details))
        else:
            details["error"] = {k: error.get(k) for k in ("type", "message")}
            events.append(("intent.step_failed", S.IN_PROGRESS, None, details))
    return recorded, events


def row_to_step(ordinal: int, row: Any) -> Step:
    return Step(
        ordinal,
        row["step_key"],
        load(row["result"]),
        row["attempt"],
        row["at"],
        load(row["error"]),
        row["undo"],
        load(row["undone"]),
    )


def insert_step(
    tx: Tx,
    pos: int,
    ordinal: int,
    key: str,
    result: Any,
    attempt: int,
    at: str,
    error: Any = None,
    undo: str | None = None,
) -> None:
    tx.write(
        "insert_step",
        pos=pos,
        ordinal=ordinal,
        step_key=key,
        result=dump(result),
        attempt=attempt,
        at=at,
        error=dump(error),
        undo=undo,
    )


def record_step(
    tx: Tx,
    intent_id: str,
    ordinal: int,
    key: str,
    result: Any,
    worker_id: str | None,
) -> tuple[tuple[Step, list[Event]], list[str]]:
    pos, intent, started, count = _start_steps(tx, intent_id, worker_id)
    (step,), stepped = _insert_steps(tx, pos, intent, [(ordinal, key, result)], count)
    if not stepped:  # sent again: already recorded
        return (step, []), []
    _, events = apply_events(tx, pos, intent, S.IN_PROGRESS, [*started, *stepped])
    return (step, events), [intent_id]


def record_steps(
    tx: Tx, intent_id: str, steps: Sequence[StepInput], worker_id: str | None
) -> tuple[list[Step], list[str]]:
    """Several step records of one intent, in ordinal order (not atomic by itself: see
    `atomically`)."""
    pos, intent, started, count = _start_steps(tx, intent_id, worker_id)
    recorded, stepped = _insert_steps(tx, pos, intent, steps, count)
    if not stepped and not started:  # sent again, or only "started" of one in progress
        return recorded, []
    apply_events(tx, pos, intent, S.IN_PROGRESS, [*started, *stepped])
    return recorded, [intent_id]


def progress(
    tx: Tx,
    intent_id: str,
    message: str,
    data: dict[str, Any],
    worker_id: str | None,
) -> tuple[list[Event], list[str]]:
    pos, intent, started = start_work(tx, intent_id, worker_id)
    details = {"message": message, **({"data": data} if data else {})}
    _, events = apply_events(
        tx,
        pos,
        intent,
        S.IN_PROGRESS,
        [*started, ("intent.progress", S.IN_PROGRESS, None, details)],
    )
    return events, [intent_id]
