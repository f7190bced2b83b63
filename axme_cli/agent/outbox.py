"""Step records and outcomes leave a worker process in as few requests as durability allows.

Two costs shaped this. A request per finished step was most of what a short handler cost the
daemon, so a step's record is queued, and leaves with whatever the handler sends next: before
the next step starts (so a step never starts while an earlier one is unrecorded), with its
outcome, a progress event or a wait; or, when the handler goes on with code that is not a
step, from a background thread `FLUSH_DELAY` after the step finished. So the last step before a
crash can run again only when the crash came within `FLUSH_DELAY` of its end, before any other
step started: the same as a crash in the step itself (steps are at-least-once; side effects
must be idempotent).

And a process running several handlers would still pay a round trip per report. So one report
request is in flight per process at a time; reports that become ready meanwhile wait for it and
then leave together in the next `POST /v1/reports`, which the daemon commits in one
transaction (group commit, on the worker's side). An idle process sends at once; a busy one
sends fewer, fuller requests. Each intent's part is answered on its own: one lost lease fails
only its handler.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from axme_cli.errors import AxmeError, from_wire

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient

#: Longest a finished step's record waits for a ride with the handler's next report.
FLUSH_DELAY = 0.01
#: Longest the news that a handler started (DELIVERED to IN_PROGRESS) waits for a ride: a
#: handler that reports sooner (most do) costs the daemon no request or write for it.
START_DELAY = 0.1


@dataclass
class _Box:
    """One delivery's queued records; `sending` orders its requests."""

    records: list[dict[str, Any]] = field(default_factory=list)
    #: The handler started and no report has said so yet.
    started: bool = False
    due: float = 0.0
    error: AxmeError | None = None
    sending: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pending(self) -> bool:
        """Something to send: step records, or the news that the handler started."""
        return bool(self.records) or self.started


@dataclass
class _Report:
    """One intent's part of a request, and what the daemon answered for it."""

    intent_id: str
    steps: list[dict[str, Any]]
    outcome: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None
    failure: BaseException | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"intent_id": self.intent_id, "steps": self.steps}
        if self.outcome is not None:
            wire["outcome"] = self.outcome
        if not self.steps and self.outcome is None:
            wire["started"] = True  # nothing else to say: the handler is at work
        return wire

    def check(self) -> None:
        """Raise what the daemon (or the transport) said no with."""
        if self.failure is not None:
            raise copy.copy(self.failure)  # the same failure may reach several threads
        answer = self.answer or {}
        if not answer.get("ok"):
            error = answer.get("error") or {}
            raise from_wire(
                int(answer.get("status_code") or 500),
                error.get("code"),
                str(error.get("message") or "the daemon refused the report"),
                error.get("details"),
            )


@dataclass
class _Call:
    """One thread's reports waiting for a ride; `lead` makes it send the next request."""

    reports: list[_Report]
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False


class _Sender:
    """One request in flight per process; the reports that wait meanwhile leave together.

    No thread of its own: the caller that finds nothing in flight sends (its reports and any
    that queued), then hands the turn to the first caller that queued while it was sending.
    """

    def __init__(self, client: Callable[[], DaemonClient]) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []
        self._busy = False

    def send(self, reports: list[_Report]) -> None:
        """Deliver `reports` (answers land on them); returns once they are answered."""
        call = _Call(reports)
        with self._lock:
            self._waiting.append(call)
            call.lead = not self._busy
            self._busy = True
        if not call.lead:
            call.wake.wait()
        if call.lead:
            self._send_waiting()

    def _send_waiting(self) -> None:
        with self._lock:
            calls, self._waiting = self._waiting, []
        reports = [r for c in calls for r in c.reports]
        try:
            answers = self._client().report([r.to_wire() for r in reports])
            for report, answer in zip(reports, answers, strict=True):
                report.answer = answer
        except BaseException as exc:  # the request itself failed: every report hears it
            for report in reports:
                report.failure = exc
        finally:
            with self._lock:
                if self._waiting:
                    turn = self._waiting[0]
                    turn.lead = True
                    turn.wake.set()
                else:
                    self._busy = False
            for c in calls:
                c.wake.set()


class Outbox:
    """Queued step records of every delivery a worker process runs; one flusher thread."""

    def __init__(
        self,
        client: Callable[[], DaemonClient],
        delay: float = FLUSH_DELAY,
        start_delay: float = START_DELAY,
    ) -> None:
        self._sender = _Sender(client)  # each sending thread uses its own client
        self._delay = delay
        self._start_delay = start_delay
        self._cond = threading.Condition()
        self._boxes: dict[str, _Box] = {}
        self._thread: threading.Thread | None = None

    def start(self, intent_id: str) -> None:
        """The handler of `intent_id` began. Its first report moves the intent from
        DELIVERED to IN_PROGRESS; when none leaves within `start_delay` (a long first
        step), a report saying only that goes: a short handler pays nothing for it."""
        with self._cond:
            box = self._boxes.setdefault(intent_id, _Box())
            box.started = True
            box.due = time.monotonic() + self._start_delay
            self._wake_flusher()

    def add(self, intent_id: str, record: dict[str, Any]) -> None:
        """Queue one step record; raise what an earlier background send of it was told."""
        with self._cond:
            box = self._boxes.setdefault(intent_id, _Box())
            self._raise(box)
            if not box.records:
                due = time.monotonic() + self._delay
                box.due = min(box.due, due) if box.started else due
            box.records.append(record)
            self._wake_flusher()

    def _wake_flusher(self) -> None:
        """Start the flusher thread on first use, and have it look at the boxes' due times."""
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
        """The records not sent yet (after any send in flight has landed, so the daemon sees
        them in order)."""
        with self._cond:
            box = self._boxes.pop(intent_id, None)
        if box is None:
            return []
        with box.sending:
            with self._cond:
                records, box.records = box.records, []
            self._raise(box)
        return records

    def flush(self, intent_id: str) -> None:
        """Send what is queued for `intent_id` now, before a report that must follow it.
        A start notice alone keeps waiting for a ride: a step that starts is no report."""
        with self._cond:
            box = self._boxes.get(intent_id)
            if box is not None and box.started and not box.records:
                return
        records = self.take(intent_id)
        if records:
            self._send_one(_Report(intent_id, records))

    def finish(self, intent_id: str, outcome: dict[str, Any]) -> None:
        """Send the delivery's outcome (`action: complete` or `fail`, as `/resume` takes it)
        with its unsent records: the daemon applies them all or none."""
        self._send_one(_Report(intent_id, self.take(intent_id), outcome))

    def discard(self, intent_id: str) -> None:
        """Forget a delivery that ended (whatever is still queued is not sent)."""
        with self._cond:
            self._boxes.pop(intent_id, None)

    def _send_one(self, report: _Report) -> None:
        self._sender.send([report])
        report.check()

    @staticmethod
    def _raise(box: _Box) -> None:
        if box.error is not None:
            error, box.error = box.error, None
            raise error

    def _flush_forever(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [(i, b) for i, b in self._boxes.items() if b.pending and b.due <= now]
                if not due:
                    waits = [b.due - now for b in self._boxes.values() if b.pending]
                    self._cond.wait(min(waits) if waits else None)
                    continue
            with contextlib.ExitStack() as held:
                sent: list[tuple[_Box, _Report]] = []
                for intent_id, box in due:
                    held.enter_context(box.sending)
                    with self._cond:
                        pending = box.pending
                        records, box.records, box.started = box.records, [], False
                    if pending:  # else taken by the handler meanwhile
                        sent.append((box, _Report(intent_id, records)))
                if not sent:
                    continue
                self._sender.send([report for _, report in sent])
                for box, report in sent:
                    try:
                        report.check()
                    except AxmeError as exc:
                        box.error = exc  # the handler's next step or report raises it
