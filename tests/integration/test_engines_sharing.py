"""Two engines on one PostgreSQL database stand for two daemons: what one asks of an
intent a worker of the other runs reaches that worker through the other daemon."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from axme_cli.protocol import IntentStatus
from axme_daemon.delivery import Worker
from axme_daemon.engine import Engine
from axme_daemon.intents import Intent, NewIntent
from axme_daemon.store import open_store
from axme_daemon.store.base import DaemonInfo

ADDRESS = "agent://test/shared/worker"


@pytest.fixture
async def engines(postgresql_url: str, axme_home: Path) -> AsyncIterator[tuple[Engine, Engine]]:
    """Daemons "a" and "b", started, each knowing the other is live."""
    started: list[Engine] = []
    for daemon_id in ("a", "b"):
        store = open_store(postgresql_url, key_file=axme_home / "secrets.key")
        store.set_daemon(DaemonInfo(daemon_id, "host", 1, f"/homes/{daemon_id}", 10.0))
        await store.open()
        engine = Engine(store)
        await engine.start()
        started.append(engine)
    for engine in started:
        await engine.store.heartbeat()  # each sees the other: it tells it of its commits
    a, b = started
    yield a, b
    for engine in started:
        await engine.close()
        await engine.store.close()


async def _created_on(engine: Engine) -> Intent:
    made, _ = await engine.create(
        NewIntent(intent_type="intent.test.v1", to_agent=ADDRESS, payload={})
    )
    return made


async def _running_on(
    b: Engine, *, hears_cancels: bool, sent_from: Engine
) -> tuple[Worker, Intent]:
    """An intent sent through `sent_from` that a worker of `b` took and started (its first
    progress report)."""
    await _created_on(sent_from)
    worker = b.dispatcher.register("wb", ADDRESS, supervised=True, limit=4, pid=None)
    worker.hears_cancels = hears_cancels
    (leased, _), *_ = await b.store.lease(ADDRESS, "wb", 1, {})
    worker.held.add(leased.intent_id)
    await b.progress(leased.intent_id, "working", {}, "wb")
    return worker, leased


async def _within(seconds: float, condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g}s"
        await asyncio.sleep(0.01)


async def _status(engine: Engine, intent_id: str) -> IntentStatus:
    return (await engine.get(intent_id)).status


async def test_a_cancel_asked_on_one_daemon_is_told_to_a_worker_of_the_other(
    engines: tuple[Engine, Engine],
) -> None:
    a, b = engines
    worker, made = await _running_on(b, hears_cancels=True, sent_from=a)
    _, event = await a.resolve(made.intent_id, IntentStatus.CANCELED, actor="ann")
    assert event.event_type == "intent.cancel_requested"  # asked, as on one daemon
    await _within(5, lambda: made.intent_id in worker.cancels, "b's worker told")
    assert await _status(a, made.intent_id) is IntentStatus.IN_PROGRESS
    # The handler stops and its worker says so, to its own daemon: the intent ends.
    await b.fail(made.intent_id, {"type": "IntentCanceled"}, retryable=False, worker_id="wb")
    assert await _status(a, made.intent_id) is IntentStatus.CANCELED


async def test_a_worker_of_the_other_daemon_that_hears_no_cancels_has_its_intent_ended_there(
    engines: tuple[Engine, Engine],
) -> None:
    a, b = engines
    worker, made = await _running_on(b, hears_cancels=False, sent_from=a)
    await a.resolve(made.intent_id, IntentStatus.CANCELED, actor="ann", reason="no longer")
    await _within(5, lambda: not worker.held, "b ending the intent")
    ended = await a.get(made.intent_id)
    assert ended.status is IntentStatus.CANCELED
    last = (await a.events(made.intent_id, 0))[-1]
    assert last.actor == "ann" and (last.details or {}).get("reason") == "no longer"
    assert worker.cancels == set()


async def test_an_intent_the_other_daemon_ended_frees_its_worker_slot_here(
    engines: tuple[Engine, Engine],
) -> None:
    a, b = engines
    made = await _created_on(a)
    worker = b.dispatcher.register("wb", ADDRESS, supervised=True, limit=1, pid=None)
    (leased, _), *_ = await b.store.lease(ADDRESS, "wb", 1, {})
    worker.held.add(leased.intent_id)
    await a.resolve(made.intent_id, IntentStatus.CANCELED, actor="ann")  # delivered: at once
    assert await _status(b, made.intent_id) is IntentStatus.CANCELED
    await _within(5, lambda: not worker.held, "b freeing the slot")
