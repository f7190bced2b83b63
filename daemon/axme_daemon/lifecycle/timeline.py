"""An intent and its timeline change together: `apply_events` writes the intent once and
appends its events, so the timeline can never disagree with the status.

The write is conditional on the sequence number it read (`seq = last_seq + 1` holds under
concurrent writers: the one that read an old `last_seq` changes nothing and raises
`StaleWrite` before anything else is written).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from axme_cli.errors import Conflict, NotFound
from axme_cli.protocol import FINAL_STATUSES, STATUS_EVENT, IntentStatus
from axme_daemon.intents import Event, Intent, compact_json, now_iso
from axme_daemon.lifecycle.threads import deliver_completion
from axme_daemon.lifecycle.tx import Row, StaleWrite, Tx

T = TypeVar("T")
#: An event to append: (event_type, status, actor, details).
NewEvent = tuple[str, IntentStatus, str | None, dict[str, Any] | None]


def dump(value: Any) -> str | None:
    return None if value is None else compact_json(value)


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def row_to_intent(row: Row) -> Intent:
    return Intent(
        intent_id=row["intent_id"],
        intent_type=row["intent_type"],
        to_agent=row["to_agent"],
        from_agent=row["from_agent"],
        reply_to=row["reply_to"],
        correlation_id=row["correlation_id"],
        payload=json.loads(row["payload"]),
        human_task=load(row["human_task"]),
        status=IntentStatus(row["status"]),
        waiting_reason=row["waiting_reason"],
        result=load(row["result"]),
        error=load(row["error"]),
        idempotency_key=row["idempotency_key"],
        delivery_attempt=row["delivery_attempt"],
        max_delivery_attempts=row["max_delivery_attempts"],
        deadline_at=row["deadline_at"],
        last_seq=row["last_seq"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        delivery_seq=row["delivery_seq"],
        lease_worker=row["lease_worker"],
        saga=load(row["saga"]),
        lease_daemon=row["lease_daemon"],
    )


def row_to_event(intent_id: str, row: Row) -> Event:
    return Event(
        intent_id,
        row["seq"],
        row["event_type"],
        IntentStatus(row["status"]),
        row["at"],
        row["actor"],
        load(row["details"]),
    )


def load_intent(tx: Tx, intent_id: str) -> tuple[int, Intent]:
    """An intent this write is about to change, and its pos."""
    row = load_row(tx, intent_id)
    return row["pos"], row_to_intent(row)


def load_row(tx: Tx, intent_id: str, query: str = "intent_for_update") -> Row:
    """The row of an intent this write is about to change (`query`: one that reads more
    with it)."""
    row = tx.one(query, intent_id=intent_id)
    if row is None:
        raise NotFound(f"no intent {intent_id}", details={"intent_id": intent_id})
    return row


def load_intent_at(tx: Tx, pos: int) -> Intent | None:
    row = tx.one("intent_at_for_update", pos=pos)
    return None if row is None else row_to_intent(row)


def apply_change(
    tx: Tx,
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
    updated, events = apply_events(tx, pos, intent, status, [event], **changes)
    return updated, events[-1]


def apply_events(
    tx: Tx,
    pos: int,
    intent: Intent,
    status: IntentStatus,
    new_events: Sequence[NewEvent],
    **changes: Any,
) -> tuple[Intent, list[Event]]:
    """Append `new_events` to the timeline and write the intent once: `status`, `changes`
    (Intent field names) and the last event's sequence number. `StaleWrite` when the intent
    changed since `intent` was read (then nothing is written)."""
    first = intent.last_seq + 1
    seq = intent.last_seq + len(new_events)
    now = now_iso()
    updated = replace(intent, status=status, last_seq=seq, updated_at=now, **changes)
    if updated.lease_worker is None:  # a lease ended: nobody's
        updated = replace(updated, lease_daemon=None)
    values: dict[str, Any] = {
        "pos": pos,
        "expected_seq": intent.last_seq,
        "status": status.value,
        "last_seq": seq,
        "updated_at": now,
        "waiting_reason": updated.waiting_reason,
        "delivery_attempt": updated.delivery_attempt,
        "delivery_seq": updated.delivery_seq,
        "lease_worker": updated.lease_worker,
        "lease_daemon": updated.lease_daemon,
    }
    query = "update_intent"
    if "result" in changes or "error" in changes:  # JSON: written only when they change
        query = "update_intent_outcome"
        values["result"] = dump(updated.result)
        values["error"] = dump(updated.error)
    if tx.run(query, **values) != 1:
        raise StaleWrite(
            f"intent {intent.intent_id} changed while this write was deciding; send it again",
            details={"intent_id": intent.intent_id},
        )
    if updated.saga != intent.saga:  # rare: written only when it changes
        tx.write("set_saga", pos=pos, saga=dump(updated.saga))
    if status in FINAL_STATUSES and not intent.status.is_final:
        # Nothing waits for an intent that has ended: close its open task, drop its timers.
        tx.write("close_open_tasks", pos=pos)
        tx.write("drop_waits", pos=pos)
        tx.write("drop_timers", pos=pos)
        deliver_completion(tx, pos, updated)
    tx.run_many(
        "insert_event",
        [
            {
                "intent_pos": pos,
                "seq": first + n,
                "event_type": kind,
                "status": st.value,
                "at": now,
                "actor": who,
                "details": dump(what or None),
            }
            for n, (kind, st, who, what) in enumerate(new_events)
        ],
    )
    events = [
        Event(intent.intent_id, first + n, kind, st, now, who, what or None)
        for n, (kind, st, who, what) in enumerate(new_events)
    ]
    return updated, events


def atomically(tx: Tx, op: Callable[..., T], **kwargs: Any) -> T:
    """Run a write made of several checked writes as one: when a later check refuses, a
    savepoint undoes the earlier writes (ops raise only before they write)."""
    with tx.savepoint():
        return op(tx, **kwargs)


def check_lease(intent: Intent, worker_id: str) -> None:
    if intent.lease_worker not in (None, worker_id):
        raise Conflict(
            f"intent {intent.intent_id} is no longer delivered to this worker "
            f"(it was redelivered; attempt {intent.delivery_attempt})",
            details={"intent_id": intent.intent_id, "code_reason": "lease_lost"},
        )


def last_reason(tx: Tx, pos: int, event_type: str) -> str | None:
    """The `reason` of an intent's last event of `event_type`."""
    row = tx.one("last_event_details", pos=pos, event_type=event_type)
    reason = (load(row["details"]) or {}).get("reason") if row else None
    return str(reason) if reason is not None else None
