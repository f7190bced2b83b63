"""The step and attempt promises, tried with real agent processes: a recorded step never runs
again (not after `axme retry` either), waits do not use up delivery attempts, a poison intent
fails alone, and a step that raises leaves the handler free to go on."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.agents import add_agent, agent_status, events, intent, send, step_log, wait_final
from tests.daemon import Daemon, wait_for

ADDRESS = "agent://test/promise/steps"


def _agent(client: httpx.Client, home: Path, **options: object) -> Path:
    log, marks = home / "steps.log", home / "marks"
    marks.mkdir()
    env = {"STEP_LOG": str(log), "MARKS": str(marks)}
    add_agent(client, ADDRESS, "promise_agent.py", home, env=env, **options)
    return log


def _ran(log: Path, intent_id: str) -> list[str]:
    return [e["step"] for e in step_log(log) if e["intent"] == intent_id]


def test_retry_replays_recorded_steps_and_runs_only_the_rest(
    daemon: Daemon, axme_home: Path
) -> None:
    with daemon.client() as client:
        log = _agent(client, axme_home)
        intent_id = send(client, ADDRESS, "intent.test.fail_then_fixed.v1", {})
        assert wait_final(daemon, [intent_id])[intent_id]["status"] == "FAILED"
        assert _ran(log, intent_id) == ["a", "b"]

        (axme_home / "marks" / "fixed").write_text("1")
        assert client.post(f"/v1/intents/{intent_id}/retry").status_code == 200
        final = wait_final(daemon, [intent_id])[intent_id]
        assert final["status"] == "COMPLETED", final
        assert _ran(log, intent_id) == ["a", "b", "c"]  # a and b replayed, not re-run
        assert final["result"] == {"attempt": 1}  # retry starts the attempts over


def test_durable_waits_do_not_use_up_delivery_attempts(daemon: Daemon, axme_home: Path) -> None:
    with daemon.client() as client:
        log = _agent(client, axme_home, max_delivery_attempts=2)
        intent_id = send(client, ADDRESS, "intent.test.sleepy.v1", {"sleeps": 5})
        final = wait_final(daemon, [intent_id])[intent_id]
        # Five sleeps, then one crash: the crash is the first failed attempt, not the sixth.
        assert final["status"] == "COMPLETED", final
        assert final["result"] == {"attempt": 2}
        assert final["delivery_attempt"] == 2
        assert [e["attempt"] for e in step_log(log) if e["intent"] == intent_id] == [1] * 5
        delivered = [
            e["details"]["delivery_attempt"]
            for e in events(client, intent_id)
            if e["event_type"] == "intent.delivered"
        ]
        assert delivered == [1] * 6 + [2]  # each wake-up goes on with the same attempt


def test_a_waiting_intent_shows_the_attempt_it_waits_in(daemon: Daemon, axme_home: Path) -> None:
    with daemon.client() as client:
        _agent(client, axme_home)
        intent_id = send(client, ADDRESS, "intent.test.nap.v1", {})
        waiting = wait_for(
            lambda: (i := intent(client, intent_id))["status"] == "WAITING" and i,
            what="the intent to wait",
        )
        assert waiting["delivery_attempt"] == 1  # the try it waits in, not 0


def test_a_poison_intent_fails_alone_and_says_why(daemon: Daemon, axme_home: Path) -> None:
    with daemon.client() as client:
        _agent(client, axme_home, max_delivery_attempts=3)
        poison = send(client, ADDRESS, "intent.test.poison.v1", {"poison": True})
        healthy = [send(client, ADDRESS, "intent.test.poison.v1", {}) for _ in range(4)]
        final = wait_final(daemon, [poison, *healthy], timeout=60)

        assert all(final[i]["status"] == "COMPLETED" for i in healthy), final
        failed = final[poison]
        assert failed["status"] == "FAILED"
        assert failed["delivery_attempt"] == 3
        error = failed["error"]
        assert "gave up after 3 delivery attempts" in error["message"]
        assert "exited with code 3" in error["message"]
        assert error["exit"]["returncode"] == 3
        assert any("poison pill" in line for line in error["exit"]["output"]), error

        # The agent kept serving: no FATAL, and new work still runs.
        assert agent_status(client, ADDRESS)["state"] != "FATAL"
        wait_for(lambda: agent_status(client, ADDRESS)["state"] == "RUNNING", what="RUNNING")
        later = send(client, ADDRESS, "intent.test.poison.v1", {})
        assert wait_final(daemon, [later])[later]["status"] == "COMPLETED"

        # Between its attempts, the intent backed off: the timeline says for how long.
        timeline = events(client, poison)
        backoffs = [e for e in timeline if e.get("details", {}).get("redeliver_in_seconds")]
        assert backoffs and all(e["status"] == "WAITING" for e in backoffs), timeline


def test_a_raising_step_caught_by_the_handler_replays_the_same_way(
    daemon: Daemon, axme_home: Path
) -> None:
    with daemon.client() as client:
        log = _agent(client, axme_home)
        plain = send(client, ADDRESS, "intent.test.catch.v1", {})
        crashed = send(client, ADDRESS, "intent.test.catch.v1", {"crash": True})
        final = wait_final(daemon, [plain, crashed])
        for intent_id in (plain, crashed):
            assert final[intent_id]["status"] == "COMPLETED", final[intent_id]
            assert final[intent_id]["result"]["paid"] is False
            # Each ran once: after the crash, the failed charge replayed as its exception.
            assert _ran(log, intent_id) == ["charge", "notify: card declined", "release"]
        assert final[crashed]["result"]["attempt"] == 2

        steps = client.get(f"/v1/intents/{crashed}/steps").json()["steps"]
        assert [s["key"] for s in steps] == ["charge", "notify", "release"]
        assert steps[0]["error"]["type"] == "CardDeclined"
        assert steps[0]["error"]["message"] == "card declined"
        assert steps[1]["error"] is None
