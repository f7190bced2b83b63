"""Intents and events as the daemon holds them; no I/O here.

`check_transition` is the one place that says which status changes are allowed, so the
store, the API and (later) the dispatcher cannot disagree about the lifecycle.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from axme_cli.errors import AlreadyFinal, Conflict
from axme_cli.protocol import IntentStatus

S = IntentStatus

#: Allowed status changes (AXME lifecycle; any non-final status may also end).
_NEXT: dict[IntentStatus, frozenset[IntentStatus]] = {
    S.CREATED: frozenset({S.SUBMITTED}),
    S.SUBMITTED: frozenset({S.DELIVERED, S.IN_PROGRESS, S.WAITING}),
    S.DELIVERED: frozenset({S.ACKNOWLEDGED, S.IN_PROGRESS, S.WAITING, S.SUBMITTED}),
    S.ACKNOWLEDGED: frozenset({S.IN_PROGRESS, S.WAITING, S.SUBMITTED}),
    S.IN_PROGRESS: frozenset({S.WAITING, S.SUBMITTED}),
    S.WAITING: frozenset({S.IN_PROGRESS, S.SUBMITTED}),
}
_ENDINGS = frozenset({S.COMPLETED, S.FAILED, S.CANCELED, S.TIMED_OUT})


def check_transition(current: IntentStatus, target: IntentStatus) -> None:
    """Raise unless an intent in `current` may move to `target`."""
    if current.is_final:
        raise AlreadyFinal(
            f"intent is already {current.value}",
            details={"status": current.value, "requested": target.value},
        )
    if target in _ENDINGS or target in _NEXT.get(current, frozenset()):
        return
    raise Conflict(
        f"cannot move an intent from {current.value} to {target.value}",
        details={"status": current.value, "requested": target.value},
    )


def check_agent_outcome(intent: Intent) -> None:
    """A person's decision is only a person's: no agent ends an intent that waits for one."""
    if intent.status is S.WAITING and intent.waiting_reason == "WAITING_FOR_HUMAN":
        raise Conflict(
            f"intent {intent.intent_id} waits for a person's decision: an agent's outcome "
            "cannot end it (decide its task: axme approve, or POST /v1/tasks/ID/decision)",
            details={"intent_id": intent.intent_id, "code_reason": "waiting_for_human"},
        )


def now_iso() -> str:
    """UTC with milliseconds, `Z`-suffixed: sortable as text and parsed by every client."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: Compact JSON, as the daemon stores and streams it. One encoder made once: `json.dumps`
#: with options builds a new one on every call. NaN and Infinity are not JSON: refused at
#: the edge, and a ValueError here (nothing written) should one get past it.
compact_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_hash(body: dict[str, Any]) -> str:
    """Fingerprint of a create request, to tell a replay from a reused Idempotency-Key."""
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


#: The longest an intent waits between failed delivery attempts.
REDELIVERY_BACKOFF_CAP = 60.0


def redelivery_delay(failed_attempt: int) -> float:
    """Seconds before the next delivery of an intent whose attempt `failed_attempt` failed
    (its process died, its lease was lost, it raised a retryable error). The first failure
    is redelivered at once (a crash costs milliseconds); later ones back off, 1 s, 2 s, 4 s,
    ... up to `REDELIVERY_BACKOFF_CAP`, so an intent that keeps killing its process does not
    spin through its attempts and take the agent's time from the others."""
    if failed_attempt <= 1:
        return 0.0
    return min(REDELIVERY_BACKOFF_CAP, 2.0 ** (failed_attempt - 2))


@dataclass(frozen=True)
class NewIntent:
    """A validated create request."""

    intent_type: str
    to_agent: str
    payload: dict[str, Any]
    from_agent: str | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    human_task: dict[str, Any] | None = None
    deadline_at: str | None = None
    max_delivery_attempts: int = 3
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True)
class Event:
    intent_id: str
    seq: int
    event_type: str
    status: IntentStatus
    at: str
    actor: str | None = None
    details: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "intent_id": self.intent_id,
            "seq": self.seq,
            "event_type": self.event_type,
            "status": self.status.value,
            "at": self.at,
            # AXME clients read an actor on every event: `system` where no one else acted.
            "actor": self.actor or "system",
        }
        if self.details:
            out["details"] = self.details
            if "result" in self.details:
                out["result"] = self.details["result"]
        return out


@dataclass(frozen=True)
class Intent:
    intent_id: str
    intent_type: str
    to_agent: str
    payload: dict[str, Any]
    status: IntentStatus
    created_at: str
    updated_at: str
    last_seq: int
    max_delivery_attempts: int
    delivery_attempt: int = 0
    from_agent: str | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    human_task: dict[str, Any] | None = None
    deadline_at: str | None = None
    waiting_reason: str | None = None
    result: Any = None
    error: Any = None
    idempotency_key: str | None = None
    delivery_seq: int = 0
    lease_worker: str | None = None
    #: Undoing its steps before it ends (`lifecycle/compensation.py`): phase, ending, ...
    saga: dict[str, Any] | None = None
    #: The daemon `lease_worker` is connected to: its heartbeat keeps the lease.
    lease_daemon: str | None = None

    @property
    def saga_phase(self) -> str | None:
        return None if self.saga is None else str(self.saga.get("phase"))

    def to_wire(self) -> dict[str, Any]:
        """The intent as AXME clients read it (`status` and `lifecycle_status` both), plus
        axme's `compensation` (the saga's state) and `compensated` when its steps were undone."""
        wire = self._axme_wire()
        if self.saga is not None:
            wire["compensation"] = self.saga
            wire["compensated"] = self.saga_phase == "compensated"
        return wire

    def _axme_wire(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "intent_type": self.intent_type,
            "to_agent": self.to_agent,
            "from_agent": self.from_agent,
            "reply_to": self.reply_to,
            "correlation_id": self.correlation_id,
            "payload": self.payload,
            "status": self.status.value,
            "lifecycle_status": self.status.value,
            "lifecycle_waiting_reason": self.waiting_reason,
            "waiting_reason": self.waiting_reason,
            "human_task": self.human_task,
            "deadline_at": self.deadline_at,
            "due_at": self.deadline_at,
            "result": self.result,
            "error": self.error,
            "delivery_attempt": self.delivery_attempt,
            "max_delivery_attempts": self.max_delivery_attempts,
            "leased_to": self.lease_worker,
            "idempotency_key": self.idempotency_key,
            "last_seq": self.last_seq,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Step:
    """A memoized step result: recorded once, replayed on every later delivery."""

    ordinal: int
    key: str
    result: Any
    attempt: int
    at: str
    #: The step raised this (and the handler went on): a replay raises it again.
    error: dict[str, Any] | None = None
    #: The name of the compensation that undoes it, should the intent not complete.
    undo: str | None = None
    #: The compensation's outcome once recorded (compensated, skipped, marked_done).
    undone: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        wire = {
            "ordinal": self.ordinal,
            "key": self.key,
            "result": self.result,
            "attempt": self.attempt,
            "at": self.at,
            "error": self.error,
        }
        if self.undo is not None:
            wire["compensate"] = self.undo
            wire["compensation"] = self.undone
        return wire


@dataclass(frozen=True)
class StepFailure:
    """A step record's result when the step raised: what it raised, for replays to raise."""

    error: dict[str, Any]


@dataclass(frozen=True)
class Undoable:
    """A step record's result when the step has a compensation: `undo` names it."""

    result: Any
    undo: str


@dataclass(frozen=True)
class Task:
    """Something a person must decide; the intent (or one of its steps) waits on it."""

    task_id: str
    intent_id: str
    intent_type: str
    to_agent: str
    ordinal: int | None
    spec: dict[str, Any]
    status: str
    assignee: str | None
    reminders: int
    deadline_at: float | None
    decision: dict[str, Any] | None
    created_at: str
    decided_at: str | None

    def to_wire(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "task_id": self.task_id,
            "intent_id": self.intent_id,
            "intent_type": self.intent_type,
            "to_agent": self.to_agent,
            "status": self.status,
            "task_type": spec.get("task_type", "approval"),
            "title": spec.get("title", ""),
            "description": spec.get("description"),
            "details": spec.get("details"),
            "form_schema": spec.get("form_schema"),
            "allowed_outcomes": spec.get("allowed_outcomes"),
            "required_comment": bool(spec.get("required_comment")),
            "on_timeout": spec.get("on_timeout"),
            "assignee": self.assignee,
            "reminders_sent": self.reminders,
            "deadline_at": _iso(self.deadline_at),
            "decision": self.decision,
            "created_at": self.created_at,
            "decided_at": self.decided_at,
            "human_task": spec,
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
