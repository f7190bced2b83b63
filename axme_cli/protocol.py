"""Wire vocabulary of the AXME Intent Protocol, shared by the CLI, the SDK and the daemon.

Imports nothing third-party: the daemon and agents import it, and the CLI's start time
depends on it staying cheap.
"""

from __future__ import annotations

import re
from enum import StrEnum

API_PREFIX = "/v1"

#: The outcomes a human task allows when it does not list its own.
DEFAULT_OUTCOMES = ("approved", "rejected")
#: Outcomes that say no: `Decision.approved` is False, an intent's own task ends CANCELED.
NEGATIVE_OUTCOMES = frozenset({"rejected", "declined", "denied", "failed", "changes_requested"})


class IntentStatus(StrEnum):
    CREATED = "CREATED"
    SUBMITTED = "SUBMITTED"
    DELIVERED = "DELIVERED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    IN_PROGRESS = "IN_PROGRESS"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {IntentStatus.COMPLETED, IntentStatus.FAILED, IntentStatus.CANCELED, IntentStatus.TIMED_OUT}
)

#: Statuses a client may ask `/resolve` for.
RESOLVE_STATUSES = frozenset({IntentStatus.COMPLETED, IntentStatus.FAILED, IntentStatus.CANCELED})

#: The event type that goes with each status change.
STATUS_EVENT = {
    IntentStatus.CREATED: "intent.created",
    IntentStatus.SUBMITTED: "intent.submitted",
    IntentStatus.DELIVERED: "intent.delivered",
    IntentStatus.ACKNOWLEDGED: "intent.acknowledged",
    IntentStatus.IN_PROGRESS: "intent.in_progress",
    IntentStatus.WAITING: "intent.waiting",
    IntentStatus.COMPLETED: "intent.completed",
    IntentStatus.FAILED: "intent.failed",
    IntentStatus.CANCELED: "intent.canceled",
    IntentStatus.TIMED_OUT: "intent.timed_out",
}

#: `agent://org/env/name`: one or more path segments of letters, digits, `._-`.
AGENT_ADDRESS_RE = re.compile(r"^agent://[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def agent_address(raw: str) -> str:
    """`agent://org/env/name` as given, or for a bare name (`human`, `org/env/name`: what
    AXME's SDK `listen("name")` and scenarios send) the same with `agent://` in front, so a
    sender and a listener that spell one agent either way meet. ValueError when it is neither.
    """
    address = raw if "://" in raw else f"agent://{raw}"
    if not AGENT_ADDRESS_RE.match(address):
        raise ValueError(f"not an agent address: {raw!r} (expected agent://org/env/name)")
    return address


#: `intent.pipeline.process.v1`: dotted words, no spaces.
INTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAX_DELIVERY_ATTEMPTS = 3

#: The longest duration axme takes (a task's deadline or reminder, a sleep, a wait's
#: timeout): 366 days. Longer is a mistake, and past it timestamps overflow.
MAX_DURATION_SECONDS = 366 * 24 * 3600
#: Reminders come no sooner than this after the task opens, and repeat no more often:
#: each one is a durable write and an event on the timeline.
MIN_REMIND_SECONDS = 1.0
#: The most reminders one task sends, whether or not it sets `max_reminders`.
MAX_REMINDERS = 1000
