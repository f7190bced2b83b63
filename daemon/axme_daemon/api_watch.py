"""`GET /v1/watch`: every change, live, for a client that shows everything (the TUI).

A list-then-watch feed: a client connects, waits for `watch.ready`, loads what it shows, then
applies the changes that follow. Nothing is replayed on reconnect; the client loads again.
Changes are coalesced into at most one batch per `BATCH_SECONDS`, so a busy daemon sends each
changed intent once per batch however many events it gained.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event

from axme_daemon.engine import Engine
from axme_daemon.events import AGENTS_TOPIC
from axme_daemon.holds import limits
from axme_daemon.intents import compact_json

#: The shortest time between two batches of changes.
BATCH_SECONDS = 0.05

#: Wire fields a list view needs; the rest (payload, result, task) is fetched on open.
_SUMMARY_OMITS = ("payload", "result", "human_task", "lifecycle_status", "lifecycle_waiting_reason")


def _frame(event: str, data: dict[str, Any]) -> bytes:
    return format_sse_event(event=event, data_str=compact_json(data))


def add_watch_routes(app: FastAPI, engine: Engine) -> None:
    @app.get("/v1/watch", tags=["events"])
    async def watch(
        request: Request, wait_seconds: Annotated[float, Query(ge=0, le=3600)] = 60
    ) -> StreamingResponse:
        """`watch.ready`, then `intent.changed` (an intent without its payload) and
        `agents.changed` (every agent's state) as they happen, then `stream.timeout`."""

        async def frames() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_seconds
            with engine.hub.watch() as watcher:
                yield _frame("watch.ready", {"ok": True})
                while True:
                    held = await engine.hub.hold(watcher.wake, deadline)
                    if held == "end":
                        yield _frame("stream.timeout", {"ok": True})
                        return
                    if held == "keepalive":
                        yield KEEPALIVE_COMMENT
                        continue
                    await asyncio.sleep(BATCH_SECONDS)  # let the batch gather
                    changed = watcher.take()
                    ids = [k for k in changed if ":" not in k and k != AGENTS_TOPIC]
                    for intent in await engine.store.get_intents(ids):
                        wire = intent.to_wire()
                        for key in _SUMMARY_OMITS:
                            wire.pop(key, None)
                        yield _frame("intent.changed", wire)
                    registry = request.app.state.registry
                    if AGENTS_TOPIC in changed and registry is not None:
                        yield _frame("agents.changed", {"agents": registry.describe()})

        return limits(request).respond("watch", frames())
