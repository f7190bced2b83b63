"""What a handler sees: the intent, and `step`/`progress` that make its work durable.

`ctx.step(name, fn, ...)` runs `fn` once per intent: its JSON result is recorded in the daemon
before the handler goes on, and every later delivery of the intent (after a crash, a restart,
a retry) gets the recorded result back instead of running `fn` again. Steps are keyed by name
and occurrence (`fetch`, `fetch#2`, ...), in the order the handler calls them; code between
steps is plain Python and may do anything.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient

T = TypeVar("T")


class RetryableError(Exception):
    """Raise (or subclass) this in a handler to have the intent delivered again.

    Any other exception fails the intent at once, unless the handler lists it in `retry_on`.
    Each redelivery counts against the intent's `max_delivery_attempts`; finished steps are
    not run again.
    """


class ReplayMismatch(Exception):
    """The handler called its steps in another order than the recorded run did."""


class StepResultNotJSON(TypeError):
    """A step returned something that cannot be recorded as JSON."""


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

    def next(self, name: str, retries: int) -> tuple[int, str, bool, Any]:
        """(ordinal, key, replayed?, recorded result) for the handler's next step."""
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
            return self.ordinal, key, True, record["result"]
        return self.ordinal, key, False, None


class Context:
    """The context of one delivery, for a sync handler."""

    def __init__(self, client: DaemonClient, delivery: dict[str, Any]) -> None:
        self._client = client
        self.intent: dict[str, Any] = delivery["intent"]
        self.intent_id: str = delivery["intent_id"]
        self.intent_type: str = self.intent["intent_type"]
        self.payload: dict[str, Any] = self.intent.get("payload") or {}
        self.attempt: int = int(delivery.get("delivery_attempt") or 1)
        self._steps = _Steps(list(delivery.get("steps") or []))

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
        **kwargs: Any,
    ) -> T:
        """Run `fn(*args, **kwargs)` once for this intent and return its (recorded) result.

        `retries` re-runs a raising `fn` up to that many more times, waiting `backoff`,
        then twice as long, and so on; the last exception propagates to the handler.
        """
        ordinal, key, replayed, result = self._steps.next(name, retries)
        if replayed:
            return result  # type: ignore[no-any-return]
        for attempt in range(retries + 1):
            try:
                value = fn(*args, **kwargs)
                break
            except Exception:
                if attempt >= retries:
                    raise
                time.sleep(backoff * 2**attempt)
        value = _as_json(key, value)
        self._client.record_step(self.intent_id, ordinal, key, value)
        return value

    def progress(self, message: str, **data: Any) -> None:
        """An `intent.progress` event on the intent's timeline (`axme tail` shows it)."""
        self._client.progress(self.intent_id, message, _as_json("progress", data))


class AsyncContext(Context):
    """The context of one delivery, for an `async def` handler: `await ctx.step(...)`."""

    async def step(  # type: ignore[override]
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        retries: int = 0,
        backoff: float = 1.0,
        **kwargs: Any,
    ) -> Any:
        ordinal, key, replayed, result = self._steps.next(name, retries)
        if replayed:
            return result
        for attempt in range(retries + 1):
            try:
                value = fn(*args, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
                break
            except Exception:
                if attempt >= retries:
                    raise
                await asyncio.sleep(backoff * 2**attempt)
        value = _as_json(key, value)
        await asyncio.to_thread(self._client.record_step, self.intent_id, ordinal, key, value)
        return value

    async def progress(self, message: str, **data: Any) -> None:  # type: ignore[override]
        payload = _as_json("progress", data)
        await asyncio.to_thread(self._client.progress, self.intent_id, message, payload)
