"""Deliveries made by the write that queues an intent: a listening worker with a free slot
gets it in that write, the busiest worker last, and a slot it did not get is given back."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from axme_cli.protocol import IntentStatus
from axme_daemon.delivery import Delivery
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


async def _first(stream: AsyncIterator[object]) -> object:
    return await anext(stream)


async def test_a_stream_sends_pushed_deliveries_but_not_one_ended_meanwhile(
    engine: Engine,
) -> None:
    dispatcher = engine.dispatcher
    stream = dispatcher.stream(ADDRESS, "w", since=0, wait_seconds=5, limit=4)
    first = asyncio.create_task(_first(stream))
    await _until(lambda: "w" in dispatcher.workers and dispatcher.workers["w"].streams == 1)
    kept, _ = await engine.create(_new(0))
    delivered = await asyncio.wait_for(first, 5)
    assert isinstance(delivered, Delivery) and delivered.intent.intent_id == kept.intent_id

    dropped, _ = await engine.create(_new(1))  # pushed while the stream is not reading
    worker = dispatcher.workers["w"]
    assert [i.intent_id for i in worker.inbox] == [dropped.intent_id]
    await engine.resolve(dropped.intent_id, IntentStatus.CANCELED, actor="test")
    assert dropped.intent_id not in worker.held
    last, _ = await engine.create(_new(2))
    following = await asyncio.wait_for(_first(stream), 5)
    assert isinstance(following, Delivery) and following.intent.intent_id == last.intent_id
    await stream.aclose()

    # A worker that reconnects gets again what it holds, from the store.
    again = dispatcher.stream(ADDRESS, "w", since=0, wait_seconds=5, limit=4)
    replayed = [await asyncio.wait_for(_first(again), 5) for _ in range(2)]
    assert [d.intent.intent_id for d in replayed if isinstance(d, Delivery)] == [
        kept.intent_id,
        last.intent_id,
    ]
    await again.aclose()


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_create_delivered_at_once_tells_it_in_its_events(engine: Engine) -> None:
    worker = engine.dispatcher.register("w", ADDRESS, supervised=True, limit=1, pid=None)
    worker.streams = 1
    intent, created = await engine.create(_new(0))
    assert created and intent.status is IntentStatus.DELIVERED
    stored = await _stored(engine, intent)
    assert (stored.lease_worker, stored.delivery_attempt, stored.last_seq) == ("w", 1, 3)
    timeline = await engine.events(intent.intent_id, 0)
    assert [(e.seq, e.event_type, e.status) for e in timeline] == [
        (1, "intent.created", IntentStatus.CREATED),
        (2, "intent.submitted", IntentStatus.SUBMITTED),
        (3, "intent.delivered", IntentStatus.DELIVERED),
    ]
    assert timeline[2].details == {"delivery_attempt": 1, "worker": "w"}


async def test_an_idempotent_replay_takes_no_slot(engine: Engine) -> None:
    new = NewIntent(
        intent_type="intent.test.v1",
        to_agent=ADDRESS,
        payload={},
        idempotency_key="k",
        request_hash="h",
    )
    first, _ = await engine.create(new)  # nobody listens: queued
    worker = engine.dispatcher.register("w", ADDRESS, supervised=True, limit=1, pid=None)
    worker.streams = 1
    again, created = await engine.create(new)
    assert not created and again.intent_id == first.intent_id
    assert again.status is IntentStatus.SUBMITTED and worker.held == set()


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Clear it to hold the WAL syncs (`os.fdatasync`, the OS edge) until it is set again:
    writes then commit, and reads see them, but none is acknowledged."""
    free = threading.Event()
    free.set()
    real_sync = os.fdatasync

    def held_sync(fd: int) -> None:
        free.wait(10)
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", held_sync)
    return free


async def _pull(stream: AsyncIterator[object]) -> Delivery:
    got = await asyncio.wait_for(_first(stream), 5)
    assert isinstance(got, Delivery), f"no delivery but {got}"
    return got


async def _committed(engine: Engine, intent: Intent, status: IntentStatus) -> None:
    """Wait until a write gave `intent` that status, on disk or not (reads see the WAL)."""
    for _ in range(500):
        if (await _stored(engine, intent)).status is status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{intent.intent_id} never {status.value}")


async def test_a_push_settled_while_the_stream_leases_is_still_sent(
    engine: Engine, disk: threading.Event
) -> None:
    """A write's push with an earlier delivery cursor than an intent the stream leased in the
    meantime is sent too, not taken for one sent already: it was held, never sent."""
    dispatcher = engine.dispatcher
    stream = dispatcher.stream(ADDRESS, "w", since=0, wait_seconds=3, limit=3)
    signalled, _ = await engine.create(_new(0))  # nobody listens yet: the stream leases it
    assert (await _pull(stream)).intent.intent_id == signalled.intent_id
    await engine.begin_wait(signalled.intent_id, "w", 1, "go", "signal", {"name": "go"})
    made = [(await engine.create(_new(n)))[0] for n in (1, 2, 3)]  # pushed: slots full
    queued, _ = await engine.create(_new(4))  # no slot: queued
    assert [(await _pull(stream)).intent.intent_id for _ in made] == [i.intent_id for i in made]
    for napping in made[1:]:  # two slots free up; the stream is not reading
        await engine.begin_wait(napping.intent_id, "w", 1, "nap", "time", {"seconds": 60})

    disk.clear()  # both writes below commit before either is on disk
    signal = asyncio.create_task(engine.signal(signalled.intent_id, "go", None))
    await _committed(engine, signalled, IntentStatus.DELIVERED)  # pushed to w
    leasing = asyncio.create_task(_pull(stream))  # one slot left: it leases the queued one
    await _committed(engine, queued, IntentStatus.DELIVERED)
    disk.set()
    assert await signal
    assert (await leasing).intent.intent_id == queued.intent_id
    assert (await _pull(stream)).intent.intent_id == signalled.intent_id
    await stream.aclose()


async def test_a_wait_ended_before_it_was_acknowledged_keeps_its_new_delivery(
    engine: Engine, disk: threading.Event
) -> None:
    """A signal that ends a wait whose start is not on disk yet delivers the intent again to
    the same worker; freeing the wait's slot after that must not drop the new delivery."""
    stream = engine.dispatcher.stream(ADDRESS, "w", since=0, wait_seconds=3, limit=2)
    waiting, _ = await engine.create(_new(0))
    first = await _pull(stream)
    disk.clear()
    begin = asyncio.create_task(
        engine.begin_wait(waiting.intent_id, "w", 1, "go", "signal", {"name": "go"})
    )
    await _committed(engine, waiting, IntentStatus.WAITING)
    signal = asyncio.create_task(engine.signal(waiting.intent_id, "go", None))
    await _committed(engine, waiting, IntentStatus.DELIVERED)
    disk.set()
    assert (await begin)["state"] == "waiting" and await signal
    again = await _pull(stream)
    assert again.intent.intent_id == waiting.intent_id
    assert again.intent.delivery_seq > first.intent.delivery_seq
    assert engine.dispatcher.workers["w"].held == {waiting.intent_id}
    await stream.aclose()


async def test_a_delivery_not_settled_yet_survives_a_look_at_the_store(engine: Engine) -> None:
    """A write delivered an intent to a worker and waits for its COMMIT (on PostgreSQL the
    loop serves other work meanwhile); the dispatcher, freeing slots after another write,
    reads the store, which does not show that delivery yet: the worker keeps its slot, and
    nobody is woken to lease the intent again."""
    dispatcher = engine.dispatcher
    queued, _ = await engine.create(_new(0))  # nobody listens: it waits in the queue
    worker = dispatcher.register("w", ADDRESS, supervised=True, limit=1, pid=None)
    worker.streams = 1
    assert dispatcher.claim(ADDRESS, queued.intent_id) == "w"  # the write, not committed
    await dispatcher.let_go([queued])
    await dispatcher.requeued([(queued, (await engine.store.list_events(queued.intent_id))[-1])])
    assert worker.held == {queued.intent_id}
    dispatcher.pushed("w", queued)  # the write settled: the store shows it from now on
    assert worker.claiming == set() and worker.held == {queued.intent_id}
