"""Agents on a real daemon: register one, send intents, read what its steps did."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.daemon import Daemon, wait_for

AGENTS = Path(__file__).resolve().parent / "acceptance" / "agents"


def add_agent(
    client: httpx.Client, address: str, script: str, cwd: Path, **options: Any
) -> dict[str, Any]:
    """Register a bundled test agent through the API, as `axme agents add` does."""
    env = options.pop("env", {})
    spec = {
        "address": address,
        "command": [sys.executable, str(AGENTS / script)],
        "cwd": str(cwd),
        "env": env,
        **options,
    }
    response = client.post("/v1/agents", json=spec)
    assert response.status_code == 200, response.text
    return response.json()["agent"]  # type: ignore[no-any-return]


def agent_status(client: httpx.Client, address: str) -> dict[str, Any]:
    path = address.removeprefix("agent://")
    return client.get(f"/v1/agents/{path}").json()["agent"]  # type: ignore[no-any-return]


def running_pids(client: httpx.Client, address: str) -> list[int]:
    """Pids of the agent's replicas once every one of them is RUNNING, else []."""
    replicas = agent_status(client, address)["replicas"]
    if replicas and all(r["state"] == "RUNNING" and r["pid"] for r in replicas):
        return [r["pid"] for r in replicas]
    return []


def send(client: httpx.Client, address: str, intent_type: str, payload: dict[str, Any]) -> str:
    body = {"intent_type": intent_type, "to_agent": address, "payload": payload}
    response = client.post("/v1/intents", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["intent_id"])


def intent(client: httpx.Client, intent_id: str) -> dict[str, Any]:
    return client.get(f"/v1/intents/{intent_id}").json()["intent"]  # type: ignore[no-any-return]


def events(client: httpx.Client, intent_id: str) -> list[dict[str, Any]]:
    return client.get(f"/v1/intents/{intent_id}/events").json()["events"]  # type: ignore[no-any-return]


def wait_final(
    daemon: Daemon, intent_ids: list[str], timeout: float = 60
) -> dict[str, dict[str, Any]]:
    """Wait until every intent is final; return them by id."""
    final = {"COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"}
    done: dict[str, dict[str, Any]] = {}

    def all_final() -> bool:
        with daemon.client() as client:
            for intent_id in intent_ids:
                if intent_id not in done:
                    current = intent(client, intent_id)
                    if current["status"] in final:
                        done[intent_id] = current
        return len(done) == len(intent_ids)

    try:
        wait_for(all_final, timeout=timeout, interval=0.05, what=f"{len(intent_ids)} final intents")
    except AssertionError as exc:  # say which are not, and what happened to them
        with daemon.client() as client:
            stuck = {
                i: [(e["event_type"], e["status"]) for e in events(client, i)]
                for i in intent_ids
                if i not in done
            }
        raise AssertionError(f"{exc}; not final: {stuck}") from None
    return done


def step_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_finished_steps_not_rerun(client: httpx.Client, intent_id: str, log: Path) -> None:
    """A step recorded by attempt A never starts again in a later attempt."""
    recorded = client.get(f"/v1/intents/{intent_id}/steps").json()["steps"]
    assert [s["key"] for s in recorded] == ["s1", "s2", "s3", "s4"], recorded
    starts = [e for e in step_log(log) if e["intent"] == intent_id and e["event"] == "start"]
    for step in recorded:
        n = int(step["key"][1:])
        later = [e for e in starts if e["step"] == n and e["attempt"] > step["attempt"]]
        assert not later, f"{intent_id} step {n} recorded by attempt {step['attempt']} ran again"
