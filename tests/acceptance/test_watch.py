"""`GET /v1/watch` (the live feed the TUI shows) and the list's `q` filter, on a real daemon."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from tests.agents import AGENTS
from tests.daemon import Daemon


def _send(client: httpx.Client, intent_type: str, to: str = "agent://test/watch/ops") -> str:
    body = {"intent_type": intent_type, "to_agent": to, "payload": {"secret": "x"}}
    response = client.post("/v1/intents", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["intent_id"])


def _events(client: httpx.Client, wait_seconds: float) -> Iterator[tuple[str, dict[str, Any]]]:
    params = {"wait_seconds": wait_seconds}
    with connect_sse(client, "GET", "/v1/watch", params=params) as source:
        assert source.response.status_code == 200
        for sse in source.iter_sse():
            yield sse.event, json.loads(sse.data)


def test_watch_says_ready_then_sends_each_changed_intent_without_its_payload(
    daemon: Daemon,
) -> None:
    with daemon.client() as watcher, daemon.client() as client:
        feed = _events(watcher, wait_seconds=10)
        assert next(feed) == ("watch.ready", {"ok": True})
        intent_id = _send(client, "intent.test.watch.v1")
        name, data = next(feed)
        assert name == "intent.changed"
        assert data["intent_id"] == intent_id
        assert data["status"] == "SUBMITTED"
        assert data["intent_type"] == "intent.test.watch.v1"
        assert "payload" not in data  # a list view needs no payload; the detail view loads it
        resolve = {"status": "CANCELED", "reason": "test"}
        assert client.post(f"/v1/intents/{intent_id}/resolve", json=resolve).status_code == 200
        name, data = next(feed)
        assert (name, data["intent_id"], data["status"]) == (
            "intent.changed",
            intent_id,
            "CANCELED",
        )
        feed.close()


def test_watch_sends_agent_states_as_they_change(daemon: Daemon, axme_home: Path) -> None:
    spec = {
        "address": "agent://test/watch/echo",
        "command": [sys.executable, str(AGENTS / "echo_agent.py")],
        "cwd": str(axme_home),
    }
    with daemon.client() as watcher, daemon.client() as client:
        feed = _events(watcher, wait_seconds=20)
        assert next(feed)[0] == "watch.ready"
        assert client.post("/v1/agents", json=spec).status_code == 200
        states = []
        for name, data in feed:
            if name == "agents.changed":
                (agent,) = data["agents"]
                assert agent["address"] == "agent://test/watch/echo"
                states.append(agent["state"])
                if agent["state"] == "RUNNING":
                    break
        assert states[-1] == "RUNNING"
        feed.close()


def test_watch_ends_with_stream_timeout_after_its_hold(daemon: Daemon) -> None:
    with daemon.client() as client:
        names = [name for name, _ in _events(client, wait_seconds=0.3)]
    assert names == ["watch.ready", "stream.timeout"]


def test_watch_refuses_a_bad_hold_and_the_list_a_bad_filter(daemon: Daemon) -> None:
    with daemon.client() as client:
        for params in ({"wait_seconds": -1}, {"wait_seconds": "soon"}, {"wait_seconds": 4000}):
            response = client.get("/v1/watch", params=params)
            assert response.status_code == 422, params
            assert "wait_seconds" in response.json()["error"]["message"]
        response = client.get("/v1/intents", params={"q": "x" * 201})
        assert response.status_code == 422
        assert "q" in response.json()["error"]["message"]


def test_q_matches_an_id_prefix_or_part_of_the_type_or_the_agent(daemon: Daemon) -> None:
    with daemon.client() as client:
        deploy = _send(client, "deploy.v1", "agent://shop/ops")
        invoice = _send(client, "invoice.review.v1", "agent://shop/billing")
        odd = _send(client, "odd_1.v1", "agent://shop/ops")
        other = _send(client, "oddx1.v1", "agent://shop/other")

        def found(q: str) -> list[str]:
            response = client.get("/v1/intents", params={"q": q})
            assert response.status_code == 200, response.text
            return [i["intent_id"] for i in response.json()["intents"]]

        assert found("review") == [invoice]
        assert found("REVIEW") == [invoice]  # case does not matter
        assert found("billing") == [invoice]
        assert found("shop/ops") == [odd, deploy]
        assert found(deploy[:8]) == [deploy]
        assert found("d_1") == [odd]  # _ and % are literal characters, not wildcards
        assert found("dx1") == [other]
        assert found("%") == []
        assert found("nothing-like-it") == []
        # q narrows the other filters' results too.
        assert (
            client.get("/v1/intents", params={"q": "ops", "intent_type": "deploy.v1"}).json()[
                "intents"
            ][0]["intent_id"]
            == deploy
        )
