"""The SQLite write operations. Each runs inside the writer's shared transaction (see
`sqlite.py`), checks everything before it writes, and returns its result plus the ids of the
intents whose timelines it changed.

Status changes go through `_apply`, which updates the intent and appends its event together,
so the timeline can never disagree with the status.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from axme_cli.errors import (
    AlreadyFinal,
    AxmeError,
    BadInput,
    Conflict,
    IdempotencyConflict,
    NotFound,
)
from axme_cli.protocol import FINAL_STATUSES, STATUS_EVENT, IntentStatus
from axme_daemon.intents import (
    Event,
    Intent,
    NewIntent,
    Step,
    StepFailure,
    check_agent_outcome,
    check_transition,
    compact_json,
    now_iso,
    redelivery_delay,
)
from axme_daemon.store.base import WorkerReport

S = IntentStatus
T = TypeVar("T")
#: A step record as workers send it: (ordinal, key, result).
StepInput = tuple[int, str, Any]

INTENT_COLUMNS = (
    "pos, intent_id, intent_type, to_agent, from_agent, reply_to, correlation_id, payload, "
    "human_task, status, waiting_reason, result, error, idempotency_key, delivery_attempt, "
    "max_delivery_attempts, deadline_at, last_seq, created_at, updated_at, delivery_seq, "
    "lease_worker"
)
_LEASED = (S.DELIVERED.value, S.ACKNOWLEDGED.value, S.IN_PROGRESS.value)


def dump(value: Any) -> str | None:
    return None if value is None else compact_json(value)


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def row_to_intent(row: sqlite3.Row) -> Intent:
    return Intent(
        intent_id=row[1],
        intent_type=row[2],
        to_agent=row[3],
        from_agent=row[4],
        reply_to=row[5],
        correlation_id=row[6],
        payload=json.loads(row[7]),
        human_task=load(row[8]),
        status=IntentStatus(row[9]),
        waiting_reason=row[10],
        result=load(row[11]),
        error=load(row[12]),
        idempotency_key=row[13],
        delivery_attempt=row[14],
        max_delivery_attempts=row[15],
        deadline_at=row[16],
        last_seq=row[17],
        created_at=row[18],
        updated_at=row[19],
        delivery_seq=row[20],
        lease_worker=row[21],
    )


def load_intent(db: sqlite3.Connection, intent_id: str) -> tuple[int, Intent]:
    cur = db.execute(f"SELECT {INTENT_COLUMNS} FROM intents WHERE intent_id = ?", (intent_id,))
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no intent {intent_id}", details={"intent_id": intent_id})
    return row[0], row_to_intent(row)


_SET_ALWAYS = (
    "status = ?, last_seq = ?, updated_at = ?, waiting_reason = ?, delivery_attempt = ?, "
    "delivery_seq = ?, lease_worker = ?"
)
#: An event to append: (event_type, status, actor, details).
NewEvent = tuple[str, IntentStatus, str | None, dict[str, Any] | None]


def apply_change(
    db: sqlite3.Connection,
    pos: int,
    intent: Intent,
    status: IntentStatus,
    *,
    event_type: str | None = None,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
    **changes: Any,
) -> tuple[Intent, Event]:
    """Write `changes` (Intent field names) and the status, and append the event."""
    event = (event_type or STATUS_EVENT[status], status, actor, details or None)
    updated, events = apply_events(db, pos, intent, status, [event], **changes)
    return updated, events[-1]


def apply_events(
    db: sqlite3.Connection,
    pos: int,
    intent: Intent,
    status: IntentStatus,
    new_events: Sequence[NewEvent],
    **changes: Any,
) -> tuple[Intent, list[Event]]:
    """Append `new_events` to the timeline and write the intent once: `status`, `changes`
    (Intent field names) and the last event's sequence number."""
    first = intent.last_seq + 1
    seq = intent.last_seq + len(new_events)
    now = now_iso()
    updated = replace(intent, status=status, last_seq=seq, updated_at=now, **changes)
    values = [
        status.value,
        seq,
        now,
        updated.waiting_reason,
        updated.delivery_attempt,
        updated.delivery_seq,
        updated.lease_worker,
    ]
    sets = _SET_ALWAYS
    for column in ("result", "error"):  # JSON: written only when they change
        if column in changes:
            sets += f", {column} = ?"
            values.append(dump(changes[column]))
    db.execute(f"UPDATE intents SET {sets} WHERE pos = ?", (*values, pos))
    if status in FINAL_STATUSES and not intent.status.is_final:
        # Nothing waits for an intent that has ended: close its open task, drop its timers.
        db.execute(
            "UPDATE tasks SET status = 'CLOSED' WHERE intent_pos = ? AND status = 'PENDING'",
            (pos,),
        )
        db.execute("DELETE FROM waits WHERE intent_pos = ?", (pos,))
        db.execute("DELETE FROM timers WHERE intent_pos = ?", (pos,))
    rows = [
        (pos, first + n, kind, st.value, now, who, dump(what or None))
        for n, (kind, st, who, what) in enumerate(new_events)
    ]
    db.executemany(
        "INSERT INTO events (intent_pos, seq, event_type, status, at, actor, details) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    events = [
        Event(intent.intent_id, first + n, kind, st, now, who, what or None)
        for n, (kind, st, who, what) in enumerate(new_events)
    ]
    return updated, events


# -- intents ---------------------------------------------------------------------------


def create(
    db: sqlite3.Connection, new: NewIntent, intent_id: str, lease: tuple[str, int] | None = None
) -> tuple[tuple[Intent, bool], list[str]]:
    """Insert a new intent, queued; or, with `lease` (worker id, delivery cursor), already
    delivered to that worker: one insert, its three events together."""
    if new.idempotency_key is not None:
        cur = db.execute(
            f"SELECT {INTENT_COLUMNS}, request_hash FROM intents WHERE idempotency_key = ?",
            (new.idempotency_key,),
        )
        row = cur.fetchone()
        if row is not None:
            if row[22] != new.request_hash:
                raise IdempotencyConflict(
                    "Idempotency-Key was already used with a different request body",
                    details={"intent_id": row[1]},
                )
            return (row_to_intent(row), False), []
    now = now_iso()
    events: list[tuple[str, str, str | None]] = [
        (STATUS_EVENT[S.CREATED], S.CREATED.value, None),
        (STATUS_EVENT[S.SUBMITTED], S.SUBMITTED.value, None),
    ]
    status, attempt, delivery_seq, worker_id = S.SUBMITTED, 0, 0, None
    if lease is not None:
        status, attempt, (worker_id, delivery_seq) = S.DELIVERED, 1, lease
        details = dump({"delivery_attempt": attempt, "worker": worker_id})
        events.append((STATUS_EVENT[S.DELIVERED], S.DELIVERED.value, details))
    cur = db.execute(
        "INSERT INTO intents (intent_id, intent_type, to_agent, from_agent, reply_to, "
        "correlation_id, payload, human_task, status, idempotency_key, request_hash, "
        "max_delivery_attempts, deadline_at, last_seq, created_at, updated_at, "
        "delivery_attempt, delivery_seq, lease_worker) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            intent_id,
            new.intent_type,
            new.to_agent,
            new.from_agent,
            new.reply_to,
            new.correlation_id,
            dump(new.payload),
            dump(new.human_task),
            status.value,
            new.idempotency_key,
            new.request_hash,
            new.max_delivery_attempts,
            new.deadline_at,
            len(events),
            now,
            now,
            attempt,
            delivery_seq,
            worker_id,
        ),
    )
    pos = cur.lastrowid
    cur.close()
    db.executemany(
        "INSERT INTO events (intent_pos, seq, event_type, status, at, details) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(pos, n, kind, st, now, details) for n, (kind, st, details) in enumerate(events, 1)],
    )
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
    )
    return (intent, True), [intent_id]


def transition(
    db: sqlite3.Connection,
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
) -> tuple[tuple[Intent, Event], list[str]]:
    """A status change requested from outside; ending an intent also ends its lease.

    With `worker_id`, the change is refused unless that worker holds the delivery (or nobody
    does): a worker whose lease was taken away must not finish an intent twice. `steps` are
    recorded first, all or nothing together with the change. `by_agent`: an agent's outcome,
    refused while the intent waits for a person.
    """
    if steps:
        change = dict(worker_id=worker_id, event_type=event_type, actor=actor, details=details)
        return atomically(
            db,
            _steps_then_transition,
            intent_id=intent_id,
            steps=steps,
            status=status,
            result=result,
            error=error,
            by_agent=by_agent,
            **change,
        )
    pos, current = load_intent(db, intent_id)
    if by_agent:
        check_agent_outcome(current)
    check_transition(current.status, status)
    if worker_id is not None:
        check_lease(current, worker_id)
    changes = _ending(status, result, error)
    updated = apply_change(
        db,
        pos,
        current,
        status,
        event_type=event_type,
        actor=actor,
        details=details,
        **changes,
    )
    return updated, [intent_id]


def _steps_then_transition(
    db: sqlite3.Connection,
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
    pos, intent, started = start_work(db, intent_id, worker_id)
    if by_agent:
        check_agent_outcome(intent)
    _, stepped = _insert_steps(db, pos, intent, steps)
    current = S.IN_PROGRESS if started or stepped else intent.status
    check_transition(current, status)
    changes = _ending(status, result, error)
    event = (event_type or STATUS_EVENT[status], status, actor, details or None)
    updated, events = apply_events(db, pos, intent, status, [*started, *stepped, event], **changes)
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
    return changes


def report(
    db: sqlite3.Connection, reports: Sequence[WorkerReport], worker_id: str | None
) -> tuple[list[Intent | AxmeError | None], list[str]]:
    """Several intents' reports as one write: each all or none (a savepoint apiece), a
    refused one answered with its error while the others apply."""
    answers: list[Intent | AxmeError | None] = []
    touched: list[str] = []
    for r in reports:
        try:
            if r.completed:
                (intent, _), ids = transition(
                    db,
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
                    db, record_steps, intent_id=r.intent_id, steps=r.steps, worker_id=worker_id
                )
                answers.append(None)
        except AxmeError as exc:
            answers.append(exc)
        else:
            touched.extend(ids)
    return answers, touched


def atomically(db: sqlite3.Connection, op: Callable[..., T], **kwargs: Any) -> T:
    """Run a write made of several checked writes as one: when a later check refuses, a
    savepoint undoes the earlier writes (ops raise only before they write, see sqlite.py)."""
    db.execute("SAVEPOINT composite")
    try:
        return op(db, **kwargs)
    except AxmeError:
        db.execute("ROLLBACK TO composite")
        raise
    finally:
        db.execute("RELEASE composite")


def check_lease(intent: Intent, worker_id: str) -> None:
    if intent.lease_worker not in (None, worker_id):
        raise Conflict(
            f"intent {intent.intent_id} is no longer delivered to this worker "
            f"(it was redelivered; attempt {intent.delivery_attempt})",
            details={"intent_id": intent.intent_id, "code_reason": "lease_lost"},
        )


# -- delivery --------------------------------------------------------------------------


def lease(
    db: sqlite3.Connection,
    address: str,
    worker_id: str,
    limit: int,
    next_delivery_seq: int,
    reasons: dict[str, str],
) -> tuple[list[tuple[Intent, Event]], list[str]]:
    """Deliver up to `limit` waiting intents of `address` to `worker_id`, oldest first (never
    a person's own intent: it has no agent code)."""
    cur = db.execute(
        f"SELECT {INTENT_COLUMNS} FROM intents WHERE to_agent = ? AND status = ? "
        "AND human_task IS NULL ORDER BY pos LIMIT ?",
        (address, S.SUBMITTED.value, limit),
    )
    rows = list(cur.fetchall())
    out = []
    for offset, row in enumerate(rows):
        intent = row_to_intent(row)
        reason = reasons.get(intent.intent_id)
        out.append(_deliver(db, row[0], intent, worker_id, next_delivery_seq + offset, reason))
    return out, [i.intent_id for i, _ in out]


def _deliver(
    db: sqlite3.Connection,
    pos: int,
    intent: Intent,
    worker_id: str,
    delivery_seq: int,
    reason: str | None = None,
) -> tuple[Intent, Event]:
    """Lease a queued intent to `worker_id`: its next attempt, and why when it is a
    redelivery (`reason`, else the event that put it back says)."""
    attempt = intent.delivery_attempt + 1
    details: dict[str, Any] = {"delivery_attempt": attempt, "worker": worker_id}
    if reason is None and intent.delivery_attempt > 0:
        reason = _release_reason(db, pos)
    if reason is not None:
        details["reason"] = reason
    return apply_change(
        db,
        pos,
        intent,
        S.DELIVERED,
        details=details,
        delivery_attempt=attempt,
        delivery_seq=delivery_seq,
        lease_worker=worker_id,
    )


def oldest_queued(db: sqlite3.Connection, address: str) -> tuple[int, Intent] | None:
    """The intent of `address` first in the queue (its pos too), unless a person's own."""
    cur = db.execute(
        f"SELECT {INTENT_COLUMNS} FROM intents WHERE to_agent = ? AND status = ? "
        "ORDER BY pos LIMIT 1",
        (address, S.SUBMITTED.value),
    )
    row = cur.fetchone()
    return None if row is None or row[8] is not None else (row[0], row_to_intent(row))


def queued(db: sqlite3.Connection, address: str) -> bool:
    """Whether intents of `address` wait in the queue."""
    cur = db.execute(
        "SELECT 1 FROM intents WHERE to_agent = ? AND status = ? AND human_task IS NULL LIMIT 1",
        (address, S.SUBMITTED.value),
    )
    return cur.fetchone() is not None


def deliver_queued(
    db: sqlite3.Connection,
    intent: Intent,
    worker_id: str,
    delivery_seq: int,
    first_at: int | None = None,
) -> Intent | None:
    """Deliver an intent queued in this transaction to `worker_id`, unless older intents of
    its address are queued (then it waits its turn, and None). `first_at`: the caller read
    it first in the queue in this transaction, at that pos."""
    pos = first_at
    if pos is None:
        cur = db.execute(
            "SELECT pos, intent_id FROM intents WHERE to_agent = ? AND status = ? "
            "ORDER BY pos LIMIT 1",
            (intent.to_agent, S.SUBMITTED.value),
        )
        pos, oldest = cur.fetchone()  # this intent's own row, when nothing older waits
        if oldest != intent.intent_id:
            return None
    return _deliver(db, pos, intent, worker_id, delivery_seq)[0]


def _release_reason(db: sqlite3.Connection, pos: int) -> str | None:
    """Why the last delivery of an intent ended, from the event that put it back."""
    return _last_reason(db, pos, STATUS_EVENT[S.SUBMITTED])


def _last_reason(db: sqlite3.Connection, pos: int, event_type: str) -> str | None:
    """The `reason` of an intent's last event of `event_type`."""
    row = db.execute(
        "SELECT details FROM events WHERE intent_pos = ? AND event_type = ? "
        "ORDER BY seq DESC LIMIT 1",
        (pos, event_type),
    ).fetchone()
    reason = (load(row[0]) or {}).get("reason") if row else None
    return str(reason) if reason is not None else None


def release(
    db: sqlite3.Connection,
    intent_ids: list[str] | None,
    worker_id: str | None,
    reason: str,
    details: dict[str, Any] | None = None,
) -> tuple[list[tuple[Intent, Event]], list[str]]:
    """End deliveries as failed attempts: FAILED once attempts ran out; else back to the
    queue, at once after a first failure, after a backoff (WAITING_FOR_TIME, a `redeliver`
    timer) after later ones. `details` (e.g. how a process died) go into the event, and into
    the error when the intent fails.

    Selects by `intent_ids` (held by `worker_id`, when given), or every delivery `worker_id`
    holds, or (both None) every delivery at all, which is what a daemon restart does.
    """
    if intent_ids is not None:
        rows = []
        for intent_id in intent_ids:
            pos, intent = load_intent(db, intent_id)
            if worker_id is not None:
                check_lease(intent, worker_id)
            rows.append((pos, intent))
    else:
        where = "lease_worker = ?" if worker_id is not None else "lease_worker IS NOT NULL"
        args = (worker_id,) if worker_id is not None else ()
        cur = db.execute(f"SELECT {INTENT_COLUMNS} FROM intents WHERE {where}", args)
        rows = [(r[0], row_to_intent(r)) for r in cur.fetchall()]
    out = []
    for pos, intent in rows:
        if intent.status.is_final or intent.status.value not in _LEASED:
            continue
        attempt = intent.delivery_attempt
        said = {"reason": reason, "delivery_attempt": attempt, **(details or {})}
        if attempt >= intent.max_delivery_attempts:
            error = {
                **(details or {}),
                "message": f"gave up after {attempt} delivery attempts: {reason}",
                "delivery_attempt": attempt,
            }
            out.append(
                apply_change(
                    db,
                    pos,
                    intent,
                    S.FAILED,
                    event_type="intent.delivery_failed",
                    details={**said, "error": error},
                    error=error,
                    lease_worker=None,
                )
            )
            continue
        delay = redelivery_delay(attempt)
        if delay <= 0:
            out.append(apply_change(db, pos, intent, S.SUBMITTED, details=said, lease_worker=None))
            continue
        now = time.time()
        db.execute(
            "INSERT INTO timers (intent_pos, kind, fire_at, armed_at) "
            "VALUES (?, 'redeliver', ?, ?)",
            (pos, now + delay, now),
        )
        out.append(
            apply_change(
                db,
                pos,
                intent,
                S.WAITING,
                details={**said, "redeliver_in_seconds": delay},
                waiting_reason="WAITING_FOR_TIME",
                lease_worker=None,
            )
        )
    return out, [i.intent_id for i, _ in out]


def redeliver(db: sqlite3.Connection, pos: int) -> Intent | None:
    """A failed attempt's backoff is over: back to the queue, saying why it was redelivered
    (the reason the attempt ended, from the event that started the backoff)."""
    cur = db.execute("SELECT intent_id FROM intents WHERE pos = ?", (pos,))
    (intent_id,) = cur.fetchone() or (None,)
    if intent_id is None:
        return None
    _, intent = load_intent(db, str(intent_id))
    if intent.status is not S.WAITING:
        return None
    reason = _last_reason(db, pos, STATUS_EVENT[S.WAITING]) or "backoff over"
    details = {"reason": reason, "delivery_attempt": intent.delivery_attempt}
    updated, _ = apply_change(db, pos, intent, S.SUBMITTED, details=details, waiting_reason=None)
    return updated


def retry(
    db: sqlite3.Connection, intent_id: str, actor: str | None
) -> tuple[tuple[Intent, Event], list[str]]:
    """A FAILED or TIMED_OUT intent goes back to the queue with fresh delivery attempts."""
    pos, intent = load_intent(db, intent_id)
    if intent.status not in (S.FAILED, S.TIMED_OUT):
        raise Conflict(
            f"only FAILED or TIMED_OUT intents can be retried; this one is {intent.status.value}",
            details={"status": intent.status.value},
        )
    if intent.human_task is not None:  # it has no agent code to run again
        raise Conflict(
            "an intent with its own human_task cannot be retried; send it again",
            details={"status": intent.status.value},
        )
    updated = apply_change(
        db,
        pos,
        intent,
        S.SUBMITTED,
        actor=actor,
        details={"reason": f"retried (was {intent.status.value})"},
        delivery_attempt=0,
        lease_worker=None,
        error=None,
    )
    return updated, [intent_id]


def start_work(
    db: sqlite3.Connection, intent_id: str, worker_id: str | None
) -> tuple[int, Intent, list[NewEvent]]:
    """Load an intent a worker reports on; its first report moves it to IN_PROGRESS (the
    event returned, for the caller to append with its own)."""
    pos, intent = load_intent(db, intent_id)
    if intent.status.is_final:
        raise AlreadyFinal(f"intent is already {intent.status.value}")
    if worker_id is not None:
        check_lease(intent, worker_id)
    events: list[NewEvent] = []
    if intent.status in (S.DELIVERED, S.ACKNOWLEDGED, S.SUBMITTED):
        details = {"worker": worker_id} if worker_id else None
        events.append((STATUS_EVENT[S.IN_PROGRESS], S.IN_PROGRESS, None, details))
    return pos, intent, events


def _insert_steps(
    db: sqlite3.Connection, pos: int, intent: Intent, steps: Sequence[StepInput]
) -> tuple[list[Step], list[NewEvent]]:
    """Record `steps` in ordinal order; one already recorded under the same key is kept
    (a worker that sent it twice), under another key it is refused. A result that is a
    `StepFailure` records what the step raised."""
    cur = db.execute("SELECT count(*) FROM steps WHERE intent_pos = ?", (pos,))
    count = (cur.fetchone() or (0,))[0]
    now = now_iso()
    attempt = intent.delivery_attempt
    recorded: list[Step] = []
    events: list[NewEvent] = []
    for ordinal, key, result in steps:
        if ordinal <= count:
            cur = db.execute(
                "SELECT step_key, result, attempt, at, error FROM steps "
                "WHERE intent_pos = ? AND ordinal = ?",
                (pos, ordinal),
            )
            existing = cur.fetchone()
            if existing is not None:
                if existing[0] != key:
                    raise Conflict(
                        f"step {ordinal} of this intent was recorded as {existing[0]!r}, "
                        f"not {key!r}",
                        details={"ordinal": ordinal, "recorded": existing[0], "key": key},
                    )
                recorded.append(
                    Step(
                        ordinal, key, load(existing[1]), existing[2], existing[3], load(existing[4])
                    )
                )
                continue
        if ordinal != count + 1:
            raise BadInput(f"step ordinal {ordinal} is out of order: {count} steps are recorded")
        error = result.error if isinstance(result, StepFailure) else None
        value = None if error is not None else result
        db.execute(
            "INSERT INTO steps (intent_pos, ordinal, step_key, result, attempt, at, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pos, ordinal, key, dump(value), attempt, now, dump(error)),
        )
        count += 1
        recorded.append(Step(ordinal, key, value, attempt, now, error))
        details: dict[str, Any] = {"step": key, "ordinal": ordinal, "attempt": attempt}
        if error is None:
            events.append(("intent.step_completed", S.IN_PROGRESS, None, details))
        else:
            details["error"] = {k: error.get(k) for k in ("type", "message")}
            events.append(("intent.step_failed", S.IN_PROGRESS, None, details))
    return recorded, events


def record_step(
    db: sqlite3.Connection,
    intent_id: str,
    ordinal: int,
    key: str,
    result: Any,
    worker_id: str | None,
) -> tuple[tuple[Step, list[Event]], list[str]]:
    pos, intent, started = start_work(db, intent_id, worker_id)
    (step,), stepped = _insert_steps(db, pos, intent, [(ordinal, key, result)])
    if not stepped:  # sent again: already recorded
        return (step, []), []
    _, events = apply_events(db, pos, intent, S.IN_PROGRESS, [*started, *stepped])
    return (step, events), [intent_id]


def record_steps(
    db: sqlite3.Connection, intent_id: str, steps: Sequence[StepInput], worker_id: str | None
) -> tuple[list[Step], list[str]]:
    """Several step records of one intent, in ordinal order (not atomic by itself: see
    `atomically`)."""
    pos, intent, started = start_work(db, intent_id, worker_id)
    recorded, stepped = _insert_steps(db, pos, intent, steps)
    if not stepped and not started:  # sent again, or only "started" of one in progress
        return recorded, []
    apply_events(db, pos, intent, S.IN_PROGRESS, [*started, *stepped])
    return recorded, [intent_id]


def progress(
    db: sqlite3.Connection,
    intent_id: str,
    message: str,
    data: dict[str, Any],
    worker_id: str | None,
) -> tuple[list[Event], list[str]]:
    pos, intent, started = start_work(db, intent_id, worker_id)
    details = {"message": message, **({"data": data} if data else {})}
    _, events = apply_events(
        db,
        pos,
        intent,
        S.IN_PROGRESS,
        [*started, ("intent.progress", S.IN_PROGRESS, None, details)],
    )
    return events, [intent_id]


# -- agents ----------------------------------------------------------------------------


def put_agents(
    db: sqlite3.Connection,
    source: str,
    digest: str | None,
    specs: list[dict[str, Any]],
    replace_source: bool,
    hooks: list[dict[str, Any]] | None = None,
) -> tuple[bool, list[str]]:
    """Upsert `specs` from `source`; with `replace_source`, drop that source's other agents.
    With a `digest` (a project), its `hooks` replace the ones stored for it.

    Returns False (and writes nothing) when `digest` is the one already applied for `source`.
    """
    if digest is not None:
        cur = db.execute("SELECT digest FROM projects WHERE config_path = ?", (source,))
        row = cur.fetchone()
        if row is not None and row[0] == digest:
            return False, []
    now = now_iso()
    if replace_source:
        keep = [s["address"] for s in specs]
        marks = ",".join("?" * len(keep)) or "''"
        db.execute(
            f"DELETE FROM agents WHERE source = ? AND address NOT IN ({marks})", (source, *keep)
        )
    for spec in specs:
        db.execute(
            "INSERT INTO agents (address, spec, source, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET "
            "spec = excluded.spec, source = excluded.source, updated_at = excluded.updated_at",
            (spec["address"], dump(spec), source, now, now),
        )
    if digest is not None:
        db.execute(
            "INSERT INTO projects (config_path, digest, applied_at, hooks) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (config_path) DO UPDATE SET digest = excluded.digest, "
            "applied_at = excluded.applied_at, hooks = excluded.hooks",
            (source, digest, now, dump(hooks or [])),
        )
    return True, []


def delete_agent(db: sqlite3.Connection, address: str) -> tuple[bool, list[str]]:
    return _deleted(db.execute("DELETE FROM agents WHERE address = ?", (address,)))


def set_agent_removed(
    db: sqlite3.Connection, address: str, removed: bool
) -> tuple[bool, list[str]]:
    # A flag in the spec itself: a changed axme.toml rewrites the spec, and so clears it.
    spec = (
        "json_set(spec, '$.removed', json('true'))" if removed else "json_remove(spec, '$.removed')"
    )
    cur = db.execute(
        f"UPDATE agents SET spec = {spec}, updated_at = ? WHERE address = ?", (now_iso(), address)
    )
    return _deleted(cur)


def _deleted(cur: sqlite3.Cursor) -> tuple[bool, list[str]]:
    deleted = cur.rowcount > 0
    cur.close()
    return deleted, []


def put_api_key(
    db: sqlite3.Connection, name: str, key_hash: str, scopes: list[str]
) -> tuple[dict[str, Any], list[str]]:
    cur = db.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,))
    if cur.fetchone() is not None:
        raise Conflict(
            f"a key named {name!r} exists already (axme keys revoke {name} first)",
            details={"name": name},
        )
    row = {"name": name, "scopes": scopes, "created_at": now_iso()}
    db.execute(
        "INSERT INTO api_keys (name, key_hash, scopes, created_at) VALUES (?, ?, ?, ?)",
        (name, key_hash, compact_json(scopes), row["created_at"]),
    )
    return row, []


def delete_api_key(db: sqlite3.Connection, name: str) -> tuple[bool, list[str]]:
    return _deleted(db.execute("DELETE FROM api_keys WHERE name = ?", (name,)))
