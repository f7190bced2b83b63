"""The Store contract, part one: intents, delivery, reports and the registry. Every
backend runs it (conftest `STORE_BACKENDS`); what only one backend promises (SQLite's group
commit, its files) is tested beside that backend, not here. Waits, decisions, timers and
writers racing are in `test_store_contract_waits.py`."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from axme_cli.errors import (
    AlreadyFinal,
    BadInput,
    Conflict,
    IdempotencyConflict,
    NotFound,
    StoreUnavailable,
)
from axme_cli.protocol import IntentStatus
from axme_daemon.intents import Intent, NewIntent
from axme_daemon.lifecycle.tx import Tx
from axme_daemon.store import IntentFilter, Store, open_store
from axme_daemon.store.base import WorkerReport
from axme_daemon.store.sqlite import SqliteStore


def _new(n: int = 0, **kw: object) -> NewIntent:
    fields: dict[str, object] = {
        "intent_type": "intent.test.v1",
        "to_agent": "agent://test/a",
        "payload": {"n": n},
    }
    fields.update(kw)
    return NewIntent(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(backend_store: Store) -> Store:
    return backend_store


async def test_create_appends_created_and_submitted(store: Store) -> None:
    intent, created = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")
    assert created and intent.status is IntentStatus.SUBMITTED and intent.last_seq == 2
    fetched = await store.get_intent(intent.intent_id)
    assert fetched == intent
    events = await store.list_events(intent.intent_id)
    assert [(e.seq, e.event_type, e.status) for e in events] == [
        (1, "intent.created", IntentStatus.CREATED),
        (2, "intent.submitted", IntentStatus.SUBMITTED),
    ]
    assert [e.seq for e in await store.list_events(intent.intent_id, since=1)] == [2]
    assert await store.list_events(intent.intent_id, since=2) == []


async def test_an_intent_with_its_own_human_task_is_created_waiting_in_one_write(
    store: Store,
) -> None:
    first, second = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    new = _new(human_task={"title": "Ship?", "deadline_seconds": 60})
    with pytest.raises(ValueError, match="create_task_intent"):
        await store.create_intent(new, first)
    intent, created, effects = await store.create_task_intent(new, first)
    assert created and intent.status is IntentStatus.WAITING
    assert intent.waiting_reason == "WAITING_FOR_HUMAN"
    assert [e.event_type for e in await store.list_events(first)] == [
        "intent.created",
        "intent.submitted",
        "intent.human_task_assigned",
    ]
    (task,) = await store.list_tasks(intent_id=first)
    assert [n["task"]["task_id"] for n in effects.notices] == [task.task_id]
    assert await store.lease("agent://test/a", "w0", 5, {}) == []  # nobody's delivery
    # A task the spec cannot open: neither the intent nor its task is written.
    with pytest.raises(ValueError):
        await store.create_task_intent(_new(1, human_task={"title": ""}), second)
    assert await store.get_intent(second) is None
    assert len(await store.list_tasks()) == 1


class Taker:
    """A deliverer with one listening worker of a few free slots (the dispatcher's part)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.claimed: list[str] = []
        self.deliveries: list[tuple[str, str]] = []

    def claim(self, address: str, intent_id: str) -> str | None:
        if address != "agent://test/a" or len(self.claimed) >= self.slots:
            return None
        self.claimed.append(intent_id)
        return "w1"

    def unclaim(self, worker_id: str, intent_id: str) -> None:
        self.claimed.remove(intent_id)

    def free(self, worker_id: str, intent_id: str) -> bool:
        if intent_id not in self.claimed:
            return False
        self.claimed.remove(intent_id)
        return True

    def unfree(self, worker_id: str, intent_id: str) -> None:
        self.claimed.append(intent_id)

    def pushed(self, worker_id: str, intent: object) -> None:
        self.deliveries.append((worker_id, intent.intent_id))  # type: ignore[attr-defined]


async def test_a_write_that_queues_an_intent_delivers_it_to_a_listening_worker(
    store: Store,
) -> None:
    waiting, _ = await store.create_intent(_new(0), "00000000-0000-4000-8000-000000000000")
    taker = Taker(slots=2)
    store.set_deliverer(taker)
    # An older intent waits in the queue: a new one takes its turn behind it.
    behind, _ = await store.create_intent(_new(1), "00000000-0000-4000-8000-000000000001")
    assert (await store.get_intent(behind.intent_id)).status is IntentStatus.SUBMITTED
    assert taker.claimed == [] and taker.deliveries == []
    leased = await store.lease("agent://test/a", "w0", 5, {})
    assert [i.intent_id for i, _ in leased] == [waiting.intent_id, behind.intent_id]
    # Nothing waits now: the create delivers in its own write, up to the free slots.
    first, _ = await store.create_intent(_new(2), "00000000-0000-4000-8000-000000000002")
    second, _ = await store.create_intent(_new(3), "00000000-0000-4000-8000-000000000003")
    third, _ = await store.create_intent(_new(4), "00000000-0000-4000-8000-000000000004")
    assert taker.deliveries == [("w1", first.intent_id), ("w1", second.intent_id)]
    got = await store.get_intent(first.intent_id)
    assert got is not None and got.status is IntentStatus.DELIVERED
    assert got.lease_worker == "w1" and got.delivery_attempt == 1
    events = await store.list_events(first.intent_id)
    assert [(e.event_type, e.status) for e in events] == [
        ("intent.created", IntentStatus.CREATED),
        ("intent.submitted", IntentStatus.SUBMITTED),
        ("intent.delivered", IntentStatus.DELIVERED),
    ]
    assert events[-1].details == {"delivery_attempt": 1, "worker": "w1"}
    assert [i.intent_id for i in await store.leased_to("w1", 0)] == [
        first.intent_id,
        second.intent_id,
    ]
    assert (await store.get_intent(third.intent_id)).status is IntentStatus.SUBMITTED
    # A release puts the delivery back: a free slot takes it in the same write, as a
    # redelivery that says why.
    taker.claimed.remove(first.intent_id)
    await store.release(intent_ids=[first.intent_id], reason="the worker exited")
    again = await store.get_intent(first.intent_id)
    assert again is not None and again.status is IntentStatus.DELIVERED
    assert again.delivery_attempt == 2
    last = (await store.list_events(first.intent_id))[-1]
    assert last.details == {"delivery_attempt": 2, "worker": "w1", "reason": "the worker exited"}


async def test_a_completion_hands_the_freed_slot_the_next_queued_intent(store: Store) -> None:
    taker = Taker(slots=1)
    store.set_deliverer(taker)
    running, _ = await store.create_intent(_new(0), "00000000-0000-4000-8000-000000000000")
    queued = [
        (await store.create_intent(_new(n), f"00000000-0000-4000-8000-00000000000{n}"))[0]
        for n in (1, 2)
    ]
    assert taker.claimed == [running.intent_id]  # the slot is taken: the others wait
    [done] = await store.report(
        [WorkerReport(running.intent_id, [(1, "s1", {"ok": True})], completed=True, result=1)],
        "w1",
    )
    assert isinstance(done, Intent) and done.status is IntentStatus.COMPLETED
    nxt = await store.get_intent(queued[0].intent_id)
    assert nxt is not None and nxt.status is IntentStatus.DELIVERED and nxt.lease_worker == "w1"
    assert taker.deliveries == [("w1", running.intent_id), ("w1", queued[0].intent_id)]
    later = await store.get_intent(queued[1].intent_id)
    assert later is not None and later.status is IntentStatus.SUBMITTED  # oldest first
    # A report that completes nothing frees nothing.
    await store.report([WorkerReport(nxt.intent_id, [(1, "s1", None)])], "w1")
    assert (await store.get_intent(queued[1].intent_id)).status is IntentStatus.SUBMITTED  # type: ignore[union-attr]


async def test_idempotency_key_replays_or_conflicts(store: Store) -> None:
    first, created = await store.create_intent(
        _new(idempotency_key="k1", request_hash="h1"), "00000000-0000-4000-8000-000000000001"
    )
    again, created_again = await store.create_intent(
        _new(idempotency_key="k1", request_hash="h1"), "00000000-0000-4000-8000-000000000002"
    )
    assert created and not created_again and again.intent_id == first.intent_id
    with pytest.raises(IdempotencyConflict):
        await store.create_intent(
            _new(idempotency_key="k1", request_hash="other"),
            "00000000-0000-4000-8000-000000000003",
        )
    page = await store.list_intents(IntentFilter(), 10, None)
    assert [i.intent_id for i in page.intents] == [first.intent_id]


async def test_intents_list_in_the_order_they_were_created_keys_or_not(store: Store) -> None:
    """Creates with and without an idempotency key, one batch and one at a time: newest
    first, whatever path each insert took (PostgreSQL inserts at positions it took ahead)."""
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 9)]
    for n, intent_id in enumerate(ids[:4]):
        keyed = {"idempotency_key": f"k{n}", "request_hash": "h"} if n % 2 else {}
        await store.create_intent(_new(n, **keyed), intent_id)
    await asyncio.gather(  # one batch
        *(
            store.create_intent(_new(n, **({"idempotency_key": f"k{n}"} if n % 2 else {})), i)
            for n, i in enumerate(ids[4:], 4)
        )
    )
    page = await store.list_intents(IntentFilter(), 20, None)
    assert [i.intent_id for i in page.intents] == ids[::-1]


async def test_a_create_the_store_refuses_fails_alone_and_keeps_nothing(store: Store) -> None:
    """An intent id taken already: that create fails (on PostgreSQL its insert is not waited
    for, the refusal comes with the COMMIT), the batch's other creates are kept."""
    taken = "00000000-0000-4000-8000-000000000001"
    await store.create_intent(_new(0), taken)
    outcomes = await asyncio.gather(
        store.create_intent(_new(1), "00000000-0000-4000-8000-000000000002"),
        store.create_intent(_new(2), taken),
        store.create_intent(_new(3), "00000000-0000-4000-8000-000000000003"),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], store.error_types)
    assert all(isinstance(o, tuple) and o[1] for o in (outcomes[0], outcomes[2]))
    kept = await store.get_intent(taken)
    assert kept is not None and kept.payload == {"n": 0}
    page = await store.list_intents(IntentFilter(), 10, None)
    assert len(page.intents) == 3
    assert [e.event_type for e in await store.list_events(taken)] == [
        "intent.created",
        "intent.submitted",
    ]


async def test_transition_appends_one_event_and_final_is_final(store: Store) -> None:
    intent, _ = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")
    done, event = await store.transition(
        intent.intent_id,
        IntentStatus.COMPLETED,
        actor="alice",
        details={"result": {"ok": 1}},
        result={"ok": 1},
    )
    assert done.status is IntentStatus.COMPLETED and done.result == {"ok": 1}
    assert (event.seq, event.event_type, event.actor) == (3, "intent.completed", "alice")
    assert await store.get_intent(intent.intent_id) == done
    with pytest.raises(AlreadyFinal):
        await store.transition(intent.intent_id, IntentStatus.CANCELED)
    assert len(await store.list_events(intent.intent_id)) == 3
    with pytest.raises(NotFound):
        await store.transition("00000000-0000-4000-8000-00000000ffff", IntentStatus.CANCELED)


async def test_list_filters_and_pages_newest_first(store: Store) -> None:
    ids = []
    for n in range(7):
        agent = "agent://test/even" if n % 2 == 0 else "agent://test/odd"
        intent, _ = await store.create_intent(
            _new(n, to_agent=agent), f"00000000-0000-4000-8000-{n:012d}"
        )
        ids.append(intent.intent_id)
    await store.transition(ids[3], IntentStatus.FAILED, error={"message": "boom"})
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_intents(IntentFilter(), 3, cursor)
        seen += [i.intent_id for i in page.intents]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids[::-1]
    even = await store.list_intents(IntentFilter(to_agent="agent://test/even"), 10, None)
    assert [i.payload["n"] for i in even.intents] == [6, 4, 2, 0]
    failed = await store.list_intents(IntentFilter(status=IntentStatus.FAILED), 10, None)
    assert [i.intent_id for i in failed.intents] == [ids[3]]
    prefixed = await store.list_intents(
        IntentFilter(id_prefix="00000000-0000-4000-8000-0000000000"), 10, None
    )
    assert len(prefixed.intents) == 7
    one = await store.list_intents(IntentFilter(id_prefix=ids[5]), 10, None)
    assert [i.intent_id for i in one.intents] == [ids[5]]


async def test_a_failing_write_does_not_fail_its_batch_mates(store: Store) -> None:
    intent, _ = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")
    await store.transition(intent.intent_id, IntentStatus.CANCELED)
    outcomes = await asyncio.gather(
        store.transition(intent.intent_id, IntentStatus.COMPLETED),
        *(store.create_intent(_new(n), f"00000000-0000-4000-8000-{n + 10:012d}") for n in range(5)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], AlreadyFinal)
    assert all(isinstance(o, tuple) for o in outcomes[1:])
    assert len((await store.list_intents(IntentFilter(), 10, None)).intents) == 6


async def test_a_write_refused_only_at_commit_fails_alone(
    store: Store,
) -> None:
    """A write whose answer the rule does not wait for (`Tx.write`: on PostgreSQL it goes
    out with the next statement) and that the database refuses: that write's op fails, its
    earlier writes are undone, and the batch's other writes commit."""
    assert isinstance(store, SqliteStore)  # the PostgreSQL store shares its batches
    intent, _ = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")

    def refused(tx: Tx) -> tuple[None, list[str]]:
        row = tx.one("intent_for_update", intent_id=intent.intent_id)
        assert row is not None
        step = {"ordinal": 1, "result": None, "attempt": 1, "at": "t", "error": None}
        tx.write("insert_step", pos=row["pos"], step_key="kept?", undo=None, **step)
        tx.write("insert_step", pos=10**9, step_key="orphan", undo=None, **step)  # no intent
        return None, []  # the refusal comes with the COMMIT

    outcomes = await asyncio.gather(
        store._write(refused),
        store.create_intent(_new(1), "00000000-0000-4000-8000-000000000002"),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], store.error_types)
    assert isinstance(outcomes[1], tuple) and outcomes[1][1]
    assert await store.list_steps(intent.intent_id) == []
    assert len((await store.list_intents(IntentFilter(), 10, None)).intents) == 2


async def test_a_savepoint_undoes_the_events_its_block_appended(store: Store) -> None:
    """A block that appended events and then refused: its events are undone with it, what
    came before it is kept."""
    assert isinstance(store, SqliteStore)
    intent, _ = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")
    seq = intent.last_seq

    def event(tx: Tx, pos: int, n: int) -> None:
        row = {"intent_pos": pos, "seq": seq + n, "event_type": "intent.progress"}
        tx.run_many(
            "insert_event",
            [{**row, "status": "SUBMITTED", "at": "t", "actor": None, "details": None}],
        )

    def refused(tx: Tx) -> tuple[None, list[str]]:
        row = tx.one("intent_for_update", intent_id=intent.intent_id)
        assert row is not None
        event(tx, row["pos"], 1)  # kept
        try:
            with tx.savepoint():
                event(tx, row["pos"], 2)
                raise Conflict("refused after writing")
        except Conflict:
            pass
        return None, []

    await store._write(refused)
    events = await store.list_events(intent.intent_id)
    assert [e.seq for e in events][-1] == seq + 1

    def broken(tx: Tx) -> tuple[None, list[str]]:
        row = tx.one("intent_for_update", intent_id=intent.intent_id)
        assert row is not None
        event(tx, row["pos"], 2)
        raise RuntimeError("a rule's bug, right after it appended an event")

    with pytest.raises(RuntimeError):
        await store._write(broken)
    await store.create_intent(_new(1), "00000000-0000-4000-8000-000000000002")  # the next batch
    events = await store.list_events(intent.intent_id)
    assert [e.seq for e in events][-1] == seq + 1  # nothing of the failed batch


async def test_a_write_on_a_stale_read_is_refused_and_its_batch_mates_commit(
    store: Store,
) -> None:
    """A write that decided on a read of an intent that changed since (its conditional
    update changes no row) is refused with StaleWrite and leaves no trace; the writes sent
    with it commit (on PostgreSQL the update is not waited for: the server fails the batch,
    which runs again)."""
    from axme_daemon.lifecycle.timeline import apply_events
    from axme_daemon.lifecycle.tx import StaleWrite

    assert isinstance(store, SqliteStore)
    intent, _ = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")
    older = replace(intent, last_seq=intent.last_seq - 1)  # as read before its last event

    def stale(tx: Tx) -> tuple[None, list[str]]:
        row = tx.one("intent_for_update", intent_id=intent.intent_id)
        assert row is not None
        event = ("intent.progress", IntentStatus.SUBMITTED, None, {"message": "late"})
        apply_events(tx, row["pos"], older, IntentStatus.SUBMITTED, [event])
        return None, [intent.intent_id]

    outcomes = await asyncio.gather(
        store._write(stale),
        store.create_intent(_new(1), "00000000-0000-4000-8000-000000000002"),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], StaleWrite)
    assert isinstance(outcomes[1], tuple) and outcomes[1][1]
    now = await store.get_intent(intent.intent_id)
    assert now is not None and now.last_seq == intent.last_seq
    assert len(await store.list_events(intent.intent_id)) == intent.last_seq
    with pytest.raises(StaleWrite):  # alone in its batch: the same
        await store._write(stale)


async def test_data_survives_reopen(store: Store, store_url: str, axme_home: Path) -> None:
    intent, _ = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")
    await store.close()
    reopened = open_store(store_url, key_file=axme_home / "secrets.key")
    await reopened.open()
    try:
        assert await reopened.get_intent(intent.intent_id) == intent
    finally:
        await reopened.close()
    await store.open()  # the fixture closes it again


# -- delivery ------------------------------------------------------------------------------


async def _queued(store: Store, n: int, **kw: object) -> list[str]:
    ids = []
    for i in range(n):
        intent, _ = await store.create_intent(
            _new(i, **kw), f"00000000-0000-4000-8000-{i + 100:012d}"
        )
        ids.append(intent.intent_id)
    return ids


async def test_lease_delivers_oldest_first_to_one_worker(store: Store) -> None:
    ids = await _queued(store, 3)
    first = await store.lease("agent://test/a", "w1", 2, {})
    assert [i.intent_id for i, _ in first] == ids[:2]
    for intent, event in first:
        assert intent.status is IntentStatus.DELIVERED and intent.lease_worker == "w1"
        assert intent.delivery_attempt == 1
        assert event.event_type == "intent.delivered"
        assert event.details == {"delivery_attempt": 1, "worker": "w1"}
    second = await store.lease("agent://test/a", "w2", 5, {})
    assert [i.intent_id for i, _ in second] == ids[2:]
    assert await store.lease("agent://test/a", "w3", 5, {}) == []
    seqs = [i.delivery_seq for i, _ in first + second]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert [i.intent_id for i in await store.leased_to("w1", 0)] == ids[:2]
    assert [i.intent_id for i in await store.leased_to("w1", seqs[0])] == ids[1:2]
    assert await store.lease("agent://test/other", "w1", 5, {}) == []


async def test_release_requeues_then_fails_when_attempts_run_out(store: Store) -> None:
    (intent_id,) = await _queued(store, 1, max_delivery_attempts=2)
    await store.lease("agent://test/a", "w1", 1, {})
    released = await store.release(worker_id="w1", reason="worker exited")
    assert [(i.status, e.event_type) for i, e in released] == [
        (IntentStatus.SUBMITTED, "intent.submitted")
    ]
    assert released[0][1].details == {"reason": "worker exited", "delivery_attempt": 1}
    again = await store.lease("agent://test/a", "w2", 1, {intent_id: "worker exited"})
    assert again[0][0].delivery_attempt == 2
    assert again[0][1].details["reason"] == "worker exited"  # type: ignore[index]
    final = await store.release(worker_id="w2", reason="worker exited again")
    intent, event = final[0]
    assert intent.status is IntentStatus.FAILED and event.event_type == "intent.delivery_failed"
    assert intent.error["delivery_attempt"] == 2
    assert await store.release(worker_id="w2", reason="nothing left") == []
    retried, _ = await store.retry(intent_id, "alice")
    assert retried.status is IntentStatus.SUBMITTED and retried.delivery_attempt == 0
    with pytest.raises(Conflict):
        await store.retry(intent_id, "alice")  # only FAILED or TIMED_OUT


async def test_reports_are_fenced_by_the_lease(store: Store) -> None:
    (intent_id,) = await _queued(store, 1)
    await store.lease("agent://test/a", "w1", 1, {})
    with pytest.raises(Conflict):
        await store.record_step(intent_id, 1, "s", {"x": 1}, "intruder")
    with pytest.raises(Conflict):
        await store.transition(intent_id, IntentStatus.COMPLETED, worker_id="intruder")
    step, events = await store.record_step(intent_id, 1, "s", {"x": 1}, "w1")
    assert [e.event_type for e in events] == ["intent.in_progress", "intent.step_completed"]
    assert (step.ordinal, step.key, step.result, step.attempt) == (1, "s", {"x": 1}, 1)
    same, none = await store.record_step(intent_id, 1, "s", {"x": 2}, "w1")
    assert same.result == {"x": 1} and none == []  # recorded once
    with pytest.raises(Conflict):
        await store.record_step(intent_id, 1, "other", {}, "w1")
    with pytest.raises(BadInput):
        await store.record_step(intent_id, 3, "gap", {}, "w1")
    (progress,) = await store.progress(intent_id, "half way", {"n": 5}, "w1")
    assert progress.details == {"message": "half way", "data": {"n": 5}}
    done, _ = await store.transition(intent_id, IntentStatus.COMPLETED, worker_id="w1")
    assert done.lease_worker is None
    assert [s.key for s in await store.list_steps(intent_id)] == ["s"]


async def test_restart_recovery_releases_every_lease(store: Store) -> None:
    ids = await _queued(store, 2)
    await store.lease("agent://test/a", "w1", 1, {})
    await store.lease("agent://test/a", "w2", 1, {})
    released = await store.release(reason="the daemon restarted")
    assert sorted(i.intent_id for i, _ in released) == sorted(ids)
    assert await store.count_queued("agent://test/a") == 2


async def test_agent_registry_applies_a_source_only_when_it_changed(store: Store) -> None:
    spec = {"address": "agent://p/a", "command": ["x"], "cwd": "/"}
    assert await store.put_agents("/p/axme.toml", "d1", [spec], replace_source=True)
    assert not await store.put_agents("/p/axme.toml", "d1", [spec], replace_source=True)
    other = {"address": "agent://p/b", "command": ["y"], "cwd": "/"}
    assert await store.put_agents("/p/axme.toml", "d2", [other], replace_source=True)
    assert await store.put_agents("cli", None, [spec], replace_source=False)
    agents = {a["address"]: a for a in await store.list_agents()}
    assert set(agents) == {"agent://p/a", "agent://p/b"}
    assert agents["agent://p/a"]["source"] == "cli"
    assert await store.delete_agent("agent://p/a")
    assert not await store.delete_agent("agent://p/a")

    # A declared agent removed by hand is kept, marked; a changed file clears the mark.
    assert await store.set_agent_removed("agent://p/b", True)
    assert not await store.set_agent_removed("agent://p/nobody", True)
    (marked,) = await store.list_agents()
    assert marked["removed"] is True and marked["command"] == ["y"]
    assert await store.set_agent_removed("agent://p/b", False)
    assert "removed" not in (await store.list_agents())[0]
    await store.set_agent_removed("agent://p/b", True)
    assert await store.put_agents("/p/axme.toml", "d3", [other], replace_source=True)
    assert "removed" not in (await store.list_agents())[0]


async def test_a_writer_that_fails_in_its_own_error_handling_says_so(store: Store) -> None:
    """A defect in the writer's handling of a failed batch (here: its rollback raises) stops
    the writer: that write, and every write after, is refused with the reason at once, and
    `/health`'s problem says it, instead of each waiting forever for a writer that is gone."""
    assert isinstance(store, SqliteStore)
    await store.create_intent(_new(0), "00000000-0000-4000-8000-000000000001")

    def rollback() -> None:
        raise RuntimeError("rollback broke")

    def broken(tx: Tx) -> tuple[None, list[str]]:
        raise ValueError("an op's own defect")

    store._rollback = rollback  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable, match=r"writer failed \(RuntimeError: rollback broke\)"):
        await asyncio.wait_for(store._write(broken), 10)
    with pytest.raises(StoreUnavailable, match="restart the daemon"):
        await asyncio.wait_for(
            store.create_intent(_new(1), "00000000-0000-4000-8000-000000000002"), 10
        )
    assert "writer failed" in (store.problem() or "")
    assert await store.get_intent("00000000-0000-4000-8000-000000000001") is not None  # reads go on
