"""Sagas with real agent processes: compensations run last first, once each, through agent and
daemon crashes, on a cancel, on a person's rejection, and with a person deciding when one
keeps failing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.agents import add_agent, events, intent, running_pids, send, step_log, wait_final
from tests.daemon import Daemon, run_cli, wait_for

ADDRESS = "agent://test/sagas/trip"
SAGA = "intent.test.saga.v1"


def _start(daemon: Daemon, home: Path) -> tuple[Path, Path]:
    log, steer = home / "steps.log", home / "steer"
    steer.mkdir(exist_ok=True)
    with daemon.client() as client:
        env = {"STEP_LOG": str(log), "SAGA_DIR": str(steer)}
        add_agent(client, ADDRESS, "saga_agent.py", home, env=env)
        wait_for(lambda: running_pids(client, ADDRESS), timeout=20, what="the agent")
    return log, steer


def _runs(log: Path, intent_id: str, event: str) -> list[str]:
    """The steps that `event` (do, undo, ...) happened to, in order."""
    return [e["step"] for e in step_log(log) if e["intent"] == intent_id and e["event"] == event]


def _saga_events(client: httpx.Client, intent_id: str) -> list[tuple[str, Any]]:
    """The saga's part of the timeline: (event type, step or ending)."""
    out: list[tuple[str, Any]] = []
    for e in events(client, intent_id):
        details = e.get("details") or {}
        if e["event_type"] == "intent.compensation":
            out.append((e["event_type"], (details["step"], details["outcome"])))
        elif e["event_type"] in ("intent.compensating", "intent.compensated"):
            out.append((e["event_type"], details.get("ending")))
    return out


def _task(client: httpx.Client, intent_id: str) -> dict[str, Any]:
    tasks = client.get("/v1/tasks", params={"intent_id": intent_id, "status": "PENDING"}).json()
    return tasks["tasks"][0] if tasks["tasks"] else {}


def _assert_compensated(final: dict[str, Any], status: str) -> None:
    assert final["status"] == status, final
    assert final["compensated"] is True
    assert final["compensation"]["phase"] == "compensated"


def test_a_failing_third_step_undoes_the_two_before_last_first_once_each_through_a_kill(
    daemon: Daemon, axme_home: Path
) -> None:
    log, steer = _start(daemon, axme_home)
    (steer / "fail-notify").touch()
    # The process dies as the second compensation starts: the first is recorded by then.
    (steer / "kill-book").touch()
    with daemon.client() as client:
        pid = running_pids(client, ADDRESS)[0]
        intent_id = send(client, ADDRESS, SAGA, {})
        final = wait_final(daemon, [intent_id], timeout=60)[intent_id]
        _assert_compensated(final, "FAILED")
        assert "the mail server said no" in final["error"]["message"]
        assert not (steer / "kill-book").exists(), "the process was not killed"
        assert running_pids(client, ADDRESS) != [pid]
        assert _runs(log, intent_id, "do") == ["book", "charge"]
        assert _runs(log, intent_id, "undo") == ["charge", "book"]
        assert _saga_events(client, intent_id) == [
            ("intent.compensating", "FAILED"),
            ("intent.compensation", ("charge", "compensated")),
            ("intent.compensation", ("book", "compensated")),
            ("intent.compensated", "FAILED"),
        ]
        steps = client.get(f"/v1/intents/{intent_id}/steps").json()["steps"]
        assert [(s["key"], s.get("compensate")) for s in steps] == [
            ("book", "undo"),
            ("charge", "undo"),
        ]
        undone = {s["key"]: s["compensation"] for s in steps}
        assert undone["charge"]["result"] == {"undid": f"charge-{intent_id[:8]}"}
        assert events(client, intent_id)[-1]["event_type"] == "intent.failed"
    # What people read: axme show and axme tail tell the saga in words.
    shown = run_cli(axme_home, "show", intent_id).stdout
    assert "steps undone, FAILED" in shown and "undo of charge: compensated" in shown
    tailed = run_cli(axme_home, "tail", intent_id).stdout
    assert "undoing charge, book, then FAILED" in tailed
    assert "steps undone (compensated charge, book); ends FAILED" in tailed


def test_a_compensation_killed_before_its_record_runs_again_and_the_next_once(
    daemon: Daemon, axme_home: Path
) -> None:
    log, steer = _start(daemon, axme_home)
    (steer / "fail-notify").touch()
    (steer / "kill-after-charge").touch()  # the refund is done, the process dies before saying so
    with daemon.client() as client:
        intent_id = send(client, ADDRESS, SAGA, {})
        final = wait_final(daemon, [intent_id], timeout=60)[intent_id]
        _assert_compensated(final, "FAILED")
        assert not (steer / "kill-after-charge").exists(), "the process was not killed"
        # At-least-once, as steps: unrecorded, it runs again; the booking's runs once.
        assert _runs(log, intent_id, "undo") == ["charge", "charge", "book"]
        assert [k for k, _ in _saga_events(client, intent_id)].count("intent.compensation") == 2


def test_a_daemon_killed_during_compensations_finishes_them_after_its_restart(
    axme_home: Path,
) -> None:
    daemon = Daemon(axme_home).start()
    try:
        log, steer = _start(daemon, axme_home)
        (steer / "fail-notify").touch()
        (steer / "hold-undo-charge").touch()
        with daemon.client() as client:
            # One attempt: a compensation delivery the restart ends does not count as one.
            body = {"intent_type": SAGA, "to_agent": ADDRESS, "payload": {}}
            created = client.post("/v1/intents", json={**body, "max_delivery_attempts": 1})
            intent_id = created.json()["intent_id"]
        wait_for(
            lambda: _runs(log, intent_id, "undo-start") == ["charge"],
            timeout=30,
            what="the first compensation to start",
        )
        daemon.kill()  # its agents die with it
        (steer / "hold-undo-charge").unlink()
        daemon.start()
        final = wait_final(daemon, [intent_id], timeout=60)[intent_id]
        _assert_compensated(final, "FAILED")
        assert _runs(log, intent_id, "undo") == ["charge", "book"]
        with daemon.client() as client:
            assert [k for k, _ in _saga_events(client, intent_id)] == [
                "intent.compensating",
                "intent.compensation",
                "intent.compensation",
                "intent.compensated",
            ]
            released = [
                (e["details"].get("compensating"), e["details"].get("crashes"))
                for e in events(client, intent_id)
                if e["event_type"] == "intent.submitted"
                and (e.get("details") or {}).get("reason") == "the daemon restarted"
            ]
            assert released == [(True, 1)]
    finally:
        daemon.stop()


def test_cancel_stops_a_running_saga_at_its_next_step_and_undoes_it(
    daemon: Daemon, axme_home: Path
) -> None:
    log, steer = _start(daemon, axme_home)
    (steer / "hold-work").touch()
    with daemon.client() as client:
        intent_id = send(client, ADDRESS, SAGA, {"work": True})
        wait_for(lambda: "work" in _runs(log, intent_id, "start"), timeout=30, what="work")
        canceled = run_cli(axme_home, "cancel", intent_id, "--reason", "trip called off")
        assert canceled.returncode == 0, canceled.stderr
        assert "cancel asked" in canceled.stdout
        asked = intent(client, intent_id)
        assert asked["status"] == "IN_PROGRESS"
        assert asked["compensation"]["phase"] == "canceling"
        wait_for(
            lambda: "cancel asked" in run_cli(axme_home, "agents", "logs", ADDRESS).stdout,
            timeout=30,
            what="the worker to hear of the cancel",
        )
        (steer / "hold-work").unlink()
        final = wait_final(daemon, [intent_id], timeout=60)[intent_id]
        _assert_compensated(final, "CANCELED")
        assert _runs(log, intent_id, "do") == ["book", "charge", "work"]
        assert "notify" not in _runs(log, intent_id, "start"), "the handler did not stop"
        assert _runs(log, intent_id, "cleanup") == ["handler"]
        assert _runs(log, intent_id, "undo") == ["charge", "book"]
        kinds = [e["event_type"] for e in events(client, intent_id)]
        assert kinds.index("intent.cancel_requested") < kinds.index("intent.compensating")
        assert kinds[-2:] == ["intent.compensated", "intent.canceled"]
        last = events(client, intent_id)[-1]
        assert last["details"]["reason"] == "trip called off"


def test_a_persons_rejection_undoes_the_steps_where_the_handler_asks(
    daemon: Daemon, axme_home: Path
) -> None:
    log, _ = _start(daemon, axme_home)
    with daemon.client() as client:
        intent_id = send(client, ADDRESS, SAGA, {"approval": True})
        task = wait_for(lambda: _task(client, intent_id), timeout=30, what="the approval")
        rejected = run_cli(axme_home, "reject", task["task_id"], "-c", "too pricey", "--as", "bo")
        assert rejected.returncode == 0, rejected.stderr
        final = wait_final(daemon, [intent_id], timeout=60)[intent_id]
        _assert_compensated(final, "CANCELED")
        assert _runs(log, intent_id, "do") == ["book", "charge"]
        assert _runs(log, intent_id, "undo") == ["charge", "book"]
        last = events(client, intent_id)[-1]
        assert last["actor"] == "bo" and "too pricey" in last["details"]["reason"]


def test_a_compensation_that_keeps_failing_asks_a_person_and_a_cli_retry_finishes(
    daemon: Daemon, axme_home: Path
) -> None:
    log, steer = _start(daemon, axme_home)
    (steer / "fail-notify").touch()
    (steer / "down-book").touch()
    with daemon.client() as client:
        intent_id = send(client, ADDRESS, SAGA, {})
        task = wait_for(lambda: _task(client, intent_id), timeout=30, what="the manual task")
        assert task["title"] == "Manual compensation needed: undo for step book"
        assert task["task_type"] == "manual_action"
        assert task["allowed_outcomes"] == ["retry", "skip", "mark_done"]
        details = task["details"]
        assert details["compensated"] == ["charge"] and details["step"] == "book"
        assert details["error"]["message"] == "book service unreachable"
        waiting = intent(client, intent_id)
        assert waiting["status"] == "WAITING"
        assert waiting["waiting_reason"] == "WAITING_FOR_HUMAN"
        assert waiting["compensation"]["phase"] == "stuck"
        assert _runs(log, intent_id, "undo-start") == ["charge", "book", "book"]  # 1 retry

        (steer / "down-book").unlink()
        retried = run_cli(axme_home, "retry", intent_id)
        assert retried.returncode == 0, retried.stderr
        final = wait_final(daemon, [intent_id], timeout=60)[intent_id]
        _assert_compensated(final, "FAILED")
        assert _runs(log, intent_id, "undo") == ["charge", "book"]
        assert _saga_events(client, intent_id) == [
            ("intent.compensating", "FAILED"),
            ("intent.compensation", ("charge", "compensated")),
            ("intent.compensation", ("book", "failed")),
            ("intent.compensating", None),
            ("intent.compensation", ("book", "compensated")),
            ("intent.compensated", "FAILED"),
        ]
