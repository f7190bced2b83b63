"""The Store contract, part three: workflows (a scenario's steps on one intent), on every
backend (conftest `STORE_BACKENDS`): `create_workflow_intent`, `get_workflow`, and how agent
outcomes, decisions and timers move a workflow."""

from __future__ import annotations

from typing import Any

import pytest

from axme_cli.errors import Conflict
from axme_cli.protocol import IntentStatus
from axme_daemon.intents import NewIntent
from axme_daemon.scenarios import agent_then_person, check_bundle
from axme_daemon.store import Store

S = IntentStatus
CHECKER = "agent://checker"
FIXER = "agent://fixer"
LATER = 10**10  # a `now` by which every timer is due


@pytest.fixture
def store(backend_store: Store) -> Store:
    return backend_store


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _plan(*steps: dict[str, Any]) -> dict[str, Any]:
    checked = check_bundle(
        {
            "scenario_id": "test.flow.v1",
            "agents": [
                {"role": "checker", "address": "checker", "create_if_missing": True},
                {"role": "fixer", "address": "fixer", "create_if_missing": True},
            ],
            "humans": [{"role": "ops"}],
            "workflow": {"steps": list(steps)},
            "intent": {"type": "intent.test.flow.v1", "payload": {"n": 1}},
        }
    )
    assert not checked.errors, checked.errors
    return checked.plan


CHECK = {"step_id": "check", "tool_id": "tool.agent.task.v1", "assigned_to": "checker"}
SIGN = {
    "step_id": "sign",
    "tool_id": "tool.approval.human_signoff",
    "assigned_to": "ops",
    "human_task": {"title": "Ship?"},
}
FIX = {"step_id": "fix", "tool_id": "tool.agent.task.v1", "assigned_to": "fixer"}


def _new(n: int = 0, **kw: Any) -> NewIntent:
    fields = {"intent_type": "intent.test.flow.v1", "to_agent": CHECKER, "payload": {"n": n}}
    return NewIntent(**{**fields, **kw})


async def _start(store: Store, plan: dict[str, Any], n: int = 0, **kw: Any) -> str:
    intent, created, _ = await store.create_workflow_intent(
        _new(n, **kw), _id(n), plan, "test.flow.v1"
    )
    assert created
    return intent.intent_id


async def _agent_done(store: Store, address: str, ok: bool = True, value: Any = None) -> Any:
    (leased, _), *_ = await store.lease(address, "w1", 1, {})
    status = S.COMPLETED if ok else S.FAILED
    intent, _ = await store.transition(
        leased.intent_id,
        status,
        worker_id="w1",
        result=value if ok else None,
        error=None if ok else (value or {"message": "no"}),
        by_agent=True,
    )
    return intent


async def _types(store: Store, intent_id: str) -> list[str]:
    return [e.event_type for e in await store.list_events(intent_id)]


async def test_agent_step_then_sign_off_completes_with_every_steps_result(store: Store) -> None:
    keys = [("scenario.checker", "h" * 64, [f"agent:{CHECKER}"])]
    new = _new(0, idempotency_key="scenario:k", request_hash="r")
    intent, created, effects = await store.create_workflow_intent(
        new, _id(0), _plan(CHECK, SIGN), "test.flow.v1", keys
    )
    assert created and intent.status is S.SUBMITTED and intent.to_agent == CHECKER
    assert [i.intent_id for i in effects.requeued] == [intent.intent_id]
    assert [k["name"] for k in await store.list_api_keys()] == ["scenario.checker"]
    shown = await store.get_workflow(intent.intent_id)
    assert shown is not None and shown["current_step"] == "check"
    assert shown["pending_with"] == {"type": "agent", "ref": "checker", "name": CHECKER}

    waiting = await _agent_done(store, CHECKER, value={"ready": True})
    assert (waiting.status, waiting.waiting_reason) == (S.WAITING, "WAITING_FOR_HUMAN")
    assert (await store.get_workflow(intent.intent_id) or {})["current_step"] == "sign"
    (task,) = await store.list_tasks(intent_id=intent.intent_id)
    assert task.spec["title"] == "Ship?" and task.assignee == "ops"

    _, effects = await store.decide(task.task_id, "approved", "alice", None, {})
    (done,) = effects.finished
    assert done.status is S.COMPLETED
    assert done.result["steps"]["check"] == {"ready": True}
    assert done.result["steps"]["sign"]["outcome"] == "approved"
    assert (await _types(store, intent.intent_id))[:3] == [
        "intent.created",
        "intent.submitted",
        "intent.scenario.step_started",
    ]
    # The same idempotency key: the intent as it is, no key made again, nothing written.
    again, created, _ = await store.create_workflow_intent(
        new, _id(1), _plan(CHECK, SIGN), "test.flow.v1", keys
    )
    assert not created and again.intent_id == intent.intent_id
    assert len(await store.list_api_keys()) == 1


async def test_a_taken_key_name_refuses_the_whole_apply(store: Store) -> None:
    await store.put_api_key("scenario.checker", "x" * 64, ["intents:read"])
    keys = [("scenario.checker", "h" * 64, [f"agent:{CHECKER}"])]
    with pytest.raises(Conflict):
        await store.create_workflow_intent(_new(), _id(0), _plan(CHECK), "test.flow.v1", keys)
    assert await store.get_intent(_id(0)) is None
    assert await store.get_workflow(_id(0)) is None


async def test_a_failed_step_is_retried_then_takes_on_failure(store: Store) -> None:
    check = {**CHECK, "retry": {"max_retries": 1, "retry_delay_seconds": 0}, "on_failure": "fix"}
    intent_id = await _start(store, _plan(check, SIGN, FIX))
    again = await _agent_done(store, CHECKER, ok=False)
    assert again.status is S.SUBMITTED and again.to_agent == CHECKER
    assert (await store.get_workflow(intent_id) or {})["step_attempt"] == 2
    moved = await _agent_done(store, CHECKER, ok=False)
    assert moved.status is S.SUBMITTED and moved.to_agent == FIXER
    assert (await store.get_workflow(intent_id) or {})["current_step"] == "fix"
    done = await _agent_done(store, FIXER, value={"fixed": True})
    assert done.status is S.COMPLETED
    assert (await _types(store, intent_id)).count("intent.scenario.step_failed") == 2


async def test_a_retry_waits_its_delay_on_a_timer(store: Store) -> None:
    check = {**CHECK, "retry": {"max_retries": 1, "retry_delay_seconds": 30}}
    intent_id = await _start(store, _plan(check))
    waiting = await _agent_done(store, CHECKER, ok=False)
    assert (waiting.status, waiting.waiting_reason) == (S.WAITING, "WAITING_FOR_TIME")
    assert not (await store.fire_timers(0)).requeued  # not due yet
    (again,) = (await store.fire_timers(LATER)).requeued
    assert again.intent_id == intent_id and again.status is S.SUBMITTED
    failed = await _agent_done(store, CHECKER, ok=False, value={"message": "still no"})
    assert failed.status is S.FAILED
    assert failed.error["step_id"] == "check"


async def test_a_step_past_its_deadline_ends_the_intent_timed_out(store: Store) -> None:
    intent_id = await _start(store, _plan({**CHECK, "step_deadline_seconds": 5}, SIGN))
    await store.lease(CHECKER, "w1", 1, {})
    (ended,) = (await store.fire_timers(LATER)).finished
    assert ended.intent_id == intent_id and ended.status is S.TIMED_OUT
    assert ended.lease_worker is None
    with pytest.raises(Conflict):  # the agent's late outcome changes nothing
        await store.transition(intent_id, S.COMPLETED, worker_id="w1", by_agent=True)


async def test_a_sign_off_past_its_deadline_ends_timed_out(store: Store) -> None:
    intent_id = await _start(store, _plan(CHECK, {**SIGN, "step_deadline_seconds": 60}))
    await _agent_done(store, CHECKER)
    (ended,) = (await store.fire_timers(LATER)).finished
    assert ended.intent_id == intent_id and ended.status is S.TIMED_OUT


async def test_a_rejection_ends_canceled_or_takes_on_failure(store: Store) -> None:
    plain = await _start(store, _plan(CHECK, SIGN), 0)
    await _agent_done(store, CHECKER)
    (task,) = await store.list_tasks(intent_id=plain)
    _, effects = await store.decide(task.task_id, "rejected", "bob", "no", {})
    assert [i.status for i in effects.finished] == [S.CANCELED]

    jumping = await _start(store, _plan(CHECK, {**SIGN, "on_failure": "fix"}, FIX), 1)
    await _agent_done(store, CHECKER)
    (task,) = await store.list_tasks(intent_id=jumping)
    _, effects = await store.decide(task.task_id, "rejected", "bob", "no", {})
    assert not effects.finished
    moved = await store.get_intent(jumping)
    assert moved is not None and (moved.status, moved.to_agent) == (S.SUBMITTED, FIXER)


async def test_a_person_may_not_be_answered_by_the_agent(store: Store) -> None:
    intent_id = await _start(store, _plan(CHECK, SIGN))
    await _agent_done(store, CHECKER)
    with pytest.raises(Conflict):
        await store.transition(intent_id, S.COMPLETED, by_agent=True)


async def test_an_agent_then_a_person_on_one_intent_in_axmes_order(store: Store) -> None:
    plan = agent_then_person(CHECKER, {"title": "Merge?"})
    intent, _, effects = await store.create_workflow_intent(
        _new(human_task={"title": "Merge?"}), _id(0), plan, None
    )
    assert intent.status is S.SUBMITTED and [i.intent_id for i in effects.requeued] == [_id(0)]
    waiting = await _agent_done(store, CHECKER, value={"lint": "ok"})
    assert waiting.waiting_reason == "WAITING_FOR_HUMAN"
    (task,) = await store.list_tasks(intent_id=_id(0))
    _, effects = await store.decide(task.task_id, "approved", "alice", None, {})
    (done,) = effects.finished
    assert done.status is S.COMPLETED and done.result["outcome"] == "approved"
    assert await _types(store, _id(0)) == [
        "intent.created",
        "intent.submitted",
        "intent.delivered",
        "intent.in_progress",
        "intent.human_task_assigned",
        "intent.human_task_decided",
        "intent.completed",
    ]


async def test_on_success_jumps_past_the_steps_between(store: Store) -> None:
    intent_id = await _start(store, _plan({**CHECK, "on_success": "fix"}, SIGN, FIX))
    moved = await _agent_done(store, CHECKER, value={"ok": 1})
    assert (moved.status, moved.to_agent) == (S.SUBMITTED, FIXER)
    done = await _agent_done(store, FIXER, value={"ok": 2})
    assert done.status is S.COMPLETED and list(done.result["steps"]) == ["check", "fix"]
    assert await store.list_tasks(intent_id=intent_id, status=None) == []


async def test_an_agent_outcome_moves_its_workflow_after_plain_intents_ended(
    store: Store,
) -> None:
    """Outcomes of plain intents first, then of one that runs a workflow: the workflow
    moves on (on PostgreSQL the look for a workflow, found empty before, is assumed empty;
    the server refuses the assumption and the write runs again, reading it)."""
    for n in (1, 2):
        await store.create_intent(_new(n, to_agent=FIXER), _id(n))
        plain = await _agent_done(store, FIXER, value=n)
        assert plain.status is S.COMPLETED and plain.result == n
    intent_id = await _start(store, _plan(CHECK, SIGN), 3)
    waiting = await _agent_done(store, CHECKER, value={"ready": True})
    assert waiting.intent_id == intent_id
    assert (waiting.status, waiting.waiting_reason) == (S.WAITING, "WAITING_FOR_HUMAN")
    assert (await store.get_workflow(intent_id) or {})["current_step"] == "sign"
