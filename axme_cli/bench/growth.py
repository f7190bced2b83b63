"""W4 growth: does axme stay as quick with a million intents in its store as with ten thousand?

Filling a store through the API would take hours at 10^6, so the fill writes straight to the
SQLite file with the daemon stopped, in the store's own schema (the daemon creates it first:
`daemon/axme_daemon/store/sql/sqlite/schema.sql`; keep these rows in step with it). Finished
intents are 1-step pipelines with their full timeline; one in a hundred waits for a person
(WAITING_FOR_HUMAN, with a PENDING task), so the inbox grows with the store. After each fill the
daemon starts on the file and the bench measures what a user does.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Smallest size measured; then every power of ten up to the requested scale.
FIRST_SIZE = 10_000
#: Intents per fill transaction.
CHUNK = 20_000
#: Requests timed per figure and size.
SAMPLES = 30

_INTENT_SQL = (
    "INSERT INTO intents (pos, intent_id, intent_type, to_agent, payload, human_task, status, "
    "waiting_reason, result, max_delivery_attempts, delivery_attempt, last_seq, created_at, "
    "updated_at, delivery_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 3, 1, ?, ?, ?, 0)"
)
_EVENT_SQL = (
    "INSERT INTO events (intent_pos, seq, event_type, status, at, details) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_STEP_SQL = (
    "INSERT INTO steps (intent_pos, ordinal, step_key, result, attempt, at) "
    "VALUES (?, 1, 's1', '{\"step\":1,\"ok\":true}', 1, ?)"
)
_TASK_SQL = (
    "INSERT INTO tasks (task_id, intent_pos, ordinal, spec, status, created_at) "
    "VALUES (?, ?, NULL, ?, 'PENDING', ?)"
)
_FINISHED = (
    ("intent.created", "CREATED"),
    ("intent.submitted", "SUBMITTED"),
    ("intent.delivered", "DELIVERED"),
    ("intent.in_progress", "IN_PROGRESS"),
    ("intent.step_completed", "IN_PROGRESS"),
    ("intent.completed", "COMPLETED"),
)
_WAITING = (
    ("intent.created", "CREATED"),
    ("intent.submitted", "SUBMITTED"),
    ("intent.waiting", "WAITING"),
)


def sizes(scale: int) -> list[int]:
    """10^4, 10^5, ... up to `scale` (and `scale` itself)."""
    out = []
    size = FIRST_SIZE
    while size < scale:
        out.append(size)
        size *= 10
    return [*out, scale]


def label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000}k"
    return str(size)


@dataclass
class Filler:
    """Appends intents to one store file; remembers a few ids to `show`."""

    database: Path
    intent_type: str
    to_agent: str
    count: int = 0
    sample_ids: list[str] = field(default_factory=list)

    def grow_to(self, size: int, tick: Callable[[], None]) -> None:
        db = sqlite3.connect(self.database, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=OFF")  # a bench fill: the daemon is stopped
            start = db.execute("SELECT coalesce(max(pos), 0) FROM intents").fetchone()[0] + 1
            while self.count < size:
                n = min(CHUNK, size - self.count)
                db.execute("BEGIN")
                self._insert(db, start, n)
                db.execute("COMMIT")
                start += n
                self.count += n
                tick()
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()

    def _insert(self, db: sqlite3.Connection, first_pos: int, n: int) -> None:
        at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        intents: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        steps: list[tuple[int, str]] = []
        tasks: list[tuple[str, int, str, str]] = []
        payload = json.dumps({"steps": 1})
        task = {"task_type": "approval", "title": "bench: approve?", "on_timeout": "reject"}
        for pos in range(first_pos, first_pos + n):
            intent_id = str(uuid.uuid4())
            if pos % 100 == 0:  # one in a hundred waits for a person
                timeline: tuple[tuple[str, str], ...] = _WAITING
                intents.append(
                    (pos, intent_id, self.intent_type, self.to_agent, payload, json.dumps(task),
                     "WAITING", "WAITING_FOR_HUMAN", None, len(timeline), at, at)
                )  # fmt: skip
                tasks.append((str(uuid.uuid4()), pos, json.dumps(task), at))
            else:
                timeline = _FINISHED
                intents.append(
                    (pos, intent_id, self.intent_type, self.to_agent, payload, None,
                     "COMPLETED", None, '{"steps":1}', len(timeline), at, at)
                )  # fmt: skip
                steps.append((pos, at))
                if pos % 100 == 1 and len(self.sample_ids) < 1000:
                    self.sample_ids.append(intent_id)
            events += [
                (pos, seq, event_type, status, at, None)
                for seq, (event_type, status) in enumerate(timeline, start=1)
            ]
        db.executemany(_INTENT_SQL, intents)
        db.executemany(_EVENT_SQL, events)
        db.executemany(_STEP_SQL, steps)
        db.executemany(_TASK_SQL, tasks)


def timed(samples: int, call: Callable[[], Any]) -> list[float]:
    """Milliseconds of `samples` calls, after one warm-up call."""
    call()
    out = []
    for _ in range(samples):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def store_bytes(database: Path) -> int:
    return sum(
        p.stat().st_size
        for p in (database, database.with_name(database.name + "-wal"))
        if p.exists()
    )
