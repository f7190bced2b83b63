"""Timers: wake-ups, signal timeouts, reminders, deadlines and redelivery backoffs.

A timer fires by deleting its row in the transaction that applies it: of two writers that
found it due, one deletes it and applies it, the other skips it, so none fires twice.
"""

from __future__ import annotations

from axme_daemon.lifecycle.delivery import redeliver
from axme_daemon.lifecycle.human import deadline_passed, remind
from axme_daemon.lifecycle.scenarios import timer_fired
from axme_daemon.lifecycle.tx import Tx
from axme_daemon.lifecycle.waits import resume_wait
from axme_daemon.store.base import Effects


def fire_timers(tx: Tx, now: float) -> tuple[Effects, list[str]]:
    """Apply every timer due by `now` (up to a batch of them), each once."""
    effects = Effects()
    # Armed after `now`: the clock went back since. Fire at most a full duration from now
    # (and a task shows the deadline it will have).
    moved = tx.all("deadlines_armed_after", now=now)
    tx.run_many("move_task_deadline", moved)
    tx.write("bring_timers_forward", now=now)
    for timer in tx.all("due_timers", now=now):
        # Its intent first, as every rule locks (intent, then its timers): a sweep that
        # held the timer while it waited for the intent deadlocked with another daemon's
        # rule holding the intent and dropping its timers. One held now fires next sweep.
        if tx.one("intent_at_unless_held", pos=timer["intent_pos"]) is None:
            continue
        if not tx.run("delete_timer", timer_id=timer["timer_id"]):
            continue  # another writer fired it
        pos, kind, fire_at = timer["intent_pos"], timer["kind"], timer["fire_at"]
        ordinal, task_id = timer["ordinal"], timer["task_id"]
        if kind == "wake":
            resume_wait(tx, pos, ordinal, {"slept_until": fire_at}, "sleep ended", None, effects)
        elif kind == "wait_timeout":
            resume_wait(tx, pos, ordinal, None, "timed out waiting for a signal", None, effects)
        elif kind == "reminder":
            remind(tx, pos, task_id, fire_at, effects)
        elif kind == "deadline":
            deadline_passed(tx, pos, task_id, effects)
        elif kind in ("step_deadline", "step_retry"):
            timer_fired(tx, pos, kind, ordinal, effects)
        elif kind == "redeliver":
            again = redeliver(tx, pos)
            if again is not None:
                effects.requeued.append(again)
                effects.touched.add(again.intent_id)
    return effects, list(effects.touched)


def next_timer(tx: Tx, now: float) -> float | None:
    """The earliest due time; `now` if the clock went back behind a timer's arming, so that
    `fire_timers` brings it forward at once."""
    row = tx.one("next_timer")
    if row is None or row["fire_at"] is None:
        return None
    return now if float(row["armed_at"]) > now else float(row["fire_at"])
