"""Delivery: leasing queued intents to workers, ending deliveries as failed attempts (with
the redelivery backoff of `intents.redelivery_delay`, and FAILED once attempts run out), and
retrying a failed intent.

A claim is a conditional write: an intent two workers both read as queued is leased to the
one whose write lands first; the other's write changes nothing and it takes the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from axme_cli.errors import Conflict
from axme_cli.protocol import STATUS_EVENT, IntentStatus
from axme_daemon.intents import Event, Intent, redelivery_delay
from axme_daemon.lifecycle.timeline import (
    apply_change,
    check_lease,
    last_reason,
    load_intent,
    load_intent_at,
    row_to_intent,
)
from axme_daemon.lifecycle.tx import StaleWrite, Tx

S = IntentStatus
_LEASED = (S.DELIVERED.value, S.ACKNOWLEDGED.value, S.IN_PROGRESS.value)


@dataclass(frozen=True)
class Holder:
    """Who a delivery goes to: a worker, the daemon it is connected to (whose heartbeat
    keeps the lease), and that daemon's source of delivery cursors (the cursor a worker's
    stream resumes from: each delivery to a worker has a greater one than the last)."""

    worker_id: str
    daemon_id: str | None
    next_seq: Callable[[], int]


def lease(
    tx: Tx, address: str, holder: Holder, limit: int, reasons: dict[str, str]
) -> tuple[list[tuple[Intent, Event]], list[str]]:
    """Deliver up to `limit` waiting intents of `address` to `holder`, oldest first (never
    a person's own intent: it has no agent code). One another writer took first is skipped."""
    out: list[tuple[Intent, Event]] = []
    for row in tx.all("queued_for_lease", address=address, limit=limit):
        intent = row_to_intent(row)
        reason = reasons.get(intent.intent_id)
        try:
            leased = _deliver(tx, row["pos"], intent, holder, reason)
        except StaleWrite:
            continue
        out.append(leased)
    return out, [i.intent_id for i, _ in out]


def _deliver(
    tx: Tx, pos: int, intent: Intent, holder: Holder, reason: str | None = None
) -> tuple[Intent, Event]:
    """Lease a queued intent to `holder`: its next attempt, and why when it is a
    redelivery (`reason`, else the event that put it back says)."""
    worker_id = holder.worker_id
    attempt = intent.delivery_attempt + 1
    details: dict[str, Any] = {"delivery_attempt": attempt, "worker": worker_id}
    if reason is None and intent.delivery_attempt > 0:
        reason = last_reason(tx, pos, STATUS_EVENT[S.SUBMITTED])
    if reason is not None:
        details["reason"] = reason
    if intent.saga_phase == "compensating":
        details["phase"] = "compensate"
    return apply_change(
        tx,
        pos,
        intent,
        S.DELIVERED,
        details=details,
        delivery_attempt=attempt,
        delivery_seq=holder.next_seq(),
        lease_worker=worker_id,
        lease_daemon=holder.daemon_id,
    )


def oldest_queued(tx: Tx, address: str) -> tuple[int, Intent] | None:
    """The intent of `address` first in the queue (its pos too), unless a person's own:
    what a slot just freed takes next."""
    row = tx.one("next_queued", address=address)
    if row is None or (row["human_task"] is not None and not row["in_workflow"]):
        return None
    return row["pos"], row_to_intent(row)


def queued(tx: Tx, address: str) -> bool:
    """Whether intents of `address` wait in the queue."""
    return tx.one("any_queued", address=address) is not None


def deliver_queued(
    tx: Tx, intent: Intent, holder: Holder, first_at: int | None = None
) -> Intent | None:
    """Deliver an intent queued in this transaction to `holder`, unless older intents of
    its address are queued (then it waits its turn, and None). `first_at`: the caller read
    it first in the queue in this transaction, at that pos."""
    pos = first_at
    if pos is None:
        row = tx.one("oldest_queued", address=intent.to_agent)
        # this intent's own row, when nothing older waits
        if row is None or row["intent_id"] != intent.intent_id:
            return None
        pos = row["pos"]
    try:
        return _deliver(tx, pos, intent, holder)[0]
    except StaleWrite:
        return None


def release(
    tx: Tx,
    intent_ids: list[str] | None,
    worker_id: str | None,
    reason: str,
    details: dict[str, Any] | None = None,
    daemon_id: str | None = None,
) -> tuple[list[tuple[Intent, Event]], list[str]]:
    """End deliveries as failed attempts: FAILED once attempts ran out; else back to the
    queue, at once after a first failure, after a backoff (WAITING_FOR_TIME, a `redeliver`
    timer) after later ones. `details` (e.g. how a process died) go into the event, and into
    the error when the intent fails.

    Selects by `intent_ids` (held by `worker_id`, when given), or every delivery `worker_id`
    holds, or (both None) every delivery held through daemon `daemon_id` or through no daemon
    at all (every delivery when `daemon_id` is None: one daemon per store), which is what a
    daemon (re)starting does: its workers are gone with its last run.
    """
    if intent_ids is not None:
        rows = []
        for intent_id in intent_ids:
            pos, intent = load_intent(tx, intent_id)
            if worker_id is not None:
                check_lease(intent, worker_id)
            rows.append((pos, intent))
    elif worker_id is not None:
        found = tx.all("leased_by_worker_for_update", worker_id=worker_id)
        rows = [(r["pos"], row_to_intent(r)) for r in found]
    else:
        if daemon_id is None:  # one daemon per store: every lease is its own
            found = tx.all("leased_by_anyone_for_update")
        else:
            found = tx.all("leased_by_daemon_for_update", daemon_id=daemon_id)
        rows = [(r["pos"], row_to_intent(r)) for r in found]
    return _end_deliveries(tx, rows, reason, details)


def release_lapsed(
    tx: Tx, daemon_id: str | None, now: float
) -> tuple[list[tuple[Intent, Event]], list[str]]:
    """End the deliveries held through other daemons whose heartbeat is older than their
    lease grace (or which are not registered at all): they died or lost the database, and
    their workers with them as far as anyone can tell. A lease another writer is ending
    right now is skipped (it is that writer's)."""
    rows = tx.all("lapsed_leases_for_update", daemon_id=daemon_id, now=now)
    by_daemon: dict[str, list[tuple[int, Intent]]] = {}
    for r in rows:
        by_daemon.setdefault(r["lease_daemon"], []).append((r["pos"], row_to_intent(r)))
    out: list[tuple[Intent, Event]] = []
    for owner, owned in by_daemon.items():
        reason = f"daemon {owner} stopped heartbeating: its lease lapsed"
        out += _end_deliveries(tx, owned, reason, {"daemon": owner})[0]
    return out, [i.intent_id for i, _ in out]


def _end_deliveries(
    tx: Tx,
    rows: list[tuple[int, Intent]],
    reason: str,
    details: dict[str, Any] | None,
) -> tuple[list[tuple[Intent, Event]], list[str]]:
    from axme_daemon.lifecycle import compensation  # it builds on this module

    out = []
    for pos, intent in rows:
        if intent.status.is_final or intent.status.value not in _LEASED:
            continue
        attempt = intent.delivery_attempt
        said = {"reason": reason, "delivery_attempt": attempt, **(details or {})}
        if intent.saga_phase == "compensating":
            out.append(compensation.released(tx, pos, intent, reason, details))
            continue
        if intent.saga_phase == "canceling":  # it stopped: no need to deliver it again
            out.append(compensation.end(tx, pos, intent, S.CANCELED))
            continue
        if attempt >= intent.max_delivery_attempts:
            error = {
                **(details or {}),
                "message": f"gave up after {attempt} delivery attempts: {reason}",
                "delivery_attempt": attempt,
            }
            out.append(
                compensation.end(
                    tx,
                    pos,
                    intent,
                    S.FAILED,
                    event_type="intent.delivery_failed",
                    details={**said, "error": error},
                    error=error,
                )
            )
            continue
        delay = redelivery_delay(attempt)
        if delay <= 0:
            out.append(apply_change(tx, pos, intent, S.SUBMITTED, details=said, lease_worker=None))
            continue
        waiting = apply_change(
            tx,
            pos,
            intent,
            S.WAITING,
            details={**said, "redeliver_in_seconds": delay},
            waiting_reason="WAITING_FOR_TIME",
            lease_worker=None,
        )
        add_timer(tx, pos, "redeliver", time.time() + delay)
        out.append(waiting)
    return out, [i.intent_id for i, _ in out]


def add_timer(
    tx: Tx,
    pos: int,
    kind: str,
    fire_at: float,
    task_id: str | None = None,
    ordinal: int | None = None,
) -> None:
    """`armed_at` is now: a clock stepped back behind it brings the timer forward (timers.py)."""
    tx.write(
        "insert_timer",
        pos=pos,
        kind=kind,
        fire_at=fire_at,
        task_id=task_id,
        ordinal=ordinal,
        armed_at=time.time(),
    )


def redeliver(tx: Tx, pos: int) -> Intent | None:
    """A failed attempt's backoff is over: back to the queue, saying why it was redelivered
    (the reason the attempt ended, from the event that started the backoff)."""
    intent = load_intent_at(tx, pos)
    if intent is None or intent.status is not S.WAITING:
        return None
    reason = last_reason(tx, pos, STATUS_EVENT[S.WAITING]) or "backoff over"
    details = {"reason": reason, "delivery_attempt": intent.delivery_attempt}
    updated, _ = apply_change(tx, pos, intent, S.SUBMITTED, details=details, waiting_reason=None)
    return updated


def retry(tx: Tx, intent_id: str, actor: str | None) -> tuple[tuple[Intent, Event], list[str]]:
    """A FAILED or TIMED_OUT intent goes back to the queue with fresh delivery attempts."""
    from axme_daemon.lifecycle import compensation  # it builds on this module

    pos, intent = load_intent(tx, intent_id)
    if intent.saga_phase == "stuck":  # the failed compensation runs again
        return compensation.retry_stuck(tx, pos, intent, actor), [intent_id]
    if intent.saga_phase == "compensated":
        raise Conflict(
            "this intent's steps were undone (it is compensated): send it again instead",
            details={"status": intent.status.value, "saga": intent.saga},
        )
    if intent.status not in (S.FAILED, S.TIMED_OUT):
        raise Conflict(
            f"only FAILED or TIMED_OUT intents can be retried; this one is {intent.status.value}",
            details={"status": intent.status.value},
        )
    if tx.one("workflow_for_update", pos=pos) is not None:  # its steps ran, or timed out
        raise Conflict(
            "an intent that runs a workflow (a scenario's, or an agent's then a person's) "
            "cannot be retried; apply or send it again",
            details={"status": intent.status.value},
        )
    if intent.human_task is not None:  # it has no agent code to run again
        raise Conflict(
            "an intent with its own human_task cannot be retried; send it again",
            details={"status": intent.status.value},
        )
    updated = apply_change(
        tx,
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
