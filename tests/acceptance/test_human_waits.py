"""Humans in the loop and other durable waits, with a real daemon and a real agent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.agents import add_agent, events, intent, running_pids, send, step_log, wait_final
from tests.daemon import Daemon, wait_for

ADDRESS = "agent://test/humans/ops"


def _start(daemon: Daemon, home: Path, **options: Any) -> Path:
    log = home / "steps.log"
    with daemon.client() as client:
        add_agent(client, ADDRESS, "waiting_agent.py", home, env={"STEP_LOG": str(log)}, **options)
        wait_for(lambda: running_pids(client, ADDRESS), timeout=20, what="the agent")
    return log


def _runs(log: Path, intent_id: str, step: str) -> int:
    return sum(1 for e in step_log(log) if e["intent"] == intent_id and e["step"] == step)


def _task(client: httpx.Client, intent_id: str) -> dict[str, Any]:
    tasks = client.get("/v1/tasks", params={"intent_id": intent_id}).json()["tasks"]
    return tasks[0] if tasks else {}


def _decide(client: httpx.Client, task_id: str, outcome: str, actor: str, comment: str) -> None:
    body = {"outcome": outcome, "actor": actor, "comment": comment}
    response = client.post(f"/v1/tasks/{task_id}/decision", json=body)
    assert response.status_code == 200, response.text


def test_approval_at_step_two_releases_the_worker_and_resumes_after_the_decision(
    daemon: Daemon, axme_home: Path
) -> None:
    log = _start(daemon, axme_home, concurrency=1)
    with daemon.client() as client:
        approve_id = send(client, ADDRESS, "intent.test.approval.v1", {})
        reject_id = send(client, ADDRESS, "intent.test.approval.v1", {})
        for intent_id in (approve_id, reject_id):
            wait_for(lambda i=intent_id: _task(client, i), timeout=20, what="the task")
            waiting = intent(client, intent_id)
            assert waiting["status"] == "WAITING"
            assert waiting["waiting_reason"] == "WAITING_FOR_HUMAN"
        # Both wait, yet the one-at-a-time agent holds no delivery: it serves other work. (A
        # read may see WAITING a sync before the wait is on disk and the slot freed.)
        wait_for(
            lambda: client.get(f"/v1/agents/{ADDRESS[8:]}").json()["agent"]["in_flight"] == 0,
            what="the waits to free the agent's slot",
        )
        quick = send(client, ADDRESS, "intent.test.quick.v1", {})
        assert wait_final(daemon, [quick], timeout=20)[quick]["status"] == "COMPLETED"

        task = _task(client, approve_id)
        assert task["title"] == "Apply migration?" and task["details"] == {"plan": "validate"}
        _decide(client, task["task_id"], "approved", "alice", "lgtm")
        _decide(client, _task(client, reject_id)["task_id"], "rejected", "bob", "not today")
        final = wait_final(daemon, [approve_id, reject_id], timeout=30)
        assert final[approve_id]["status"] == "COMPLETED"
        assert final[approve_id]["result"] == {"status": "apply", "by": "alice", "comment": "lgtm"}
        assert final[reject_id]["result"] == {
            "status": "rejected",
            "by": "bob",
            "comment": "not today",
        }
        for intent_id in (approve_id, reject_id):
            assert _runs(log, intent_id, "validate") == 1, "step 1 must not run again"
            trail = events(client, intent_id)
            kinds = [e["event_type"] for e in trail]
            assert kinds.index("intent.human_task_assigned") < kinds.index(
                "intent.human_task_decided"
            )
            decided = next(e for e in trail if e["event_type"] == "intent.human_task_decided")
            assert decided["actor"] in ("alice", "bob") and decided["at"]
        assert _runs(log, approve_id, "apply") == 1
        assert _runs(log, reject_id, "apply") == 0


def test_reminder_and_deadline_survive_a_daemon_sigkill(axme_home: Path) -> None:
    daemon = Daemon(axme_home).start()
    try:
        _start(daemon, axme_home)
        task = {"remind_after": 2, "deadline": 4, "on_timeout": "reject"}
        with daemon.client() as client:
            intent_id = send(client, ADDRESS, "intent.test.approval.v1", {"task": task})
            wait_for(lambda: _task(client, intent_id), timeout=20, what="the task")
            assigned = time.time()
        daemon.kill()
        daemon = Daemon(axme_home).start()
        final = wait_final(daemon, [intent_id], timeout=30)[intent_id]
        with daemon.client() as client:
            trail = events(client, intent_id)
        reminders = [e for e in trail if e["event_type"] == "intent.reminder"]
        assert len(reminders) == 1, "the reminder fires once, even across the restart"
        decided = next(e for e in trail if e["event_type"] == "intent.human_task_decided")
        assert decided["actor"] == "axme (deadline passed)"
        assert decided["details"]["outcome"] == "rejected"
        at = _epoch(decided["at"]) - assigned
        assert 3.5 <= at <= 7.0, f"deadline applied {at:.1f}s after assignment, not ~4s"
        assert 1.5 <= _epoch(reminders[0]["at"]) - assigned <= 5.0
        assert final["status"] == "COMPLETED" and final["result"]["status"] == "rejected"
    finally:
        daemon.stop()


def _epoch(at: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def test_sleep_signals_and_child_intents(daemon: Daemon, axme_home: Path) -> None:
    with daemon.client() as client:
        # A signal sent before the wait is kept, then taken by the wait. Sent before the agent
        # is added, it surely comes first: a running agent may reach the wait before it.
        early = send(client, ADDRESS, "intent.test.signal.v1", {})
        kept = client.post(f"/v1/intents/{early}/signals/go", json={"data": {"n": 1}}).json()
        assert kept["delivered"] is False and kept["kept"] is True
    log = _start(daemon, axme_home, concurrency=4)
    with daemon.client() as client:
        nap = send(client, ADDRESS, "intent.test.sleep.v1", {"seconds": 1})
        wait_for(
            lambda: intent(client, nap)["waiting_reason"] == "WAITING_FOR_TIME",
            timeout=20,
            what="the sleep",
        )
        late = send(client, ADDRESS, "intent.test.signal.v1", {})
        wait_for(
            lambda: intent(client, late)["waiting_reason"] == "WAITING_FOR_TOOL",
            timeout=20,
            what="the signal wait",
        )
        sent = client.post(f"/v1/intents/{late}/signals/go", json={"data": {"n": 2}}).json()
        assert sent["delivered"] is True
        timeout = send(client, ADDRESS, "intent.test.signal.v1", {"timeout": 1})
        parent = send(client, ADDRESS, "intent.test.parent.v1", {})
        final = wait_final(daemon, [nap, early, late, timeout, parent], timeout=40)
        assert {i["status"] for i in final.values()} == {"COMPLETED"}
        assert _runs(log, nap, "before") == 1 and _runs(log, nap, "after") == 1
        assert final[early]["result"]["signal"]["data"] == {"n": 1}
        assert final[late]["result"]["signal"]["data"] == {"n": 2}
        assert final[timeout]["result"] == {"signal": None}
        child = final[parent]["result"]["child"]
        assert child == {"quick": "quick"}
        children = client.get(
            "/v1/intents", params={"intent_type": "intent.test.quick.v1", "limit": 50}
        ).json()["intents"]
        assert [c["reply_to"] for c in children] == [parent], "exactly one child, linked back"
        assert _runs(log, parent, "before") == 1
