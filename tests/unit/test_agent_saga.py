"""The worker's side of a saga, against a stand-in for the daemon: a compensation delivery
replays the handler to find its undos and runs them last first; a cancel stops the handler
at its next ctx call."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from axme_cli.agent import Agent, Context, IntentCanceled, Rejected


class Daemon:
    """Stands in for DaemonClient: keeps outcomes, step records and compensation reports."""

    def __init__(self) -> None:
        self.outcomes: list[dict[str, Any]] = []
        self.compensations: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []

    def resume(self, intent_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        self.outcomes.append(outcome)
        return {}

    def record_compensation(self, intent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.compensations.append(body)
        return {}

    def record_steps(self, intent_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        self.records += records
        return {}

    def record_step(self, intent_id: str, ordinal: int, key: str, result: Any) -> dict[str, Any]:
        self.records.append({"ordinal": ordinal, "key": key, "result": result})
        return {}


RECORDED = [
    {"ordinal": 1, "key": "book", "result": {"id": "b1"}, "compensate": "release"},
    {"ordinal": 2, "key": "look", "result": 7},
    {"ordinal": 3, "key": "charge", "result": {"id": "c1"}, "compensate": "refund"},
]


def _deliver(agent: Agent, daemon: Daemon, steps: list[dict[str, Any]], **extra: Any) -> None:
    agent._local.client = daemon
    delivery = {
        "intent_id": "i-1",
        "seq": 1,
        "intent": {"intent_type": "t.v1", "payload": {"card": "tok"}},
        "steps": steps,
        **extra,
    }
    agent._run_one("w-1", delivery, {1}, threading.Lock())


def _never(*args: Any) -> None:
    raise AssertionError("a recorded step must not run again")


def test_a_compensation_delivery_runs_the_undos_last_first_with_the_steps_arguments() -> None:
    agent, daemon = Agent("agent://t/e/a"), Daemon()
    undone: list[Any] = []

    async def refund(payment: dict[str, Any], card: str) -> str:  # an async undo
        undone.append(("refund", payment["id"], card))
        return "refunded"

    @agent.handler("t.v1")
    async def trip(ctx: Any) -> None:
        card = ctx.payload["card"]
        room = await ctx.step(
            "book",
            _never,
            "paris",
            compensate=lambda r, city: undone.append(("release", r["id"], city)),
        )
        await ctx.step("look", _never)
        await ctx.step("charge", _never, card, compensate=refund)
        await ctx.step("notify", undone.append, "notify ran")  # past the record: not run
        raise AssertionError(f"the replay went on after {room}")

    # The charge was undone by an earlier delivery: only the booking is left.
    done = {**RECORDED[2], "compensation": {"outcome": "compensated"}}
    _deliver(agent, daemon, [RECORDED[0], RECORDED[1], done], phase="compensate")
    assert undone == [("release", "b1", "paris")]
    assert daemon.compensations == [{"key": "book", "ok": True, "result": None, "attempts": 1}]
    assert daemon.outcomes == [] and daemon.records == []  # nothing else is reported

    daemon, undone[:] = Daemon(), []
    _deliver(agent, daemon, RECORDED, phase="compensate")
    assert undone == [("refund", "c1", "tok"), ("release", "b1", "paris")]
    assert [c["key"] for c in daemon.compensations] == ["charge", "book"]
    assert daemon.compensations[0]["result"] == "refunded"


def test_a_failing_undo_is_retried_then_reported_and_the_saga_stops() -> None:
    agent, daemon = Agent("agent://t/e/a"), Daemon()
    tries: list[str] = []

    def refund(payment: dict[str, Any]) -> None:
        tries.append(payment["id"])
        raise ConnectionError("payments down")

    @agent.handler("t.v1")
    def trip(ctx: Context) -> None:
        ctx.step("book", _never, compensate=lambda r: tries.append("release"))
        ctx.step("look", _never)
        ctx.step("charge", _never, compensate=refund, compensate_retries=2, backoff=0.001)

    _deliver(agent, daemon, RECORDED, phase="compensate")
    assert tries == ["c1", "c1", "c1"]  # the booking is not released: a person decides first
    (report,) = daemon.compensations
    assert report["key"] == "charge" and not report["ok"] and report["attempts"] == 3
    assert report["error"]["type"] == "ConnectionError"
    assert report["error"]["message"] == "payments down"


def test_an_undo_the_replay_does_not_reach_is_reported_as_not_found() -> None:
    agent, daemon = Agent("agent://t/e/a"), Daemon()

    @agent.handler("t.v1")
    def changed(ctx: Context) -> None:
        ctx.step("book", _never)  # no longer passes compensate=
        raise ValueError("it failed here the first time too")

    _deliver(agent, daemon, RECORDED[:1], phase="compensate")
    (report,) = daemon.compensations
    assert report["key"] == "book" and report["ok"] is False
    assert report["error"]["type"] == "CompensationNotFound"
    assert "compensate=release" in report["error"]["message"]


def test_a_step_with_an_undo_is_recorded_with_its_name() -> None:
    daemon = Daemon()
    delivery = {"intent_id": "i-1", "intent": {"intent_type": "t.v1"}, "steps": []}
    ctx = Context(daemon, delivery)  # type: ignore[arg-type]

    def release(room: Any) -> None: ...

    ctx.step("book", lambda: {"id": "b1"}, compensate=release)
    ctx.step("plain", lambda: 1)
    assert daemon.records == [
        {"ordinal": 1, "key": "book", "result": {"id": "b1"}, "compensate": release.__qualname__},
        {"ordinal": 2, "key": "plain", "result": 1},
    ]
    with pytest.raises(ValueError, match="compensate"):
        ctx.step("bad", lambda: 1, compensate="refund")  # type: ignore[arg-type]


@pytest.mark.parametrize("swallow", [False, True])
def test_a_cancel_stops_the_handler_at_its_next_ctx_call(swallow: bool) -> None:
    agent, daemon = Agent("agent://t/e/a"), Daemon()
    ran: list[str] = []

    @agent.handler("t.v1")
    def trip(ctx: Context) -> dict[str, Any]:
        ctx.step("book", ran.append, "book")
        agent._cancel("i-1")  # the stream thread hears of the cancel
        try:
            ctx.step("charge", ran.append, "charge")
        except IntentCanceled:
            ran.append("cleanup")
            if not swallow:
                raise
        return {"done": True}  # a handler that cleans up and returns is canceled all the same

    _deliver(agent, daemon, [])
    assert ran == ["book", "cleanup"]
    (outcome,) = daemon.outcomes
    assert outcome["action"] == "fail" and outcome["retryable"] is False
    assert outcome["error"]["type"] == "IntentCanceled"


def test_a_rejection_asked_to_compensate_raises_on_replay() -> None:
    decision = {"outcome": "rejected", "actor": "bo", "comment": "no", "data": {}}
    recorded = [{"ordinal": 1, "key": "approval:Ship?", "result": decision}]
    ctx = Context(Daemon(), {"intent_id": "i", "intent": {"intent_type": "t"}, "steps": recorded})  # type: ignore[arg-type]
    with pytest.raises(Rejected) as info:
        ctx.request_approval("Ship?", on_reject="compensate")
    assert info.value.decision.actor == "bo"
    with pytest.raises(ValueError, match="on_reject"):
        Context(Daemon(), {"intent_id": "i", "intent": {"intent_type": "t"}}).request_approval(  # type: ignore[arg-type]
            "x", on_reject="maybe"
        )
