"""The Store contract, part two: durable waits, decisions, signals, child intents, timers,
the reads and writes part one leaves out, and writers racing for one thing. Every backend
runs it (conftest `STORE_BACKENDS`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from axme_cli.errors import AlreadyFinal, BadInput, Conflict, NotFound
from axme_cli.protocol import IntentStatus
from axme_daemon.intents import Intent, NewIntent, StepFailure
from axme_daemon.store import IntentFilter, Store, StoreStats, WorkerReport

S = IntentStatus
AGENT = "agent://test/a"
LATER = 10**10  # a `now` by which every timer is due


@pytest.fixture
def store(backend_store: Store) -> Store:
    return backend_store


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _new(n: int = 0, **kw: Any) -> NewIntent:
    return NewIntent(
        **{"intent_type": "intent.test.v1", "to_agent": AGENT, "payload": {"n": n}, **kw}
    )


async def _leased(store: Store, n: int = 0, worker: str = "w1", **kw: Any) -> str:
    """A new intent of its own, delivered to `worker`."""
    intent, _ = await store.create_intent(_new(n, **kw), _id(n))
    leased = await store.lease(AGENT, worker, 1, {})
    assert [i.intent_id for i, _ in leased] == [intent.intent_id]
    return intent.intent_id


async def _status(store: Store, intent_id: str) -> tuple[S, str | None]:
    intent = await store.get_intent(intent_id)
    assert intent is not None
    return intent.status, intent.waiting_reason


async def _event_types(store: Store, intent_id: str) -> list[str]:
    return [e.event_type for e in await store.list_events(intent_id)]


# -- human tasks and decisions ---------------------------------------------------------------


async def test_a_step_waits_for_a_person_and_the_decision_resumes_it(store: Store) -> None:
    intent_id = await _leased(store)
    answer, effects = await store.begin_wait(
        intent_id, "w1", 1, "approve", "human", {"title": "Ship?"}
    )
    assert answer["state"] == "waiting"
    assert await _status(store, intent_id) == (S.WAITING, "WAITING_FOR_HUMAN")
    waiting = await store.get_intent(intent_id)
    assert waiting is not None and waiting.lease_worker is None
    (task,) = await store.list_tasks(intent_id=intent_id)
    assert answer["target"] == task.task_id and task.status == "PENDING" and task.ordinal == 1
    assert [n["event"] for n in effects.notices] == ["assigned"]
    # Asked again (the handler replayed), the wait is the same one.
    again, _ = await store.begin_wait(intent_id, "w1", 1, "approve", "human", {"title": "Ship?"})
    assert again == {"state": "waiting", "target": task.task_id}
    decided, effects = await store.decide(task.task_id, "approved", "alice", "fine", {})
    assert decided.status == "DECIDED" and decided.decision is not None
    assert decided.decision["actor"] == "alice" and decided.decision["approved"]
    assert [i.intent_id for i in effects.requeued] == [intent_id]
    assert await _status(store, intent_id) == (S.SUBMITTED, None)
    (step,) = await store.list_steps(intent_id)
    assert (step.ordinal, step.key, step.result["outcome"]) == (1, "approve", "approved")
    # The redelivered handler asks again and gets the decision without waiting.
    await store.lease(AGENT, "w2", 1, {})
    done, _ = await store.begin_wait(intent_id, "w2", 1, "approve", "human", {"title": "Ship?"})
    assert done["state"] == "done" and done["result"]["actor"] == "alice"
    with pytest.raises(Conflict):
        await store.begin_wait(intent_id, "w2", 1, "other", "human", {"title": "Ship?"})
    with pytest.raises(Conflict):
        await store.decide(task.task_id, "rejected", "bob", None, {})
    assert [t.status for t in await store.list_tasks(status="DECIDED")] == ["DECIDED"]
    assert await store.list_tasks(status="PENDING") == []
    assert [t.task_id for t in await store.list_tasks(prefix=task.task_id[:8])] == [task.task_id]


async def test_an_intents_own_task_ends_it_by_the_decision(store: Store) -> None:
    approve = _new(1, human_task={"title": "Ship?"}, idempotency_key="k", request_hash="h")
    reject = _new(2, human_task={"title": "Ship?", "reject_status": "FAILED"})
    yes, _, _ = await store.create_task_intent(approve, _id(1))
    no, _, _ = await store.create_task_intent(reject, _id(2))
    replay, created, _ = await store.create_task_intent(approve, _id(3))
    assert not created and replay.intent_id == _id(1)
    (yes_task,) = await store.list_tasks(intent_id=yes.intent_id)
    (no_task,) = await store.list_tasks(intent_id=no.intent_id)
    _, effects = await store.decide(yes_task.task_id, "approved", "alice", None, {})
    assert [i.status for i in effects.finished] == [S.COMPLETED]
    done = await store.get_intent(yes.intent_id)
    assert done is not None and done.result["outcome"] == "approved"
    _, effects = await store.decide(no_task.task_id, "rejected", "bob", "no", {})
    assert [i.status for i in effects.finished] == [S.FAILED]
    failed = await store.get_intent(no.intent_id)
    assert failed is not None and failed.error["message"] == "rejected by bob"
    with pytest.raises(NotFound):
        await store.decide("no-such-task", "approved", "alice", None, {})


async def test_a_decision_on_a_task_whose_intent_ended_is_refused(store: Store) -> None:
    intent, _, _ = await store.create_task_intent(_new(human_task={"title": "Ship?"}), _id(0))
    await store.transition(intent.intent_id, S.CANCELED, actor="alice")
    (task,) = await store.list_tasks(intent_id=intent.intent_id)
    assert task.status == "CLOSED"
    with pytest.raises(Conflict, match="closed"):
        await store.decide(task.task_id, "approved", "bob", None, {})
    assert await store.next_timer(time.time()) is None


async def test_an_agent_cannot_finish_an_intent_that_waits_for_a_person(store: Store) -> None:
    intent_id = await _leased(store)
    await store.begin_wait(intent_id, "w1", 1, "ok", "human", {"title": "Ship?"})
    with pytest.raises(Conflict):
        await store.transition(intent_id, S.COMPLETED, by_agent=True)
    assert await _status(store, intent_id) == (S.WAITING, "WAITING_FOR_HUMAN")


# -- signals and child intents ---------------------------------------------------------------


async def test_a_signal_resumes_its_wait_or_is_kept_for_one_to_come(store: Store) -> None:
    intent_id = await _leased(store)
    kept, _ = await store.send_signal(intent_id, "early", {"x": 1})
    assert not kept  # nobody waits yet: kept, not lost
    got, effects = await store.begin_wait(intent_id, "w1", 1, "early", "signal", {"name": "early"})
    assert got["state"] == "done" and got["result"]["data"] == {"x": 1}
    assert effects.requeued == []
    waiting, _ = await store.begin_wait(intent_id, "w1", 2, "late", "signal", {"name": "late"})
    assert waiting == {"state": "waiting", "target": "late"}
    assert await _status(store, intent_id) == (S.WAITING, "WAITING_FOR_TOOL")
    resumed, effects = await store.send_signal(intent_id, "late", None)
    assert resumed and [i.intent_id for i in effects.requeued] == [intent_id]
    steps = await store.list_steps(intent_id)
    assert [(s.ordinal, s.key, s.result["name"]) for s in steps] == [
        (1, "early", "early"),
        (2, "late", "late"),
    ]
    assert (await _event_types(store, intent_id)).count("intent.signal") == 2
    await store.transition(intent_id, S.CANCELED)
    with pytest.raises(AlreadyFinal):
        await store.send_signal(intent_id, "late", None)


async def test_a_parent_waits_for_its_child_intent(store: Store) -> None:
    parent = await _leased(store, 1)
    child, _ = await store.create_intent(_new(2, to_agent="agent://test/child"), _id(2))
    answer, _ = await store.begin_wait(
        parent, "w1", 1, "child", "child", {"child_intent_id": child.intent_id}
    )
    assert answer == {"state": "waiting", "target": child.intent_id}
    assert await _status(store, parent) == (S.WAITING, "WAITING_FOR_AGENT")
    finished, _ = await store.transition(child.intent_id, S.COMPLETED, result={"ok": True})
    effects = await store.child_finished(finished)
    assert [i.intent_id for i in effects.requeued] == [parent]
    (step,) = await store.list_steps(parent)
    assert step.result == {
        "intent_id": child.intent_id,
        "status": "COMPLETED",
        "result": {"ok": True},
        "error": None,
    }
    assert (await store.child_finished(finished)).requeued == []  # once
    # A child already final when the wait begins: done at once.
    await store.lease(AGENT, "w1", 1, {})
    again, _ = await store.begin_wait(
        parent, "w1", 2, "child2", "child", {"child_intent_id": child.intent_id}
    )
    assert again["state"] == "done" and again["result"]["status"] == "COMPLETED"


# -- timers ------------------------------------------------------------------------------------


async def test_a_sleep_and_a_signal_timeout_end_by_their_timers(store: Store) -> None:
    sleeper = await _leased(store, 1)
    await store.begin_wait(sleeper, "w1", 1, "nap", "time", {"seconds": 30})
    assert await _status(store, sleeper) == (S.WAITING, "WAITING_FOR_TIME")
    waiter = await _leased(store, 2)
    await store.begin_wait(waiter, "w1", 1, "sig", "signal", {"name": "go", "timeout_seconds": 60})
    first = await store.next_timer(time.time())
    assert first is not None and time.time() + 25 < first < time.time() + 35
    assert (await store.fire_timers(time.time())).touched == set()  # nothing due yet
    effects = await store.fire_timers(LATER)
    assert sorted(i.intent_id for i in effects.requeued) == sorted([sleeper, waiter])
    assert "slept_until" in (await store.list_steps(sleeper))[0].result
    assert (await store.list_steps(waiter))[0].result is None  # timed out: no signal
    assert await store.next_timer(time.time()) is None
    assert (await store.fire_timers(LATER)).requeued == []


async def test_reminders_then_a_deadline_that_escalates_then_rejects(store: Store) -> None:
    spec = {
        "title": "Ship?",
        "assignees": ["alice"],
        "remind_after_seconds": 60,
        "remind_interval_seconds": 60,
        "max_reminders": 2,
        "deadline_seconds": 3600,
        "on_timeout": "escalate",
        "escalate_to": "boss",
    }
    intent, _, _ = await store.create_task_intent(_new(human_task=spec), _id(0))
    fired: list[str] = []
    for _ in range(6):
        effects = await store.fire_timers(LATER)
        fired += [n["event"] for n in effects.notices]
    assert sorted(fired) == ["escalation", "reminder", "reminder", "timeout"]
    assert fired[-1] == "timeout"
    (task,) = await store.list_tasks(intent_id=intent.intent_id)
    assert (task.status, task.assignee, task.reminders) == ("DECIDED", "boss", 2)
    assert task.decision is not None and task.decision["outcome"] == "rejected"
    assert await _status(store, intent.intent_id) == (S.CANCELED, None)
    types = await _event_types(store, intent.intent_id)
    assert types.count("intent.reminder") == 2 and types.count("intent.escalated") == 1


async def test_a_deadline_that_fails_ends_the_intent_timed_out(store: Store) -> None:
    intent_id = await _leased(store)
    await store.begin_wait(
        intent_id,
        "w1",
        1,
        "ok",
        "human",
        {"title": "Ship?", "deadline_seconds": 5, "on_timeout": "fail"},
    )
    effects = await store.fire_timers(LATER)
    assert [i.status for i in effects.finished] == [S.TIMED_OUT]
    assert [n["event"] for n in effects.notices] == ["timeout"]
    (task,) = await store.list_tasks(intent_id=intent_id)
    assert task.status == "TIMED_OUT"
    retried, _ = await store.retry(intent_id, "alice")
    assert retried.status is S.SUBMITTED


async def test_a_second_failed_attempt_backs_off_and_its_timer_redelivers(store: Store) -> None:
    intent_id = await _leased(store, max_delivery_attempts=5)
    await store.release(intent_ids=[intent_id], reason="died")  # first failure: at once
    await store.lease(AGENT, "w1", 1, {})
    (released,) = await store.release(intent_ids=[intent_id], worker_id="w1", reason="died again")
    assert (released[0].status, released[0].waiting_reason) == (S.WAITING, "WAITING_FOR_TIME")
    assert released[1].details is not None and released[1].details["redeliver_in_seconds"] > 0
    assert await store.lease(AGENT, "w1", 1, {}) == []  # backing off
    effects = await store.fire_timers(LATER)
    assert [i.intent_id for i in effects.requeued] == [intent_id]
    (again,) = await store.lease(AGENT, "w2", 1, {})
    assert again[0].delivery_attempt == 3 and again[1].details["reason"] == "died again"  # type: ignore[index]


# -- reads and writes part one leaves out ------------------------------------------------------


async def test_queue_reads_and_fetching_several_intents(store: Store) -> None:
    assert not await store.has_queued(AGENT) and await store.count_queued(AGENT) == 0
    for n in range(3):
        await store.create_intent(_new(n), _id(n))
    await store.create_task_intent(_new(9, human_task={"title": "Ship?"}), _id(9))
    assert await store.has_queued(AGENT) and await store.count_queued(AGENT) == 3
    got = await store.get_intents([_id(2), _id(0), _id(77)])
    assert sorted(i.intent_id for i in got) == [_id(0), _id(2)]
    assert await store.get_intent(_id(77)) is None
    with pytest.raises(BadInput):
        await store.list_intents(IntentFilter(), 5, "x")


async def test_step_records_are_all_or_none(store: Store) -> None:
    intent_id = await _leased(store)
    steps = await store.record_steps(
        intent_id, [(1, "a", 1), (2, "b", StepFailure({"type": "E", "message": "m"}))], "w1"
    )
    assert [(s.key, s.result, s.error) for s in steps] == [
        ("a", 1, None),
        ("b", None, {"type": "E", "message": "m"}),
    ]
    with pytest.raises(BadInput):  # 3 fits, 5 does not: neither is kept
        await store.record_steps(intent_id, [(3, "c", 3), (5, "e", 5)], "w1")
    assert [s.ordinal for s in await store.list_steps(intent_id)] == [1, 2]
    done, event = await store.transition(
        intent_id, S.COMPLETED, worker_id="w1", steps=[(3, "c", 3)], result="ok"
    )
    assert done.result == "ok" and event.event_type == "intent.completed"
    assert [s.ordinal for s in await store.list_steps(intent_id)] == [1, 2, 3]


async def test_a_refusal_after_writing_undoes_only_its_own_writes_in_a_batch(
    store: Store,
) -> None:
    """Writes sent at once share one transaction; one that refuses after it wrote (step 1
    recorded, then 3 out of order) has its writes undone, and its batch mates commit."""
    a, b, c = [await _leased(store, n, worker=f"w{n}") for n in (1, 2, 3)]
    before = {i: (await store.get_intent(i)) for i in (a, b, c)}
    outcomes = await asyncio.gather(
        store.record_steps(a, [(1, "x", 1), (3, "z", 3)], "w1"),
        store.record_steps(b, [(1, "x", 1), (2, "y", 2)], "w2"),
        store.report([WorkerReport(c, [(1, "x", 1), (3, "z", 3)])], "w3"),
        store.report([WorkerReport(b, [(3, "z", 3)], completed=True, result="ok")], "w2"),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], BadInput)
    assert [s.key for s in outcomes[1]] == ["x", "y"]  # type: ignore[union-attr]
    (refused,) = outcomes[2]  # type: ignore[misc]
    assert isinstance(refused, BadInput)
    (done,) = outcomes[3]  # type: ignore[misc]
    assert isinstance(done, Intent) and done.status is S.COMPLETED
    for undone in (a, c):  # neither a step nor an event of the refused writes is kept
        assert await store.list_steps(undone) == []
        now = await store.get_intent(undone)
        assert now is not None and now.last_seq == before[undone].last_seq  # type: ignore[union-attr]
        assert len(await store.list_events(undone)) == now.last_seq
    assert [s.key for s in await store.list_steps(b)] == ["x", "y", "z"]
    assert [e.event_type for e in await store.list_events(b)][-1] == "intent.completed"
    # Alone in its batch: a report of two intents, one refused after writing, one applied.
    d = await _leased(store, 4, worker="w3")
    answers = await store.report(
        [WorkerReport(c, [(1, "x", 1), (3, "z", 3)]), WorkerReport(d, [(1, "x", 1)])], "w3"
    )
    assert isinstance(answers[0], BadInput) and answers[1] is None
    assert await store.list_steps(c) == []
    assert [s.key for s in await store.list_steps(d)] == ["x"]


async def test_a_report_applies_each_intent_or_says_why_not(store: Store) -> None:
    ok = await _leased(store, 1)
    other = await _leased(store, 2, worker="w2")
    answers = await store.report(
        [
            WorkerReport(ok, [(1, "s", 1)], completed=True, result={"r": 1}),
            WorkerReport(other, [(1, "s", 1)]),  # another worker's
            WorkerReport(_id(99), [(1, "s", 1)]),
        ],
        "w1",
    )
    assert isinstance(answers[0], Intent) and answers[0].status is S.COMPLETED
    assert isinstance(answers[1], Conflict) and isinstance(answers[2], NotFound)
    assert await store.list_steps(other) == []
    assert await store.report([WorkerReport(other, [(1, "s", 1)])], "w2") == [None]


async def test_projects_keep_their_hooks_and_api_keys_their_scopes(store: Store) -> None:
    hooks = [{"command": ["notify"], "on": ["assigned"]}]
    assert await store.put_agents("/p/axme.toml", "d1", [], replace_source=True, hooks=hooks)
    (project,) = await store.list_projects()
    assert (project["config_path"], project["digest"], project["hooks"]) == (
        "/p/axme.toml",
        "d1",
        hooks,
    )
    row = await store.put_api_key("ci", "hash1", ["intents:write"])
    assert row["name"] == "ci" and row["scopes"] == ["intents:write"]
    with pytest.raises(Conflict):
        await store.put_api_key("ci", "hash2", [])
    (key,) = await store.list_api_keys()
    assert (key["name"], key["key_hash"], key["scopes"]) == ("ci", "hash1", ["intents:write"])
    assert await store.delete_api_key("ci") and not await store.delete_api_key("ci")
    assert await store.list_api_keys() == []


async def test_inbox_threads_follow_their_intent_and_their_owner(store: Store) -> None:
    inbox = "agent://o/dev/inbox"
    await store.create_intent(_new(1, reply_to=inbox), _id(1))
    await store.create_intent(_new(2, reply_to=_id(1)), _id(2))  # a child: a parent's id
    assert await store.inbox_thread(_id(2)) is None
    await store.transition(_id(1), S.COMPLETED, result={"n": 1})
    found = await store.inbox_thread(_id(1))
    assert found is not None
    intent, entries = found
    assert intent.intent_id == _id(1)
    assert [(e["kind"], e["owner"]) for e in entries] == [("sent", inbox), ("completed", inbox)]
    assert entries[1]["details"] == {"status": "COMPLETED", "result": {"n": 1}}

    reply = await store.inbox_reply(_id(1), inbox, "alice", "thanks")
    with pytest.raises(NotFound):  # not in that inbox
        await store.inbox_reply(_id(1), "agent://x/y/z", "alice", "no")
    await store.inbox_delegate(_id(1), None, "alice", "agent://o/dev/boss", "fyi")
    assert [t[0].intent_id for t in await store.inbox_threads(inbox, 10)] == []
    assert [t[0].intent_id for t in await store.inbox_threads("agent://o/dev/boss", 10)] == [_id(1)]
    with pytest.raises(BadInput):  # all or none
        await store.inbox_delete(_id(1), None, "bob", "both", [reply["message_id"], "nope"], None)
    assert await store.inbox_delete(_id(1), None, "bob", "both", None, 5) == [reply["message_id"]]
    found = await store.inbox_thread(_id(1))
    assert found is not None
    kinds = [(e["kind"], e["deleted_at"] is not None) for e in found[1]]
    assert kinds == [
        ("sent", False),
        ("completed", False),
        ("reply", True),
        ("delegated", False),
        ("deleted", False),
    ]
    changes = await store.inbox_changes(None, 0, 100)
    assert [c[0] for c in changes] == sorted(c[0] for c in changes) and len(changes) == 5
    boss = await store.inbox_changes("agent://o/dev/boss", changes[2][0], 100)
    assert [c[0] for c in boss] == [changes[3][0], changes[4][0]]


async def test_a_killed_agent_stays_killed_until_resumed(store: Store) -> None:
    first = await store.kill_agent("agent://m/dev/a", "alice")
    assert (first["address"], first["actor"]) == ("agent://m/dev/a", "alice")
    again = await store.kill_agent("agent://m/dev/a", "bob")  # the first kill stands
    assert again == first
    await store.kill_agent("agent://m/dev/b", "alice")
    assert [r["address"] for r in await store.list_killed_agents()] == [
        "agent://m/dev/a",
        "agent://m/dev/b",
    ]
    assert await store.resume_agent("agent://m/dev/a")
    assert not await store.resume_agent("agent://m/dev/a")
    assert [r["address"] for r in await store.list_killed_agents()] == ["agent://m/dev/b"]


async def test_commit_listeners_hear_of_the_intents_a_write_changed(store: Store) -> None:
    heard: list[set[str]] = []
    store.add_commit_listener(lambda ids: heard.append(set(ids)))
    await store.create_intent(_new(1), _id(1))
    await store.transition(_id(1), S.CANCELED)
    assert heard == [{_id(1)}, {_id(1)}]
    assert isinstance(store.stats(), StoreStats) and store.problem() is None
    assert store.translate_error(ValueError("not the store's")) is None


# -- writers racing ----------------------------------------------------------------------------


async def test_of_two_decisions_at_once_exactly_one_wins(store: Store) -> None:
    intent, _, _ = await store.create_task_intent(_new(human_task={"title": "Ship?"}), _id(0))
    (task,) = await store.list_tasks(intent_id=intent.intent_id)
    outcomes = await asyncio.gather(
        store.decide(task.task_id, "approved", "alice", None, {}),
        store.decide(task.task_id, "rejected", "bob", None, {}),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], Conflict)
    (decided,) = await store.list_tasks(intent_id=intent.intent_id)
    assert decided.decision == won[0][0].decision  # type: ignore[index]
    types = await _event_types(store, intent.intent_id)
    assert types.count("intent.human_task_decided") == 1


async def test_two_claims_of_one_intent_lease_it_once(store: Store) -> None:
    for n in range(3):
        await store.create_intent(_new(n), _id(n))
    claims = await asyncio.gather(*(store.lease(AGENT, f"w{n}", 2, {}) for n in range(4)))
    leased = [i.intent_id for claim in claims for i, _ in claim]
    assert sorted(leased) == [_id(0), _id(1), _id(2)]
    for n in range(3):
        assert (await _event_types(store, _id(n))).count("intent.delivered") == 1


async def test_each_timer_fires_once_however_many_fire_at_once(store: Store) -> None:
    ids = [await _leased(store, n) for n in range(3)]
    for intent_id in ids:
        await store.begin_wait(intent_id, "w1", 1, "nap", "time", {"seconds": 1})
    rounds = await asyncio.gather(*(store.fire_timers(LATER) for _ in range(4)))
    woken = [i.intent_id for effects in rounds for i in effects.requeued]
    assert sorted(woken) == sorted(ids)
    for intent_id in ids:
        assert len(await store.list_steps(intent_id)) == 1
        assert (await _event_types(store, intent_id)).count("intent.submitted") == 2


async def test_a_clock_stepped_back_brings_timers_and_deadlines_forward(store: Store) -> None:
    sleeper = await _leased(store, 1)
    await store.begin_wait(sleeper, "w1", 1, "nap", "time", {"seconds": 30})
    asker = await _leased(store, 2)
    spec = {"title": "Ship?", "deadline_seconds": 60}
    await store.begin_wait(asker, "w1", 1, "approve", "human", spec)
    back = time.time() - 3600  # the wall clock went back an hour since they were armed
    assert await store.next_timer(back) == back  # bring them forward at once
    assert (await store.fire_timers(back)).requeued == []  # nothing due yet
    due = await store.next_timer(back)
    assert due is not None and back + 25 < due < back + 35  # the sleep's own 30 s from `back`
    (task,) = await store.list_tasks(intent_id=asker)
    assert task.deadline_at is not None and back + 55 < task.deadline_at < back + 65
    assert [i.intent_id for i in (await store.fire_timers(back + 31)).requeued] == [sleeper]
    assert await store.next_timer(time.time()) == pytest.approx(task.deadline_at)


async def test_a_wait_keeps_its_attempt_and_gives_it_back_at_its_end(store: Store) -> None:
    intent_id = await _leased(store)
    await store.begin_wait(intent_id, "w1", 1, "sig", "signal", {"name": "go"})
    waiting = await store.get_intent(intent_id)
    assert waiting is not None and waiting.delivery_attempt == 1  # the attempt it waits in
    (suspended,) = [e for e in await store.list_events(intent_id) if e.status == S.WAITING]
    assert suspended.details is not None and suspended.details["signal"] == "go"
    await store.send_signal(intent_id, "go", None)
    resumed = await store.get_intent(intent_id)
    assert resumed is not None and (resumed.status, resumed.delivery_attempt) == (S.SUBMITTED, 0)
    [(again, _)] = await store.lease(AGENT, "w1", 1, {})
    assert again.delivery_attempt == 1  # the same attempt goes on


async def test_a_report_with_no_steps_starts_a_delivered_intent_once(store: Store) -> None:
    intent_id = await _leased(store)
    assert await _status(store, intent_id) == (S.DELIVERED, None)
    for _ in range(2):
        assert await store.report([WorkerReport(intent_id)], "w1") == [None]
    assert await _status(store, intent_id) == (S.IN_PROGRESS, None)
    assert (await _event_types(store, intent_id)).count("intent.in_progress") == 1
