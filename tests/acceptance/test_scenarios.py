"""AXME's flagship flow on a local daemon, in three processes as a user runs it: an initiator
applies a scenario with the official SDK and waits, an agent (AXME's example shape: `listen`
on a bare name with the key apply provisioned, `resume_intent`) does the agent step, and a
person decides the sign-off with `axme approve` / `axme reject`.

The agent is SIGKILLed after its delivery and before it resumes: its restart gets the intent
again and resumes it once.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import REPO, Daemon, env_for, run_cli, wait_for

OWNER_KEY = "owner-" + secrets.token_hex(16)
AGENTS = REPO / "tests" / "acceptance" / "agents"
ADDRESS = "deploy-readiness-checker"


def bundle(scenario_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario_id": scenario_id,
        "title": "Deploy readiness, then a person's sign-off",
        "agents": [
            {
                "role": "checker",
                "address": ADDRESS,
                "delivery_mode": "stream",
                "create_if_missing": True,
            }
        ],
        "humans": [{"role": "operator", "display_name": "Operations"}],
        "workflow": {
            "steps": [
                {
                    "step_id": "readiness_check",
                    "tool_id": "tool.agent.task.v1",
                    "assigned_to": "checker",
                    "step_deadline_seconds": 120,
                },
                {
                    "step_id": "ops_approval",
                    "tool_id": "tool.approval.human_signoff",
                    "assigned_to": "operator",
                    "requires_approval": True,
                    "step_deadline_seconds": 3600,
                    "remind_after_seconds": 600,
                    "human_task": {"title": "Deploy api-gateway 3.2.1 to staging?"},
                },
            ]
        },
        "intent": {"type": "intent.deployment.approval.v1", "payload": payload},
    }


@pytest.fixture
def daemon(axme_home: Path) -> Iterator[Daemon]:
    d = Daemon(axme_home, "--listen", "127.0.0.1:0", env={"AXME_API_KEYS": OWNER_KEY}).start()
    yield d
    d.stop()


def _spawn(script: str, home: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(AGENTS / script)],
        env={**env_for(home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _initiator(daemon: Daemon, tmp_path: Path, name: str, body: dict[str, Any]) -> Any:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(body))
    return _spawn(
        "scenario_initiator.py",
        daemon.home,
        AXME_BASE_URL=daemon.health()["tcp"],
        AXME_API_KEY=OWNER_KEY,
        BUNDLE=str(path),
        IDEMPOTENCY_KEY=f"apply-{name}",
    )


def _agent(daemon: Daemon, key: str, marks: Path, **env: str) -> subprocess.Popen[str]:
    return _spawn(
        "scenario_agent.py",
        daemon.home,
        AXME_BASE_URL=daemon.health()["tcp"],
        AXME_API_KEY=key,
        AXME_AGENT_ADDRESS=ADDRESS,
        MARK=str(marks),
        **env,
    )


def _marks(marks: Path, kind: str, intent_id: str) -> list[Path]:
    return sorted(marks.glob(f"{kind}-{intent_id}-*"))


def _intent(daemon: Daemon, intent_id: str) -> dict[str, Any]:
    with daemon.client() as owner:
        return owner.get(f"/v1/intents/{intent_id}").json()  # type: ignore[no-any-return]


def _events(daemon: Daemon, intent_id: str) -> list[dict[str, Any]]:
    with daemon.client() as owner:
        return owner.get(f"/v1/intents/{intent_id}/events").json()["events"]  # type: ignore[no-any-return]


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)


def test_a_scenario_runs_agent_then_person_through_a_crash_and_a_rejection(
    daemon: Daemon, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    hanging = bundle("deploy.readiness.v1", {"hang": True})
    first = _initiator(daemon, tmp_path, "approve", hanging)
    agents: list[subprocess.Popen[str]] = []
    try:
        assert first.stdout is not None
        applied = json.loads(first.stdout.readline())
        intent_id = applied["intent_id"]
        assert applied["agents_provisioned"][0]["address"] == f"agent://{ADDRESS}"
        keys_file = Path(applied["agent_keys_file"])
        assert keys_file == daemon.home / "scenario-agents.json"
        assert keys_file.stat().st_mode & 0o777 == 0o600
        entry = json.loads(keys_file.read_text())["agents"][f"agent://{ADDRESS}"]
        assert entry["base_url"] == daemon.health()["tcp"]
        assert entry["address"] == f"agent://{ADDRESS}"

        # The agent gets its step, and dies before it resumes.
        agents.append(_agent(daemon, entry["api_key"], marks))
        wait_for(lambda: _marks(marks, "got", intent_id), timeout=30, what="the delivery")
        agents[0].send_signal(signal.SIGKILL)
        agents[0].wait(10)
        assert not _marks(marks, "resumed", intent_id)
        assert _intent(daemon, intent_id)["scenario"]["current_step"] == "readiness_check"

        # Restarted, it gets the intent again and resumes it once: the person's step waits.
        agents.append(_agent(daemon, entry["api_key"], marks, HANG_DONE="1"))
        waiting = wait_for(
            lambda: (i := _intent(daemon, intent_id))["status"] == "WAITING" and i,
            timeout=30,
            what="the sign-off step",
        )
        assert waiting["lifecycle_waiting_reason"] == "WAITING_FOR_HUMAN"
        assert waiting["scenario"]["current_step"] == "ops_approval"
        assert waiting["pending_with"]["type"] == "human"
        wait_for(lambda: _marks(marks, "resumed", intent_id), what="the agent's resume")
        assert first.poll() is None  # wait_for has not returned: nobody decided yet

        shown = run_cli(daemon.home, "show", intent_id[:8])
        assert shown.returncode == 0, shown.stderr
        assert "ops_approval" in shown.stdout

        decided = run_cli(daemon.home, "approve", intent_id[:8], "-c", "ship it")
        assert decided.returncode == 0, decided.stderr
        terminal = json.loads(first.stdout.readline())
        assert terminal["status"] == "COMPLETED"
        assert first.wait(10) == 0
        kinds = [e["event_type"] for e in _events(daemon, intent_id)]
        assert kinds[:3] == ["intent.created", "intent.submitted", "intent.scenario.step_started"]
        assert kinds.count("intent.scenario.step_completed") == 1
        for before, after in zip(
            [
                "intent.delivered",
                "intent.in_progress",
                "intent.scenario.step_completed",
                "intent.human_task_assigned",
                "intent.human_task_decided",
            ],
            [
                "intent.in_progress",
                "intent.scenario.step_completed",
                "intent.human_task_assigned",
                "intent.human_task_decided",
                "intent.completed",
            ],
            strict=True,
        ):
            assert kinds.index(before) < kinds.index(after)
        assert len(_marks(marks, "resumed", intent_id)) == 1
        tail = run_cli(daemon.home, "tail", intent_id[:8])
        assert tail.returncode == 0, tail.stderr
        assert f"step readiness_check started -> agent://{ADDRESS}" in tail.stdout
        assert "step readiness_check completed" in tail.stdout

        # Applied again with the same key: the same intent, nothing provisioned again.
        again = _initiator(daemon, tmp_path, "approve", hanging)
        assert again.stdout is not None
        replay = json.loads(again.stdout.readline())
        assert replay["intent_id"] == intent_id and replay["idempotent"] is True
        assert replay["agents_provisioned"] == []
        _stop(again)

        # The rejection path: the agent's step passes, the person says no.
        second = _initiator(daemon, tmp_path, "reject", bundle("deploy.readiness.v1", {}))
        agents.append(second)
        assert second.stdout is not None
        other = json.loads(second.stdout.readline())["intent_id"]
        assert other != intent_id
        wait_for(lambda: _intent(daemon, other)["status"] == "WAITING", timeout=30, what="sign-off")
        refused = run_cli(daemon.home, "reject", other[:8], "-c", "not today")
        assert refused.returncode == 0, refused.stderr
        assert json.loads(second.stdout.readline())["status"] == "CANCELED"
        assert second.wait(10) == 0
    finally:
        for proc in (first, *agents):
            _stop(proc)
    assert os.stat(keys_file).st_mode & 0o777 == 0o600


def test_a_step_past_its_deadline_takes_on_failure_to_the_agent_still_holding_it(
    daemon: Daemon,
) -> None:
    """The agent's step deadline passes while the agent holds the delivery: `on_failure`
    takes the intent to the fallback step of the same agent, whose stream (one slot, still
    open) gets it: the timed-out delivery no longer takes its slot."""
    steps = [
        {
            "step_id": "quick",
            "tool_id": "tool.agent.task.v1",
            "assigned_to": "checker",
            "step_deadline_seconds": 1,
            "on_failure": "fallback",
        },
        {"step_id": "fallback", "tool_id": "tool.agent.task.v1", "assigned_to": "checker"},
    ]
    body = {**bundle("deploy.fallback.v1", {}), "workflow": {"steps": steps}, "humans": []}
    with httpx.Client(base_url=daemon.health()["tcp"], headers={"x-api-key": OWNER_KEY}) as owner:
        applied = owner.post("/v1/scenarios/apply", json=body, timeout=15).json()
        intent_id = applied["intent_id"]
        entry = json.loads(Path(applied["agent_keys_file"]).read_text())["agents"]
        key = entry[f"agent://{ADDRESS}"]["api_key"]
        seen: list[str] = []
        with httpx.Client(base_url=owner.base_url, headers={"x-api-key": key}) as agent:
            path = f"/v1/agents/{ADDRESS}/intents/stream"
            params = {"wait_seconds": 20}
            with agent.stream("GET", path, params=params, timeout=30) as stream:
                for line in stream.iter_lines():
                    if line.startswith("data:") and '"intent_id"' in line:
                        seen.append(json.loads(line[5:])["intent_id"])
                        if len(seen) == 2:
                            break
            assert seen == [intent_id, intent_id]
            assert _intent(daemon, intent_id)["scenario"]["current_step"] == "fallback"
            done = agent.post(f"/v1/intents/{intent_id}/resume", json={"action": "complete"})
            assert done.status_code == 200, done.text
    finished = _intent(daemon, intent_id)
    assert finished["status"] == "COMPLETED"
    assert list(finished["result"]["steps"]) == ["fallback"]
