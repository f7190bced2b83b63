"""The step machinery of the agent SDK, against a recording stand-in for the daemon."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from axme_cli.agent import AsyncContext, Context, ReplayMismatch, StepResultNotJSON


class Recorder:
    """Stands in for DaemonClient: keeps what a handler reported."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, str, Any]] = []
        self.progress_events: list[tuple[str, dict[str, Any]]] = []

    def record_step(self, intent_id: str, ordinal: int, key: str, result: Any) -> dict[str, Any]:
        self.steps.append((ordinal, key, result))
        return {}

    def progress(self, intent_id: str, message: str, data: dict[str, Any]) -> dict[str, Any]:
        self.progress_events.append((message, data))
        return {}


def _delivery(steps: list[dict[str, Any]] | None = None, attempt: int = 1) -> dict[str, Any]:
    return {
        "intent_id": "i-1",
        "delivery_attempt": attempt,
        "intent": {"intent_type": "t.v1", "payload": {"n": 2}},
        "steps": steps or [],
    }


def _context(recorder: Recorder, **kw: Any) -> Context:
    return Context(recorder, _delivery(**kw))  # type: ignore[arg-type]


def test_steps_run_once_and_repeat_names_get_occurrence_keys() -> None:
    recorder = Recorder()
    ctx = _context(recorder)
    assert ctx.payload == {"n": 2} and ctx.attempt == 1
    assert ctx.step("fetch", lambda: (1, 2)) == [1, 2]  # as JSON, like a replay
    assert ctx.step("fetch", lambda x: x * 2, 21) == 42
    assert ctx.step("other", dict, a=1) == {"a": 1}
    assert recorder.steps == [(1, "fetch", [1, 2]), (2, "fetch#2", 42), (3, "other", {"a": 1})]


def test_recorded_steps_replay_without_running() -> None:
    recorded = [
        {"ordinal": 1, "key": "fetch", "result": [1, 2]},
        {"ordinal": 2, "key": "fetch#2", "result": 42},
    ]
    recorder = Recorder()
    ctx = _context(recorder, steps=recorded, attempt=2)

    def boom() -> None:
        raise AssertionError("a recorded step must not run again")

    assert ctx.step("fetch", boom) == [1, 2]
    assert ctx.step("fetch", boom) == 42
    assert ctx.replayed_steps == 2
    assert ctx.step("load", lambda: "new") == "new"
    assert recorder.steps == [(3, "load", "new")]


def test_a_changed_step_order_is_reported_plainly() -> None:
    ctx = _context(Recorder(), steps=[{"ordinal": 1, "key": "extract", "result": 1}])
    with pytest.raises(ReplayMismatch) as info:
        ctx.step("load", lambda: 1)
    assert "'extract'" in str(info.value) and "'load'" in str(info.value)


def test_non_json_results_are_refused_with_the_step_name() -> None:
    recorder = Recorder()
    ctx = _context(recorder)
    with pytest.raises(StepResultNotJSON) as info:
        ctx.step("rows", lambda: {1, 2})
    assert "'rows'" in str(info.value) and "set" in str(info.value) and "JSON" in str(info.value)
    assert recorder.steps == []


def test_retries_back_off_then_give_up() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "ok"

    ctx = _context(Recorder())
    assert ctx.step("flaky", flaky, retries=2, backoff=0.001) == "ok"
    assert len(calls) == 3
    with pytest.raises(ConnectionError):
        ctx.step(
            "never",
            lambda: (_ for _ in ()).throw(ConnectionError("down")),
            retries=1,
            backoff=0.001,
        )


@pytest.mark.parametrize("name", ["", "a#b"])
def test_bad_step_names(name: str) -> None:
    with pytest.raises(ValueError):
        _context(Recorder()).step(name, lambda: 1)


def test_progress_is_reported() -> None:
    recorder = Recorder()
    _context(recorder).progress("half way", rows=3)
    assert recorder.progress_events == [("half way", {"rows": 3})]


def test_async_context_awaits_coroutine_steps() -> None:
    recorder = Recorder()
    ctx = AsyncContext(recorder, _delivery())  # type: ignore[arg-type]

    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        return n + 1

    async def handler() -> tuple[int, int]:
        a = await ctx.step("fetch", fetch, 1)
        b = await ctx.step("sync", lambda: 5)
        await ctx.progress("done")
        return a, b

    assert asyncio.run(handler()) == (2, 5)
    assert recorder.steps == [(1, "fetch", 2), (2, "sync", 5)]
    assert recorder.progress_events == [("done", {})]


@pytest.mark.parametrize("bad", ["soon", "-5m", 0])
def test_malformed_durations_in_waits_say_which(bad: Any) -> None:
    ctx = _context(Recorder())
    with pytest.raises(ValueError) as info:
        ctx.request_approval("Ship?", deadline=bad)
    assert "deadline" in str(info.value)


class Declined(Exception):
    """A step's own failure, caught by the handler."""


def _decline() -> None:
    raise Declined("card declined", 402)


class FailureRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[dict[str, Any]]] = []

    def record_steps(self, intent_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        self.batches.append(records)
        return {}


def test_a_raising_step_is_recorded_only_when_the_handler_goes_on() -> None:
    # Raised out of the handler: nothing recorded, so the next delivery runs it again.
    recorder = FailureRecorder()
    ctx = _context(recorder)
    with pytest.raises(Declined):
        ctx.step("charge", _decline)
    ctx.progress("noted")  # a progress event is no step: still nothing recorded
    assert recorder.batches == [] and recorder.steps == []

    # Caught, then another step: the failure takes its place first, then the step.
    ctx = _context(recorder)
    with pytest.raises(Declined):
        ctx.step("charge", _decline)
    assert ctx.step("notify", lambda: "sent") == "sent"
    (failed,) = recorder.batches[0]
    assert (failed["ordinal"], failed["key"], failed["result"]) == (1, "charge", None)
    assert failed["error"]["type"] == "Declined"
    assert failed["error"]["args"] == ["card declined", 402]
    assert recorder.steps == [(2, "notify", "sent")]


def test_a_recorded_failure_replays_as_the_same_exception() -> None:
    error = {
        "type": "Declined",
        "message": "('card declined', 402)",
        "module": __name__,
        "qualname": "Declined",
        "args": ["card declined", 402],
    }
    recorded = [
        {"ordinal": 1, "key": "charge", "result": None, "error": error},
        {"ordinal": 2, "key": "notify", "result": "sent", "error": None},
    ]
    ctx = _context(Recorder(), steps=recorded, attempt=2)
    with pytest.raises(Declined) as raised:
        ctx.step("charge", pytest.fail)  # replayed: never runs
    assert raised.value.args == ("card declined", 402)
    assert ctx.step("notify", pytest.fail) == "sent"


def test_a_failure_whose_class_is_not_loaded_replays_as_step_failed() -> None:
    from axme_cli.agent import StepFailed

    error = {"type": "Gone", "message": "no", "module": "not.imported.module", "qualname": "Gone"}
    ctx = _context(Recorder(), steps=[{"ordinal": 1, "key": "s", "result": None, "error": error}])
    with pytest.raises(StepFailed) as raised:
        ctx.step("s", pytest.fail)
    assert raised.value.error == error


def test_async_a_raising_step_is_recorded_when_the_handler_goes_on() -> None:
    recorder = FailureRecorder()
    ctx = AsyncContext(recorder, _delivery())  # type: ignore[arg-type]

    async def handler() -> str:
        try:
            await ctx.step("charge", _decline)
        except Declined:
            return str(await ctx.step("notify", lambda: "sent"))
        return "paid"

    assert asyncio.run(handler()) == "sent"
    assert [r["key"] for b in recorder.batches for r in b] == ["charge"]
    assert recorder.steps == [(2, "notify", "sent")]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"remind_after": 0.001}, "remind_after: must be at least 1s"),
        ({"remind_interval": "10ms"}, "remind_interval: must be at least 1s"),
        ({"max_reminders": 10**6}, "max_reminders: must be from 0 to 1000"),
        ({"max_reminders": -1}, "max_reminders"),
        ({"deadline": "400d"}, "deadline: must be at most 366 days"),
        ({"deadline": float("nan")}, "deadline: must be more than zero"),
        ({"remind_after": float("inf")}, "remind_after: must be at most 366 days"),
    ],
)
def test_task_timing_out_of_bounds_is_refused_before_the_daemon_is_asked(
    options: dict[str, Any], says: str
) -> None:
    """The bounds the daemon holds tasks to, said where the agent's code asked."""
    ctx = _context(Recorder())  # a Recorder has no begin_wait: nothing reached it
    with pytest.raises(ValueError) as info:
        ctx.request_approval("Ship?", **options)
    assert says in str(info.value)


@pytest.mark.parametrize("duration", ["400d", 1e308, float("nan")])
def test_waits_longer_than_366_days_are_refused(duration: Any) -> None:
    ctx = _context(Recorder())
    with pytest.raises(ValueError, match="duration"):
        ctx.sleep(duration)
    with pytest.raises(ValueError, match="timeout"):
        ctx.wait_for_event("go", timeout=duration)
