"""A recorded daemon for snapshot tests: the same data, the same clock, the same pixels.

The shapes are the daemon's own (`test_recorded_shapes_match_a_real_daemon` checks every key
used here against a real daemon's answers), so a snapshot shows what a user would see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
LOG = Path(__file__).resolve().parent / "data" / "ops.log"
#: Snapshots only look: a change made through the recorded daemon is a test's mistake.
READ_ONLY = "the recorded daemon is read-only: snapshot tests do not change anything"


def _id(n: int) -> str:
    return f"{0x6A1F0C00 + n * 0x1111:08x}-0000-4000-8000-{n:012d}"


def _at(minutes_ago: float) -> str:
    from datetime import timedelta

    return (
        (NOW - timedelta(minutes=minutes_ago))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


STATUSES = ["WAITING", "IN_PROGRESS", "COMPLETED", "FAILED", "SUBMITTED", "CANCELED"]
TYPES = ["deploy.v1", "invoice.review.v1", "report.nightly.v1"]
AGENTS = ["agent://shop/ops", "agent://shop/billing", "agent://shop/reports"]


#: What the SDK records when a handler raises.
FAILURE = {
    "type": "QuotaExceeded",
    "message": "quota exceeded",
    "traceback": "Traceback (most recent call last):\n"
    '  File "/srv/shop/reports.py", line 42, in nightly\n'
    '    raise QuotaExceeded("quota exceeded")\n'
    "QuotaExceeded: quota exceeded\n",
}


def intent(n: int) -> dict[str, Any]:
    status = STATUSES[n % len(STATUSES)] if n > 2 else "WAITING"
    return {
        "intent_id": _id(n),
        "intent_type": TYPES[(n - 1) % 3],
        "to_agent": AGENTS[(n - 1) % 3],
        "from_agent": None,
        "reply_to": None,
        "correlation_id": None,
        "payload": {"service": "checkout", "version": f"2.{n}.0", "regions": ["eu-west-1"]},
        "status": status,
        "waiting_reason": "human" if status == "WAITING" else None,
        "human_task": None,
        "deadline_at": None,
        "due_at": None,
        "result": {"deployed": True} if status == "COMPLETED" else None,
        "error": FAILURE if status == "FAILED" else None,
        "delivery_attempt": 2 if status == "FAILED" else 1,
        "max_delivery_attempts": 5,
        "leased_to": None,
        "idempotency_key": None,
        "last_seq": 4,
        "created_at": _at(5 + 7 * n),
        "updated_at": _at(3 + 7 * n),
    }


INTENTS = [intent(n) for n in range(1, 13)]

TASKS: list[dict[str, Any]] = [
    {
        "task_id": f"7b2e9d40-0000-4000-8000-{n:012d}",
        "intent_id": _id(n),
        "intent_type": TYPES[(n - 1) % 3],
        "to_agent": AGENTS[(n - 1) % 3],
        "status": "PENDING",
        "task_type": "approval" if n == 1 else "form",
        "title": title,
        "description": "Production rollout of checkout 2.1.0" if n == 1 else None,
        "details": {"plan": ["drain eu-west-1", "roll 12 pods", "verify"], "risk": "low"}
        if n == 1
        else {"amount": 1280.5, "currency": "EUR"},
        "form_schema": None
        if n == 1
        else {
            "type": "object",
            "properties": {
                "ticket": {"type": "string", "description": "change ticket"},
                "replicas": {"type": "integer", "minimum": 1},
                "notify": {"type": "boolean"},
            },
            "required": ["ticket"],
        },
        "allowed_outcomes": None,
        "required_comment": n == 2,
        "on_timeout": "reject",
        "assignee": None,
        "reminders_sent": n - 1,
        "deadline_at": _at(-30) if n == 1 else None,
        "decision": None,
        "created_at": _at(4 + 7 * n),
        "decided_at": None,
        "human_task": {},
    }
    for n, title in ((1, "Deploy checkout 2.1.0 to production?"), (2, "Approve invoice 4711"))
]

STEPS = [
    {"ordinal": 1, "key": "plan", "result": {"pods": 12}, "attempt": 1, "at": _at(11)},
    {"ordinal": 2, "key": "canary", "result": {"healthy": True}, "attempt": 1, "at": _at(10)},
]


def events(intent_id: str) -> list[dict[str, Any]]:
    rows = [
        ("intent.submitted", "SUBMITTED", 12, {}),
        ("intent.delivered", "DELIVERED", 11.9, {"attempt": 1}),
        ("intent.step_completed", "IN_PROGRESS", 11, {"step": "plan", "ordinal": 1}),
        ("intent.progress", "IN_PROGRESS", 10.5, {"message": "canary at 10%"}),
        ("intent.step_completed", "IN_PROGRESS", 10, {"step": "canary", "ordinal": 2}),
        (
            "intent.human_task_assigned",
            "WAITING",
            9,
            {"task_id": TASKS[0]["task_id"], "human_task": {"title": TASKS[0]["title"]}},
        ),
    ]
    return [
        {
            "intent_id": intent_id,
            "seq": seq,
            "event_type": kind,
            "status": status,
            "at": _at(ago),
            **({"details": details} if details else {}),
        }
        for seq, (kind, status, ago, details) in enumerate(rows, start=1)
    ]


AGENT_ROWS: list[dict[str, Any]] = [
    {
        "address": address,
        "state": state,
        "replicas": [
            {
                "replica": 1,
                "state": state,
                "pid": pid,
                "worker_id": None,
                "restarts": restarts,
                "uptime_seconds": uptime,
                "last_exit": None
                if not restarts
                else {
                    "description": "killed by SIGKILL after 12.3s",
                    "at": _at(30),
                    "returncode": None,
                    "signal": 9,
                    "requested": False,
                },
            }
        ],
        "command": ["python", "agent.py"],
        "cwd": "/srv/shop",
        "env_keys": [],
        "concurrency": 4,
        "max_delivery_attempts": 5,
        "log_path": str(LOG),
        "in_flight": busy,
        "source": "/srv/shop/axme.toml",
    }
    for address, state, pid, restarts, uptime, busy in (
        ("agent://shop/ops", "RUNNING", 4242, 0, 1200.0, 1),
        ("agent://shop/billing", "RUNNING", 4250, 2, 95.0, 0),
        ("agent://shop/reports", "BACKOFF", None, 5, None, 0),
    )
]


class RecordedSource:
    """Answers like a daemon that holds the data above and never changes."""

    async def watch(
        self, *, wait_seconds: float = 60.0
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        yield "watch.ready", {"ok": True}
        await asyncio.Event().wait()

    async def list_intents(
        self,
        *,
        status: str | None = None,
        to_agent: str | None = None,
        text: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        found = [
            i
            for i in reversed(INTENTS)
            if (status is None or i["status"] == status)
            and (to_agent is None or i["to_agent"] == to_agent)
            and (
                not text
                or i["intent_id"].startswith(text)  # as the daemon's `q`: an id prefix too
                or text in i["intent_type"]
                or text in i["to_agent"]
            )
        ]
        return found[:limit]

    async def get_intent(self, intent_id: str) -> dict[str, Any]:
        found = next(i for i in INTENTS if i["intent_id"] == intent_id)
        if found["status"] == "WAITING":
            return {**found, "pending_reason": "waits for a person: axme inbox"}
        return found

    async def list_events(self, intent_id: str, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in events(intent_id) if e["seq"] > since]

    async def list_steps(self, intent_id: str) -> list[dict[str, Any]]:
        return STEPS

    async def stream_events(
        self, intent_id: str, *, since: int = 0, wait_seconds: float = 60.0
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        await asyncio.Event().wait()
        yield "stream.timeout", {}

    async def cancel_intent(self, intent_id: str, *, reason: str | None = None) -> dict[str, Any]:
        raise NotImplementedError(READ_ONLY)

    async def retry_intent(self, intent_id: str) -> dict[str, Any]:
        raise NotImplementedError(READ_ONLY)

    async def list_tasks(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        return TASKS

    async def decide_task(
        self,
        task_id: str,
        outcome: str,
        *,
        comment: str | None = None,
        data: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        raise NotImplementedError(READ_ONLY)

    async def list_agents(self) -> list[dict[str, Any]]:
        return AGENT_ROWS

    async def restart_agent(self, address: str) -> dict[str, Any]:
        raise NotImplementedError(READ_ONLY)
