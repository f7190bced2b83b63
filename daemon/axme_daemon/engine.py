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
from axme_daemon.events import EventHub
from axme_daemon.intents import Event, Intent, NewIntent
from axme_daemon.store import IntentFilter, Page, Store

#: Keep-alive cadence for held streams, below common proxy idle timeouts.
KEEPALIVE_SECONDS = 15.0


class StreamTimeout:
    """Marker yielded by `follow` when the hold elapsed; carries the cursor to resume from."""

    def __init__(self, next_seq: int) -> None:
        self.next_seq = next_seq


class KeepAlive:
    """Marker yielded by `follow` while nothing happens, so the transport can ping."""


class Engine:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.hub = EventHub()
        store.add_commit_listener(self.hub.notify)

    async def create(self, new: NewIntent) -> tuple[Intent, bool]:
        return await self.store.create_intent(new, str(uuid.uuid4()))

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
        return await self.store.transition(
            intent_id, status, actor=actor, details=details, result=result, error=error
        )

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
                if remaining <= 0:
                    yield StreamTimeout(cursor)
                    return
                try:
                    await asyncio.wait_for(wake.wait(), min(remaining, KEEPALIVE_SECONDS))
                except TimeoutError:
                    if deadline - loop.time() > 0:
                        yield KeepAlive()
