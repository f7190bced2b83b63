"""The intent lifecycle behind the API: create, read, resolve, and follow events.

Transport-free: the API maps HTTP onto these calls, tests and (later) the dispatcher call
them directly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from axme_cli.errors import NotFound
from axme_cli.protocol import IntentStatus
from axme_daemon.delivery import Dispatcher
from axme_daemon.events import KEEPALIVE_SECONDS, EventHub, KeepAlive, StreamTimeout
from axme_daemon.intents import Event, Intent, NewIntent, Step
from axme_daemon.store import IntentFilter, Page, Store


class Engine:
    def __init__(self, store: Store, *, lease_grace: float | None = None) -> None:
        self.store = store
        self.hub = EventHub()
        store.add_commit_listener(self.hub.notify)
        self.dispatcher = Dispatcher(
            store, self.hub, **({"lease_grace": lease_grace} if lease_grace else {})
        )

    async def create(self, new: NewIntent) -> tuple[Intent, bool]:
        intent, created = await self.store.create_intent(new, str(uuid.uuid4()))
        if created:
            self.dispatcher.queued(intent.to_agent)
        return intent, created

    async def get(self, intent_id: str) -> Intent:
        intent = await self.store.get_intent(intent_id)
        if intent is None:
            raise NotFound(f"no intent {intent_id}", details={"intent_id": intent_id})
        return intent

    async def list_intents(self, filt: IntentFilter, limit: int, cursor: str | None) -> Page:
        return await self.store.list_intents(filt, limit, cursor)

    async def events(self, intent_id: str, since: int) -> list[Event]:
        await self.get(intent_id)  # 404 for an unknown intent rather than an empty list
        return await self.store.list_events(intent_id, since)

    async def resolve(
        self,
        intent_id: str,
        status: IntentStatus,
        *,
        actor: str | None,
        result: Any = None,
        error: Any = None,
        reason: str | None = None,
    ) -> tuple[Intent, Event]:
        details: dict[str, Any] = {}
        if reason:
            details["reason"] = reason
        if result is not None:
            details["result"] = result
        if error is not None:
            details["error"] = error
        intent, event = await self.store.transition(
            intent_id, status, actor=actor, details=details, result=result, error=error
        )
        self.dispatcher.finished(intent)
        return intent, event

    # -- what workers report -----------------------------------------------------------

    async def complete(self, intent_id: str, result: Any, worker_id: str | None) -> Intent:
        intent, _ = await self.store.transition(
            intent_id,
            IntentStatus.COMPLETED,
            worker_id=worker_id,
            details={"result": result} if result is not None else None,
            result=result,
        )
        self.dispatcher.finished(intent)
        return intent

    async def fail(
        self, intent_id: str, error: dict[str, Any], *, retryable: bool, worker_id: str | None
    ) -> Intent:
        """Fail the intent, or (retryable, attempts left) put it back for another delivery."""
        if retryable:
            current = await self.get(intent_id)
            if current.delivery_attempt < current.max_delivery_attempts:
                message = str(error.get("message", "handler failed"))
                released = await self.store.release(
                    intent_ids=[intent_id],
                    worker_id=worker_id,
                    reason=f"attempt {current.delivery_attempt} failed: {message}",
                )
                self.dispatcher.requeued(released)  # frees the worker's slot, keeps the reason
                return released[0][0] if released else await self.get(intent_id)
        intent, _ = await self.store.transition(
            intent_id,
            IntentStatus.FAILED,
            worker_id=worker_id,
            details={"error": error},
            error=error,
        )
        self.dispatcher.finished(intent)
        return intent

    async def record_step(
        self, intent_id: str, ordinal: int, key: str, result: Any, worker_id: str | None
    ) -> Step:
        step, _ = await self.store.record_step(intent_id, ordinal, key, result, worker_id)
        return step

    async def progress(
        self, intent_id: str, message: str, data: dict[str, Any], worker_id: str | None
    ) -> Event:
        events = await self.store.progress(intent_id, message, data, worker_id)
        return events[-1]

    async def steps(self, intent_id: str) -> list[Step]:
        await self.get(intent_id)
        return await self.store.list_steps(intent_id)

    async def retry(self, intent_id: str, actor: str | None) -> Intent:
        intent, _ = await self.store.retry(intent_id, actor)
        self.dispatcher.queued(intent.to_agent)
        return intent

    async def follow(
        self, intent_id: str, since: int, wait_seconds: float
    ) -> AsyncIterator[Event | StreamTimeout | KeepAlive]:
        """Events after `since` as they happen; ends after a final one or when the hold elapses.

        Call `get` first: this generator assumes the intent exists.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        cursor = since
        with self.hub.subscribe(intent_id) as wake:
            while True:
                wake.clear()
                for event in await self.store.list_events(intent_id, cursor):
                    cursor = event.seq
                    yield event
                    if event.status.is_final:
                        return
                remaining = deadline - loop.time()
                if remaining <= 0 or self.hub.closing:
                    yield StreamTimeout(cursor)
                    return
                try:
                    await asyncio.wait_for(wake.wait(), min(remaining, KEEPALIVE_SECONDS))
                except TimeoutError:
                    if deadline - loop.time() > 0:
                        yield KeepAlive()
