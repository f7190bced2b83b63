"""Ending a durable wait: a handler step that waits is recorded in `waits` and its intent
is WAITING with no lease. Whatever ends the wait (a decision, a timer, a signal, a child
intent finishing) records the step's result and puts the intent back in the queue in the
same transaction; the redelivered handler replays its steps and gets that result.

A wait ends by deleting its row: of two writers ending the same wait, one does.
"""

from __future__ import annotations

from typing import Any

from axme_cli.errors import AlreadyFinal
from axme_cli.protocol import IntentStatus
from axme_daemon.intents import Intent, now_iso
from axme_daemon.lifecycle.timeline import apply_change, dump, load_intent, load_intent_at
from axme_daemon.lifecycle.tx import Tx
from axme_daemon.lifecycle.work import insert_step
from axme_daemon.store.base import Effects

S = IntentStatus


def record_result(tx: Tx, pos: int, intent: Intent, ordinal: int, key: str, result: Any) -> None:
    """The waiting step's result, as its record (the attempt that started the wait)."""
    insert_step(tx, pos, ordinal, key, result, intent.delivery_attempt, now_iso())


def end_wait(tx: Tx, pos: int, ordinal: int, result: Any) -> Intent | None:
    """End a step's wait, recording `result` as the step's; the intent, unless it is final
    (or there was no such wait, or another writer ended it first: None)."""
    wait = tx.one("wait_at", pos=pos, ordinal=ordinal)
    intent = load_intent_at(tx, pos)
    if wait is None or intent is None or tx.run("delete_wait", pos=pos, ordinal=ordinal) != 1:
        return None
    tx.write("drop_wait_timers", pos=pos, ordinal=ordinal)
    record_result(tx, pos, intent, ordinal, wait["step_key"], result)
    return None if intent.status.is_final else intent


def resume_wait(
    tx: Tx,
    pos: int,
    ordinal: int,
    result: Any,
    reason: str,
    actor: str | None,
    effects: Effects,
) -> Intent | None:
    """End a step's wait: record `result` as the step's, and queue the intent again."""
    intent = end_wait(tx, pos, ordinal, result)
    if intent is None:
        return None
    # The wait ended the delivery without failing it: the one that resumes the handler goes
    # on with the same attempt (`ctx.attempt`), so a wait never counts against the attempts.
    updated, _ = apply_change(
        tx,
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


def suspend(
    tx: Tx,
    pos: int,
    intent: Intent,
    waiting_reason: str,
    reason: str,
    **details: Any,
) -> None:
    """WAITING without a lease: the worker lets go until the wait is over."""
    apply_change(
        tx,
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


def send_signal(
    tx: Tx, intent_id: str, name: str, data: Any
) -> tuple[tuple[bool, Effects], list[str]]:
    """Deliver a signal to the wait for it, or keep it for a wait to come."""
    effects = Effects()
    pos, intent = load_intent(tx, intent_id)
    if intent.status.is_final:
        raise AlreadyFinal(f"intent is already {intent.status.value}")
    at = now_iso()
    waiting = tx.one("signal_wait", pos=pos, name=name)
    intent, _ = apply_change(
        tx,
        pos,
        intent,
        intent.status,
        event_type="intent.signal",
        details={"name": name, **({"data": data} if data is not None else {})},
    )
    taken_by = waiting["ordinal"] if waiting else None
    tx.write("insert_signal", pos=pos, name=name, data=dump(data), taken_by=taken_by, at=at)
    effects.touched.add(intent_id)
    if waiting is not None:
        result = {"name": name, "data": data, "at": at}
        resume_wait(tx, pos, waiting["ordinal"], result, f"signal {name!r}", None, effects)
    return (waiting is not None, effects), [intent_id]


def child_finished(tx: Tx, child: Intent) -> tuple[Effects, list[str]]:
    """A child intent ended: its parent's waiting step gets the outcome."""
    effects = Effects()
    for row in tx.all("child_waits", child_id=child.intent_id):
        resume_wait(
            tx,
            row["intent_pos"],
            row["ordinal"],
            child_result(child),
            f"child intent {child.intent_id} {child.status.value}",
            None,
            effects,
        )
    return effects, list(effects.touched)
