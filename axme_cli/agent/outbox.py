"""Step records ride with the handler's next request instead of costing one each.

A request per finished step was most of what a short handler cost the daemon. So a step's
record is queued, and leaves with whatever the handler sends next: before the next step
starts (so a step never starts while an earlier one is unrecorded), with its outcome, a
progress event or a wait; or, when the handler goes on with code that is not a step, from a
background thread `FLUSH_DELAY` after the step finished. So the last step before a crash can
run again only when the crash came within `FLUSH_DELAY` of its end, before any other step
started: the same as a crash in the step itself (steps are at-least-once; side effects must
be idempotent).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from axme_cli.errors import AxmeError

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient

#: Longest a finished step's record waits for a ride with the handler's next report.
FLUSH_DELAY = 0.01


@dataclass
class _Box:
    """One delivery's queued records; `sending` orders its requests."""

    records: list[dict[str, Any]] = field(default_factory=list)
    due: float = 0.0
    error: AxmeError | None = None
    sending: threading.Lock = field(default_factory=threading.Lock)


class Outbox:
    """Queued step records of every delivery a worker process runs; one flusher thread."""

    def __init__(self, client: Callable[[], DaemonClient], delay: float = FLUSH_DELAY) -> None:
        self._client = client  # the flusher thread's own client
        self._delay = delay
        self._cond = threading.Condition()
        self._boxes: dict[str, _Box] = {}
        self._thread: threading.Thread | None = None

    def add(self, intent_id: str, record: dict[str, Any]) -> None:
        """Queue one step record; raise what an earlier background send of it was told."""
        with self._cond:
            box = self._boxes.setdefault(intent_id, _Box())
            self._raise(box)
            if not box.records:
                box.due = time.monotonic() + self._delay
            box.records.append(record)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._flush_forever, name="axme-steps", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def holds(self, intent_id: str) -> bool:
        """Whether records of `intent_id` wait to be sent (or are on their way)."""
        with self._cond:
            box = self._boxes.get(intent_id)
            return box is not None and (bool(box.records) or box.sending.locked())

    def take(self, intent_id: str) -> list[dict[str, Any]]:
        """The records not sent yet, for the caller's next request to carry (after any
        send in flight has landed, so the daemon sees them in order)."""
        with self._cond:
            box = self._boxes.pop(intent_id, None)
        if box is None:
            return []
        with box.sending:
            with self._cond:
                records, box.records = box.records, []
            self._raise(box)
        return records

    def flush(self, intent_id: str, client: DaemonClient) -> None:
        """Send what is queued for `intent_id` now, before a report that must follow it."""
        records = self.take(intent_id)
        if records:
            client.record_steps(intent_id, records)

    def discard(self, intent_id: str) -> None:
        """Forget a delivery that ended (whatever is still queued is not sent)."""
        with self._cond:
            self._boxes.pop(intent_id, None)

    @staticmethod
    def _raise(box: _Box) -> None:
        if box.error is not None:
            error, box.error = box.error, None
            raise error

    def _flush_forever(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [(i, b) for i, b in self._boxes.items() if b.records and b.due <= now]
                if not due:
                    waits = [b.due - now for b in self._boxes.values() if b.records]
                    self._cond.wait(min(waits) if waits else None)
                    continue
            for intent_id, box in due:
                with box.sending:
                    with self._cond:
                        records, box.records = box.records, []
                    if not records:
                        continue  # taken by the handler meanwhile
                    try:
                        self._client().record_steps(intent_id, records)
                    except AxmeError as exc:
                        box.error = exc  # the handler's next step or report raises it
