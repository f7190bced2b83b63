"""`AsyncContext`: the context an `async def` handler gets, with `await ctx.step(...)`.

Its own module so that agents with only sync handlers never import asyncio (a faster
restart after a crash).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from axme_cli.agent.context import (
    COMPENSATE_RETRIES,
    ChildFailed,
    Context,
    Decision,
    _as_json,
    _seconds,
    failure_record,
    rejected_or,
    task_arguments,
)


class AsyncContext(Context):
    """The context of one delivery, for an `async def` handler: `await ctx.step(...)`."""

    async def step(  # type: ignore[override]
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        retries: int = 0,
        backoff: float = 1.0,
        compensate: Callable[..., Any] | None = None,
        compensate_retries: int = COMPENSATE_RETRIES,
        **kwargs: Any,
    ) -> Any:
        """See `Context.step`; `fn` and `compensate` may be coroutine functions."""
        self._enter()
        ordinal, key, replayed, result = self._next(name, retries)
        how = {"retries": compensate_retries, "backoff": backoff}
        if replayed:
            self._keep_undo(key, compensate, args, **how)
            return result
        if self._steps.failed is not None:
            await asyncio.to_thread(self._went_on)
        if self._outbox is not None and self._outbox.holds(self.intent_id):
            await asyncio.to_thread(self._flush)
        for attempt in range(retries + 1):
            try:
                value = fn(*args, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
                break
            except Exception as exc:
                if attempt >= retries:
                    self._steps.failed = (ordinal, key, failure_record(exc))
                    raise
                await asyncio.sleep(backoff * 2**attempt)
        value = _as_json(key, value)
        undo = self._keep_undo(key, compensate, args, **how)
        if self._outbox is None:
            await asyncio.to_thread(self._record, ordinal, key, value, undo)
        else:
            self._record(ordinal, key, value, undo)  # only queues it
        return value

    async def progress(self, message: str, **data: Any) -> None:  # type: ignore[override]
        self._enter()
        if self.compensating:
            return
        payload = _as_json("progress", data)
        await asyncio.to_thread(self._flush)
        await asyncio.to_thread(self._client.progress, self.intent_id, message, payload)

    async def _wait(self, name: str, kind: str, arguments: dict[str, Any]) -> Any:
        self._enter()
        ordinal, key, replayed, result = self._next(name, 0)
        if replayed:
            return result
        await asyncio.to_thread(self._went_on)
        await asyncio.to_thread(self._flush)
        answer = await asyncio.to_thread(
            self._client.begin_wait, self.intent_id, ordinal, key, kind, arguments
        )
        return self._settle(ordinal, key, answer)

    async def request_approval(self, title: str, **options: Any) -> Decision:  # type: ignore[override]
        key = options.pop("key", None) or f"approval:{title}"
        record = await self._wait(key, "human", task_arguments("approval", title, **options))
        return rejected_or(Decision.from_record(record), options)

    async def ask(self, task_type: str, title: str, **options: Any) -> Decision:  # type: ignore[override]
        key = options.pop("key", None) or f"{task_type}:{title}"
        record = await self._wait(key, "human", task_arguments(task_type, title, **options))
        return Decision.from_record(record)

    async def sleep(self, duration: str | float, *, key: str = "sleep") -> None:  # type: ignore[override]
        await self._wait(key, "time", {"seconds": _seconds(duration, "duration")})

    async def wait_for_event(  # type: ignore[override]
        self, name: str, *, timeout: str | float | None = None
    ) -> dict[str, Any] | None:
        arguments: dict[str, Any] = {"name": name}
        if timeout is not None:
            arguments["timeout_seconds"] = _seconds(timeout, "timeout")
        result = await self._wait(f"event:{name}", "signal", arguments)
        return result if isinstance(result, dict) else None

    async def call(
        self, to_agent: str, intent_type: str, payload: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        key = kw.pop("key", None) or f"call:{intent_type}"
        arguments = {"to_agent": to_agent, "intent_type": intent_type, "payload": payload or {}}
        outcome = await self._wait(key, "child", arguments)
        if outcome.get("status") != "COMPLETED":
            raise ChildFailed(outcome)
        return outcome.get("result")
