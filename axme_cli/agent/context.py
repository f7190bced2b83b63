"""What a handler sees: the intent, and `step`/`progress` that make its work durable.

`ctx.step(name, fn, ...)` runs `fn` once per intent: its JSON result is recorded in the daemon
before the handler goes on, and every later delivery of the intent (after a crash, a restart,
a retry) gets the recorded result back instead of running `fn` again. Steps are keyed by name
and occurrence (`fetch`, `fetch#2`, ...), in the order the handler calls them; code between
steps is plain Python and may do anything.

A step whose function raises records nothing while the exception propagates: the intent fails
(or is delivered again) and a later delivery runs the step again. When the handler catches the
exception and goes on to another step or wait, the failure is recorded first, in the step's
place, and every replay raises the same exception there instead of running the step: the
handler takes the same `except` path on every delivery.

`ctx.step(name, fn, *args, compensate=undo)` records with the step that `undo(result, *args)`
must run should the intent not complete (see `saga.py`). A cancel asked while the handler
runs raises `IntentCanceled` at its next `ctx` call.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from axme_cli.durations import parse_duration
from axme_cli.errors import BadInput
from axme_cli.protocol import MAX_REMINDERS, MIN_REMIND_SECONDS, NEGATIVE_OUTCOMES

if TYPE_CHECKING:
    from axme_cli.agent.outbox import Outbox
    from axme_cli.client import DaemonClient

T = TypeVar("T")
#: How many more times a failing compensation runs (with the step's backoff) before a
#: person is asked to decide (retry, skip, mark done).
COMPENSATE_RETRIES = 3


@dataclass(frozen=True)
class Undo:
    """A step's compensation, as the handler passed it (run as `fn(result, *args)`)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    retries: int = COMPENSATE_RETRIES
    backoff: float = 1.0


class RetryableError(Exception):
    """Raise (or subclass) this in a handler to have the intent delivered again.

    Any other exception fails the intent at once, unless the handler lists it in `retry_on`.
    Each redelivery counts against the intent's `max_delivery_attempts`; finished steps are
    not run again.
    """


class IntentCanceled(BaseException):
    """A cancel was asked (`axme cancel`) while the handler ran: raised at its next `ctx`
    call. Catch it by name (or use `finally`) to clean up; the intent then ends CANCELED,
    after the compensations of its recorded steps. Not an `Exception`, so that a handler's
    `except Exception` does not take it for a failure of its own."""


class Rejected(Exception):
    """A person rejected an approval asked with `on_reject="compensate"`: the intent is
    canceled and its steps' compensations run (`.decision` is what they decided)."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(f"{decision.outcome} by {decision.actor}")


class ReplayEnd(BaseException):
    """The compensation phase replayed the handler up to the end of its record: a step or
    wait past it would be new work, which a saga being undone does not start."""


class ReplayMismatch(Exception):
    """The handler called its steps in another order than the recorded run did."""


class StepResultNotJSON(TypeError):
    """A step returned something that cannot be recorded as JSON."""


class StepFailed(Exception):
    """Raised on replay in place of a recorded step failure whose exception class cannot
    be rebuilt in this process (`.error` holds the record: type, message, ...)."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error
        super().__init__(f"{error.get('type')}: {error.get('message')}")


def failure_record(exc: BaseException) -> dict[str, Any]:
    """What a raising step records: its exception, as JSON, with what rebuilds it."""
    cls = type(exc)
    record: dict[str, Any] = {
        "type": cls.__name__,
        "message": str(exc),
        "module": cls.__module__,
        "qualname": cls.__qualname__,
    }
    try:
        record["args"] = json.loads(json.dumps(list(exc.args)))
    except (TypeError, ValueError):
        pass
    lines = traceback.format_exception(cls, exc, exc.__traceback__)
    record["traceback"] = "".join(lines[-12:])
    return record


def rebuild_failure(error: dict[str, Any]) -> Exception:
    """The exception a recorded step failure stands for: its own class when that class is
    loaded in this process (no import: nothing the record names is run) and takes its
    recorded args, else `StepFailed`."""
    module = sys.modules.get(str(error.get("module")))
    cls: Any = module
    for part in str(error.get("qualname") or "").split("."):
        cls = getattr(cls, part, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(*(error.get("args") or [error.get("message", "")]))
        except Exception:
            pass
    return StepFailed(error)


class Suspended(BaseException):
    """The intent now waits (for a person, a timer, a signal, a child intent): the handler
    unwinds and the worker lets the delivery go. Not an error; do not catch it."""


class ChildFailed(Exception):
    """A child intent started with `ctx.call` did not complete."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        self.outcome = outcome
        error = outcome.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else error
        super().__init__(
            f"child intent {outcome.get('intent_id')} ended {outcome.get('status')}"
            + (f": {message}" if message else "")
        )


@dataclass(frozen=True)
class Decision:
    """What a person decided on a task (recorded once, returned on every replay)."""

    outcome: str
    actor: str | None
    comment: str | None
    data: dict[str, Any]
    at: str | None
    task_id: str | None

    @property
    def approved(self) -> bool:
        return bool(self.outcome) and self.outcome not in NEGATIVE_OUTCOMES

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Decision:
        return cls(
            outcome=str(record.get("outcome", "")),
            actor=record.get("actor"),
            comment=record.get("comment"),
            data=dict(record.get("data") or {}),
            at=record.get("at"),
            task_id=record.get("task_id"),
        )


def _seconds(value: str | float | None, name: str, at_least: float = 0.0) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, option=name, at_least=at_least)
    except BadInput as exc:
        raise ValueError(exc.message) from None


def task_arguments(
    task_type: str,
    title: str,
    *,
    description: str | None = None,
    details: Any = None,
    form_schema: dict[str, Any] | None = None,
    allowed_outcomes: list[str] | None = None,
    required_comment: bool = False,
    assignees: list[str] | None = None,
    remind_after: str | float | None = None,
    remind_interval: str | float | None = None,
    max_reminders: int | None = None,
    deadline: str | float | None = None,
    on_timeout: str = "reject",
    escalate_to: str | None = None,
    on_reject: str | None = None,
) -> dict[str, Any]:
    """The task as the daemon takes it (durations like "5m" become seconds)."""
    if on_reject not in (None, "return", "compensate"):
        raise ValueError(f"on_reject: must be 'return' or 'compensate', got {on_reject!r}")
    spec: dict[str, Any] = {
        "task_type": task_type,
        "title": title,
        "description": description,
        "details": _as_json("details", details) if details is not None else None,
        "form_schema": form_schema,
        "allowed_outcomes": allowed_outcomes,
        "required_comment": required_comment,
        "assignees": assignees,
        "remind_after_seconds": _seconds(remind_after, "remind_after", MIN_REMIND_SECONDS),
        "remind_interval_seconds": _seconds(remind_interval, "remind_interval", MIN_REMIND_SECONDS),
        "max_reminders": _reminders(max_reminders),
        "deadline_seconds": _seconds(deadline, "deadline"),
        "on_timeout": on_timeout,
        "escalate_to": escalate_to,
        "on_reject": on_reject,
    }
    return {k: v for k, v in spec.items() if v is not None}


def _reminders(count: int | None) -> int | None:
    if count is not None and not 0 <= count <= MAX_REMINDERS:
        raise ValueError(f"max_reminders: must be from 0 to {MAX_REMINDERS}")
    return count


def _as_json(key: str, value: Any) -> Any:
    """The value as it will come back on replay (tuples become lists, ...), or a clear error."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise StepResultNotJSON(
            f"step {key!r} returned a {type(value).__name__}, which cannot be recorded as JSON "
            f"({exc}); return dicts, lists, strings, numbers, booleans or None"
        ) from None


class _Steps:
    """Ordinals, keys and the replay check, shared by the sync and async contexts."""

    def __init__(self, recorded: list[dict[str, Any]]) -> None:
        self.recorded = sorted(recorded, key=lambda s: int(s["ordinal"]))
        self.ordinal = 0
        self.seen: Counter[str] = Counter()
        #: The last step raised and nothing came after it yet: (ordinal, key, error). It is
        #: recorded only if the handler goes on to another step or wait.
        self.failed: tuple[int, str, dict[str, Any]] | None = None

    def next(self, name: str, retries: int) -> tuple[int, str, bool, Any]:
        """(ordinal, key, replayed?, recorded result) for the handler's next step; a
        replayed failure raises what the step raised when it ran."""
        if not isinstance(name, str) or not name or "#" in name:
            raise ValueError(f"step names are non-empty strings without '#', got {name!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number >= 0, got {retries!r}")
        self.ordinal += 1
        self.seen[name] += 1
        key = name if self.seen[name] == 1 else f"{name}#{self.seen[name]}"
        if self.ordinal <= len(self.recorded):
            record = self.recorded[self.ordinal - 1]
            if record["key"] != key:
                raise ReplayMismatch(
                    f"step {self.ordinal} of this intent was recorded as {record['key']!r} on "
                    f"an earlier delivery, but the handler now calls {key!r} there. Step names "
                    "and their order must depend only on the payload and earlier step results "
                    "(not on time, randomness or outside state), so that a redelivery can "
                    "replay them; to change a handler, give the new version another intent type."
                )
            if record.get("error"):
                raise rebuild_failure(record["error"])
            return self.ordinal, key, True, record["result"]
        return self.ordinal, key, False, None

    def take_failed(self) -> dict[str, Any] | None:
        """The record of a step that raised, for the outbox before the step after it."""
        if self.failed is None:
            return None
        ordinal, key, error = self.failed
        self.failed = None
        return {"ordinal": ordinal, "key": key, "result": None, "error": error}


class Context:
    """The context of one delivery, for a sync handler."""

    def __init__(
        self, client: DaemonClient, delivery: dict[str, Any], outbox: Outbox | None = None
    ) -> None:
        """Without an `outbox`, each step's record is sent before `step` returns."""
        self._client = client
        self._outbox = outbox
        self.intent: dict[str, Any] = delivery["intent"]
        self.intent_id: str = delivery["intent_id"]
        self.intent_type: str = self.intent["intent_type"]
        self.payload: dict[str, Any] = self.intent.get("payload") or {}
        self.attempt: int = int(delivery.get("delivery_attempt") or 1)
        self._steps = _Steps(list(delivery.get("steps") or []))
        #: This delivery undoes the intent's steps: the handler only replays its record.
        self.compensating: bool = delivery.get("phase") == "compensate"
        #: The compensations of the steps this delivery ran or replayed, by step key.
        self.undo: dict[str, Undo] = {}
        #: Set (by the worker's stream thread) when a cancel was asked: the reason.
        self.cancel_reason: str | None = None
        #: `IntentCanceled` was raised: whatever the handler does then, the intent is canceled.
        self.stopped = False

    def _enter(self) -> None:
        """Every ctx call starts here: a cancel asked since stops the handler."""
        if self.cancel_reason is not None and not self.compensating:
            self.stopped = True
            raise IntentCanceled(self.cancel_reason)

    def _next(self, name: str, retries: int) -> tuple[int, str, bool, Any]:
        ordinal, key, replayed, result = self._steps.next(name, retries)
        if self.compensating and not replayed:
            raise ReplayEnd(key)
        return ordinal, key, replayed, result

    def _keep_undo(
        self, key: str, compensate: Callable[..., Any] | None, args: tuple[Any, ...], **how: Any
    ) -> str | None:
        """Remember the step's compensation; its name, for the record."""
        if compensate is None:
            return None
        if not callable(compensate):
            raise ValueError(f"compensate: must be a callable, got {compensate!r}")
        self.undo[key] = Undo(compensate, args, **how)
        return undo_name(compensate)

    @property
    def replayed_steps(self) -> int:
        """How many steps of this delivery came back from the record instead of running."""
        return min(self._steps.ordinal, len(self._steps.recorded))

    def step(
        self,
        name: str,
        fn: Callable[..., T],
        *args: Any,
        retries: int = 0,
        backoff: float = 1.0,
        compensate: Callable[..., Any] | None = None,
        compensate_retries: int = COMPENSATE_RETRIES,
        **kwargs: Any,
    ) -> T:
        """Run `fn(*args, **kwargs)` once for this intent and return its (recorded) result.

        `retries` re-runs a raising `fn` up to that many more times, waiting `backoff`,
        then twice as long, and so on; the last exception propagates to the handler.
        `compensate=undo`: should the intent not complete (it fails, is canceled, rejected
        or times out), `undo(result, *args)` runs, last step first, retried up to
        `compensate_retries` more times with the same backoff.
        """
        self._enter()
        ordinal, key, replayed, result = self._next(name, retries)
        how = {"retries": compensate_retries, "backoff": backoff}
        if replayed:
            self._keep_undo(key, compensate, args, **how)
            return result  # type: ignore[no-any-return]
        self._went_on()
        self._flush()  # the steps before this one are recorded before it starts
        for attempt in range(retries + 1):
            try:
                value = fn(*args, **kwargs)
                break
            except Exception as exc:
                if attempt >= retries:
                    self._steps.failed = (ordinal, key, failure_record(exc))
                    raise
                time.sleep(backoff * 2**attempt)
        value = _as_json(key, value)
        self._record(ordinal, key, value, self._keep_undo(key, compensate, args, **how))
        return value

    def _record(self, ordinal: int, key: str, value: Any, undo: str | None = None) -> None:
        record = {"ordinal": ordinal, "key": key, "result": value}
        if undo is not None:
            record["compensate"] = undo
        self._send_record(record)

    def _send_record(self, record: dict[str, Any]) -> None:
        if self._outbox is None:
            if record.get("error") or record.get("compensate"):
                self._client.record_steps(self.intent_id, [record])
            else:
                self._client.record_step(
                    self.intent_id, record["ordinal"], record["key"], record["result"]
                )
        else:
            self._outbox.add(self.intent_id, record)

    def _went_on(self) -> None:
        """The handler calls a step or wait after one that raised: that failure takes its
        place in the record first (a progress event or an outcome does not need it)."""
        failed = self._steps.take_failed()
        if failed is not None:
            self._send_record(failed)

    def _flush(self) -> None:
        """Send the queued step records before a report that must come after them."""
        if self._outbox is not None:
            self._outbox.flush(self.intent_id)

    def progress(self, message: str, **data: Any) -> None:
        """An `intent.progress` event on the intent's timeline (`axme tail` shows it)."""
        self._enter()
        if self.compensating:  # told when the step ran
            return
        self._flush()
        self._client.progress(self.intent_id, message, _as_json("progress", data))

    # -- durable waits: the worker is released while they last ------------------------

    def _wait(self, name: str, kind: str, arguments: dict[str, Any]) -> Any:
        self._enter()
        ordinal, key, replayed, result = self._next(name, 0)
        if replayed:
            return result
        self._went_on()
        self._flush()
        answer = self._client.begin_wait(self.intent_id, ordinal, key, kind, arguments)
        return self._settle(ordinal, key, answer)

    def _settle(self, ordinal: int, key: str, answer: dict[str, Any]) -> Any:
        if answer.get("state") == "canceled":  # asked before the stream told this worker
            self.cancel_reason = str(answer.get("reason") or "canceled")
            self._enter()
        if answer.get("state") == "done":  # already over: a kept signal, a finished child
            self._steps.recorded.append(
                {"ordinal": ordinal, "key": key, "result": answer["result"]}
            )
            return answer["result"]
        raise Suspended(f"{key}: {kind_of(answer)}")

    def request_approval(self, title: str, **options: Any) -> Decision:
        """Ask a person to approve; returns their `Decision` (`.approved`, `.actor`, ...).

        Options: details, description, remind_after, remind_interval, max_reminders,
        deadline, on_timeout ("reject", "approve", "fail", "escalate"), escalate_to,
        assignees, required_comment, key (the step name; default from the title),
        on_reject: "compensate" cancels the intent on a no, its steps undone (`Rejected`
        is raised should the handler replay it).
        """
        key = options.pop("key", None) or f"approval:{title}"
        record = self._wait(key, "human", task_arguments("approval", title, **options))
        return rejected_or(Decision.from_record(record), options)

    def ask(self, task_type: str, title: str, **options: Any) -> Decision:
        """Any other human task: confirmation, review, form (with `form_schema`),
        clarification, manual_action, override, assignment; see `request_approval`."""
        key = options.pop("key", None) or f"{task_type}:{title}"
        record = self._wait(key, "human", task_arguments(task_type, title, **options))
        return Decision.from_record(record)

    def sleep(self, duration: str | float, *, key: str = "sleep") -> None:
        """Wait durably ("10m", 30): no process is held, a daemon restart keeps the timer."""
        self._wait(key, "time", {"seconds": _seconds(duration, "duration")})

    def wait_for_event(
        self, name: str, *, timeout: str | float | None = None
    ) -> dict[str, Any] | None:
        """Wait for `axme signal <intent> NAME` (a signal sent earlier is kept, not lost);
        returns {name, data, at}, or None when `timeout` passes first."""
        arguments: dict[str, Any] = {"name": name}
        if timeout is not None:
            arguments["timeout_seconds"] = _seconds(timeout, "timeout")
        result = self._wait(f"event:{name}", "signal", arguments)
        return result if isinstance(result, dict) else None

    def call(
        self, to_agent: str, intent_type: str, payload: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        """Send a child intent and wait for it; returns its result, raises `ChildFailed`.

        The child is created once, however often this handler is replayed."""
        key = kw.pop("key", None) or f"call:{intent_type}"
        arguments = {"to_agent": to_agent, "intent_type": intent_type, "payload": payload or {}}
        outcome = self._wait(key, "child", arguments)
        if outcome.get("status") != "COMPLETED":
            raise ChildFailed(outcome)
        return outcome.get("result")


def rejected_or(decision: Decision, options: dict[str, Any]) -> Decision:
    """The decision, unless it is a no that the handler asked to compensate on."""
    if options.get("on_reject") == "compensate" and not decision.approved:
        raise Rejected(decision)
    return decision


def undo_name(fn: Callable[..., Any]) -> str:
    """How the record names a compensation (shown in the timeline and the task)."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return str(name)[:300]


def kind_of(answer: dict[str, Any]) -> str:
    target = answer.get("target")
    return f"waiting for {target}" if target else "waiting"
