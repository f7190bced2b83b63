"""Deliveries made by the write that queues an intent: a listening worker with a free slot
gets it in that write, the busiest worker last, and a slot it did not get is given back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from axme_cli.protocol import IntentStatus
from axme_daemon.engine import Engine
from axme_daemon.intents import Intent, NewIntent
from axme_daemon.store.sqlite import SqliteStore

ADDRESS = "agent://test/delivery/worker"


def _new(n: int) -> NewIntent:
    return NewIntent(intent_type="intent.test.v1", to_agent=ADDRESS, payload={"n": n})


@pytest.fixture
async def engine(axme_home: Path) -> AsyncIterator[Engine]:
    store = SqliteStore(axme_home / "axme.db")
    await store.open()
    yield Engine(store)
    await store.close()


async def _stored(engine: Engine, intent: Intent) -> Intent:
    got = await engine.store.get_intent(intent.intent_id)
    assert got is not None
    return got


async def test_a_listening_worker_gets_new_intents_up_to_its_limit(engine: Engine) -> None:
    dispatcher = engine.dispatcher
    busy = dispatcher.register("busy", ADDRESS, supervised=True, limit=1, pid=None)
    roomy = dispatcher.register("roomy", ADDRESS, supervised=True, limit=2, pid=None)
    quiet = dispatcher.register("quiet", ADDRESS, supervised=True, limit=8, pid=None)
    busy.streams = roomy.streams = 1  # `quiet` has no stream open: nothing is pushed to it
    made = [await _stored(engine, (await engine.create(_new(n)))[0]) for n in range(4)]
    assert [i.lease_worker for i in made] == ["roomy", "busy", "roomy", None]
    assert [i.status for i in made[:3]] == [IntentStatus.DELIVERED] * 3
    assert made[3].status is IntentStatus.SUBMITTED
    assert roomy.held == {made[0].intent_id, made[2].intent_id}
    assert busy.held == {made[1].intent_id}
    assert quiet.held == set()
    assert roomy.pushes == 2 and busy.pushes == 1


async def test_a_slot_is_given_back_when_older_intents_wait(engine: Engine) -> None:
    dispatcher = engine.dispatcher
    older, _ = await engine.create(_new(0))  # nobody listens yet: it waits in the queue
    worker = dispatcher.register("w", ADDRESS, supervised=True, limit=4, pid=None)
    worker.streams = 1
    newer, _ = await engine.create(_new(1))
    assert (await _stored(engine, newer)).status is IntentStatus.SUBMITTED
    assert worker.held == set()  # the stream leases the older one first, then this one
    leased = await engine.store.lease(ADDRESS, "w", 4, {})
    assert [i.intent_id for i, _ in leased] == [older.intent_id, newer.intent_id]


async def test_a_released_delivery_goes_to_another_listener_in_the_same_write(
    engine: Engine,
) -> None:
    dispatcher = engine.dispatcher
    first = dispatcher.register("first", ADDRESS, supervised=True, limit=1, pid=None)
    first.streams = 1
    intent, _ = await engine.create(_new(0))
    assert first.held == {intent.intent_id}
    second = dispatcher.register("second", ADDRESS, supervised=True, limit=1, pid=None)
    second.streams = 1
    await dispatcher.worker_gone("first", "it exited")
    now = await _stored(engine, intent)
    assert now.lease_worker == "second" and now.delivery_attempt == 2
    assert second.held == {intent.intent_id} and second.pushes == 1
