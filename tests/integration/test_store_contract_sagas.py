"""The Store contract, part three: sagas. Steps recorded with a compensation are undone, last
first, when their intent fails, is canceled, rejected or times out; each compensation's
record is kept once; a failing one asks a person. Every backend runs it (conftest
`STORE_BACKENDS`)."""

from __future__ import annotations

import pytest

from axme_cli.errors import BadInput, Conflict
from axme_cli.protocol import IntentStatus
from axme_daemon.intents import NewIntent, Undoable
from axme_daemon.lifecycle.compensation import MAX_CRASHES
from axme_daemon.store import Store
from tests.integration.test_store_contract_waits import _event_types, _leased

S = IntentStatus
AGENT = "agent://test/a"
ERROR = {"type": "ValueError", "message": "the mail server said no"}


@pytest.fixture
def store(backend_store: Store) -> Store:
    return backend_store


async def _booked(store: Store, n: int = 0, worker: str = "w1") -> str:
    """An intent in progress with two steps to undo (book, charge) and one without (look)."""
    intent_id = await _leased(store, n, worker)
    steps = [
        (1, "book", Undoable({"id": "b1"}, "cancel_booking")),
        (2, "look", {"seen": True}),
        (3, "charge", Undoable({"id": "c1"}, "refund")),
    ]
    await store.record_steps(intent_id, steps, worker)
    return intent_id


async def _saga(store: Store, intent_id: str) -> tuple[S, dict[str, object] | None]:
    intent = await store.get_intent(intent_id)
    assert intent is not None
    return intent.status, intent.saga


async def test_a_failure_queues_the_compensations_and_their_records_end_it(store: Store) -> None:
    intent_id = await _booked(store)
    steps = await store.list_steps(intent_id)
    assert [(s.key, s.undo, s.undone) for s in steps] == [
        ("book", "cancel_booking", None),
        ("look", None, None),
        ("charge", "refund", None),
    ]
    undoing, event = await store.transition(
        intent_id, S.FAILED, worker_id="w1", error=ERROR, by_agent=True
    )
    assert undoing.status is S.SUBMITTED and undoing.lease_worker is None
    assert undoing.error == ERROR
    assert event.event_type == "intent.compensating"
    assert event.details == {
        "ending": "FAILED",
        "compensations": ["charge", "book"],
        "reason": ERROR["message"],
    }
    assert undoing.saga is not None and undoing.saga["phase"] == "compensating"
    (_, delivered), *_ = await store.lease(AGENT, "w2", 1, {})
    assert delivered.details is not None and delivered.details["phase"] == "compensate"

    # Only the worker holding the compensation delivery records, and only steps to undo.
    with pytest.raises(Conflict):
        await store.record_compensation(intent_id, "charge", {"ok": True}, "w1")
    with pytest.raises(BadInput):
        await store.record_compensation(intent_id, "look", {"ok": True}, "w2")
    # A stale worker's step record is refused while the steps are undone.
    with pytest.raises(Conflict):
        await store.record_steps(intent_id, [(4, "notify", None)], None)

    first, _ = await store.record_compensation(intent_id, "charge", {"ok": True, "result": 1}, "w2")
    assert first.status is S.IN_PROGRESS
    again, effects = await store.record_compensation(intent_id, "charge", {"ok": True}, "w2")
    assert again.last_seq == first.last_seq and not effects.finished  # kept once
    final, effects = await store.record_compensation(intent_id, "book", {"ok": True}, "w2")
    assert final.status is S.FAILED and effects.finished == [final]
    assert final.saga is not None and final.saga["phase"] == "compensated"
    assert final.to_wire()["compensated"] is True and final.error == ERROR
    kinds = await _event_types(store, intent_id)
    assert kinds[-6:] == [
        "intent.delivered",
        "intent.in_progress",
        "intent.compensation",
        "intent.compensation",
        "intent.compensated",
        "intent.failed",
    ]
    undone = {s.key: s.undone for s in await store.list_steps(intent_id)}
    assert undone["charge"] is not None and undone["charge"]["result"] == 1
    assert undone["book"] is not None and undone["look"] is None
    # Sent again after its answer was lost: the record stands, nothing changes.
    same, _ = await store.record_compensation(intent_id, "book", {"ok": False}, "w2")
    assert same == final
    with pytest.raises(Conflict, match="compensated"):
        await store.retry(intent_id, "alice")


async def test_an_intent_without_compensations_ends_at_once(store: Store) -> None:
    intent_id = await _leased(store)
    await store.record_steps(intent_id, [(1, "look", None)], "w1")
    ended, _ = await store.transition(intent_id, S.FAILED, worker_id="w1", by_agent=True)
    assert ended.status is S.FAILED and ended.saga is None


async def test_a_failing_compensation_asks_a_person_who_decides(store: Store) -> None:
    intent_id = await _booked(store)
    await store.transition(intent_id, S.FAILED, worker_id="w1", error=ERROR, by_agent=True)
    await store.lease(AGENT, "w2", 1, {})
    failed = {"ok": False, "error": {"type": "ConnectionError", "message": "down"}, "attempts": 4}
    waiting, effects = await store.record_compensation(intent_id, "charge", failed, "w2")
    assert (waiting.status, waiting.waiting_reason) == (S.WAITING, "WAITING_FOR_HUMAN")
    assert waiting.saga is not None and waiting.saga["phase"] == "stuck"
    assert waiting.lease_worker is None
    (task,) = await store.list_tasks(intent_id=intent_id, status="PENDING")
    assert [n["event"] for n in effects.notices] == ["assigned"]
    assert task.spec["compensation"] == {"step": "charge"}
    assert task.spec["details"]["still_to_undo"] == ["book"]
    assert task.spec["details"]["error"]["message"] == "down"
    with pytest.raises(Conflict, match="undoing its steps"):
        await store.transition(intent_id, S.CANCELED, actor="alice")

    # retry: delivered again to run it; it fails again; skip: the next one runs.
    retried, _ = await store.retry(intent_id, "alice")
    assert retried.status is S.SUBMITTED
    assert retried.saga is not None and retried.saga["phase"] == "compensating"
    await store.lease(AGENT, "w2", 1, {})
    await store.record_compensation(intent_id, "charge", failed, "w2")
    (task,) = await store.list_tasks(intent_id=intent_id, status="PENDING")
    _, effects = await store.decide(task.task_id, "skip", "alice", "refunded by phone", {})
    assert [i.status for i in effects.requeued] == [S.SUBMITTED]
    await store.lease(AGENT, "w3", 1, {})
    await store.record_compensation(intent_id, "book", failed, "w3")
    (task,) = await store.list_tasks(intent_id=intent_id, status="PENDING")
    _, effects = await store.decide(task.task_id, "mark_done", "bob", None, {})
    (final,) = effects.finished
    assert final.status is S.FAILED and final.saga is not None
    events = await store.list_events(intent_id)
    assert events[-2].event_type == "intent.compensated"
    assert events[-2].details == {
        "ending": "FAILED",
        "skipped": ["charge"],
        "marked_done": ["book"],
    }


async def test_cancel_of_a_running_intent_is_asked_of_its_worker(store: Store) -> None:
    intent_id = await _booked(store)
    asked, event = await store.transition(
        intent_id, S.CANCELED, actor="alice", details={"reason": "off"}, ask_worker=True
    )
    assert event.event_type == "intent.cancel_requested" and asked.status is S.IN_PROGRESS
    assert asked.saga == {"phase": "canceling", "actor": "alice", "reason": "off"}
    with pytest.raises(Conflict, match="already asked"):
        await store.transition(intent_id, S.CANCELED, actor="alice", ask_worker=True)
    # The handler still records what it finished; a wait it starts answers "canceled".
    await store.record_steps(intent_id, [(4, "pack", Undoable(None, "unpack"))], "w1")
    state, _ = await store.begin_wait(intent_id, "w1", 5, "approval:x", "human", {"title": "x"})
    assert state["state"] == "canceled"
    # Whatever it reports next ends it CANCELED, its steps undone first.
    undoing, event = await store.transition(
        intent_id, S.FAILED, worker_id="w1", error={"message": "IntentCanceled"}, by_agent=True
    )
    assert event.details is not None and event.details["compensations"] == [
        "pack",
        "charge",
        "book",
    ]
    assert undoing.saga is not None and undoing.saga["ending"]["status"] == "CANCELED"
    assert undoing.saga["ending"]["actor"] == "alice"

    # Queued (no handler runs it): canceled at once.
    new = NewIntent(intent_type="intent.test.v1", to_agent=AGENT, payload={})
    queued, _ = await store.create_intent(new, "00000000-0000-4000-8000-000000000099")
    canceled, _ = await store.transition(queued.intent_id, S.CANCELED, actor="alice")
    assert canceled.status is S.CANCELED


async def test_cancel_of_a_worker_that_hears_no_cancels_undoes_the_steps_at_once(
    store: Store,
) -> None:
    intent_id = await _booked(store)
    undoing, event = await store.transition(intent_id, S.CANCELED, actor="alice")
    assert event.event_type == "intent.compensating" and undoing.lease_worker is None
    with pytest.raises(Conflict):  # the worker's next report is refused
        await store.record_steps(intent_id, [(4, "notify", None)], "w1")


async def test_a_handler_that_finishes_before_it_sees_the_cancel_completes(store: Store) -> None:
    intent_id = await _booked(store)
    await store.transition(intent_id, S.CANCELED, actor="alice", ask_worker=True)
    done, _ = await store.transition(
        intent_id, S.COMPLETED, worker_id="w1", result={"ok": True}, by_agent=True
    )
    assert done.status is S.COMPLETED and done.saga is None


async def test_a_compensation_delivery_that_keeps_dying_asks_a_person(store: Store) -> None:
    intent_id = await _booked(store)
    await store.transition(intent_id, S.FAILED, worker_id="w1", by_agent=True)
    for crash in range(1, MAX_CRASHES + 1):
        now = await store.get_intent(intent_id)
        assert now is not None and now.status is S.SUBMITTED, crash
        await store.lease(AGENT, "w2", 1, {})
        ((released, _),) = await store.release(worker_id="w2", reason="died")
        if released.status is S.WAITING and released.waiting_reason == "WAITING_FOR_TIME":
            await store.fire_timers(10**10)
    status, saga = await _saga(store, intent_id)
    assert status is S.WAITING and saga is not None and saga["phase"] == "stuck"
    (task,) = await store.list_tasks(intent_id=intent_id, status="PENDING")
    assert "stopped 5 times while compensating: died" in task.spec["details"]["error"]["message"]


async def test_a_rejection_where_the_handler_asks_compensates(store: Store) -> None:
    intent_id = await _booked(store)
    with pytest.raises(ValueError, match="on_reject"):
        await store.begin_wait(intent_id, None, 4, "k", "human", {"title": "x", "on_reject": "?"})
    options = {"title": "Ship?", "on_reject": "compensate"}
    await store.begin_wait(intent_id, "w1", 4, "approval:Ship?", "human", options)
    (task,) = await store.list_tasks(intent_id=intent_id)
    _, effects = await store.decide(task.task_id, "rejected", "bo", "too pricey", {})
    (undoing,) = effects.requeued
    assert undoing.saga is not None and undoing.saga["ending"]["status"] == "CANCELED"
    steps = await store.list_steps(intent_id)
    assert steps[-1].key == "approval:Ship?" and steps[-1].result["outcome"] == "rejected"


async def test_a_deadline_that_fails_undoes_the_steps_then_times_out(store: Store) -> None:
    intent_id = await _booked(store)
    options = {"title": "Ship?", "deadline_seconds": 5, "on_timeout": "fail"}
    await store.begin_wait(intent_id, "w1", 4, "approval:Ship?", "human", options)
    effects = await store.fire_timers(10**10)
    (undoing,) = effects.requeued
    assert undoing.status is S.SUBMITTED and not effects.finished
    assert undoing.saga is not None and undoing.saga["ending"]["status"] == "TIMED_OUT"
    await store.lease(AGENT, "w2", 1, {})
    await store.record_compensation(intent_id, "charge", {"ok": True}, "w2")
    final, _ = await store.record_compensation(intent_id, "book", {"ok": True}, "w2")
    assert final.status is S.TIMED_OUT and final.to_wire()["compensated"] is True
    last = (await store.list_events(intent_id))[-1]
    assert last.event_type == "intent.timed_out" and last.actor == "axme"
    assert last.details is not None and last.details["compensated"] is True
