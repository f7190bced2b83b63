"""The event stream, byte for byte as the AXME SDK parses it, from a real daemon."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from tests.daemon import Daemon, wait_for


def _create(client: httpx.Client) -> str:
    body = {"intent_type": "intent.sse.v1", "to_agent": "agent://test/sse"}
    return str(client.post("/v1/intents", json=body).json()["intent_id"])


def _stream(client: httpx.Client, intent_id: str, **params: Any) -> tuple[httpx.Response, bytes]:
    with client.stream("GET", f"/v1/intents/{intent_id}/events/stream", params=params) as resp:
        return resp, b"".join(resp.iter_raw())


def _frames(raw: bytes) -> list[dict[str, str]]:
    """Split on the blank line that ends each event; comments (`: ping`) are skipped."""
    assert raw.endswith(b"\n\n"), "every event must be terminated by a blank line"
    frames = []
    for block in raw.decode().split("\n\n")[:-1]:
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            frames.append(fields)
    return frames


def test_frames_are_event_data_id_and_blank_line(daemon: Daemon) -> None:
    with daemon.client() as client:
        intent_id = _create(client)
        resp, raw = _stream(client, intent_id, since=0, wait_seconds=1)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    blocks = raw.decode().split("\n\n")
    first = blocks[0].split("\n")
    assert first[0] == "event: intent.created"
    assert first[1].startswith("data: {")
    assert first[2] == "id: 1"
    data = json.loads(first[1].removeprefix("data: "))
    assert data["intent_id"] == intent_id
    assert (data["seq"], data["event_type"], data["status"]) == (1, "intent.created", "CREATED")
    frames = _frames(raw)
    assert [f["event"] for f in frames] == ["intent.created", "intent.submitted", "stream.timeout"]
    assert json.loads(frames[-1]["data"]) == {"ok": True, "next_seq": 2}


def test_since_is_exclusive(daemon: Daemon) -> None:
    with daemon.client() as client:
        intent_id = _create(client)
        _, raw = _stream(client, intent_id, since=1, wait_seconds=1)
    frames = _frames(raw)
    assert [json.loads(f["data"]).get("seq") for f in frames[:-1]] == [2]
    assert frames[-1]["event"] == "stream.timeout"


def test_an_idle_stream_is_held_for_wait_seconds_then_times_out(daemon: Daemon) -> None:
    with daemon.client() as client:
        intent_id = _create(client)
        began = time.monotonic()
        _, raw = _stream(client, intent_id, since=2, wait_seconds=2)
        held = time.monotonic() - began
    assert held >= 1.9, f"closed after {held:.2f}s instead of holding ~2s"
    frames = _frames(raw)
    assert [f["event"] for f in frames] == ["stream.timeout"]
    assert json.loads(frames[0]["data"])["next_seq"] == 2


def test_live_events_arrive_and_a_final_event_ends_the_stream(daemon: Daemon) -> None:
    with daemon.client() as client:
        intent_id = _create(client)
    got: dict[str, Any] = {}

    def listen() -> None:
        with daemon.client(timeout=30) as c:
            began = time.monotonic()
            got["raw"] = _stream(c, intent_id, since=2, wait_seconds=20)[1]
            got["held"] = time.monotonic() - began

    listener = threading.Thread(target=listen)
    listener.start()
    with daemon.client() as client:
        # Resolve only once the stream is subscribed, so the event is truly live.
        wait_for(lambda: daemon.health()["streams"] == 1, what="the stream to subscribe")
        body = {"status": "CANCELED", "reason": "test", "actor": "tester"}
        resolved = client.post(f"/v1/intents/{intent_id}/resolve", json=body)
        assert resolved.status_code == 200
    listener.join(30)
    assert not listener.is_alive()
    frames = _frames(got["raw"])
    assert [f["event"] for f in frames] == ["intent.canceled"]
    data = json.loads(frames[0]["data"])
    assert (data["seq"], data["status"], data["actor"]) == (3, "CANCELED", "tester")
    assert data["details"] == {"reason": "test"}
    assert got["held"] < 15, "the stream should end at the final event, not at wait_seconds"


def test_unknown_intent_is_a_json_404_not_a_stream(daemon: Daemon) -> None:
    with daemon.client() as client:
        resp, raw = _stream(client, "00000000-0000-4000-8000-000000000000", wait_seconds=1)
    assert resp.status_code == 404
    assert json.loads(raw)["error"]["code"] == "not_found"


def test_bad_stream_parameters_are_rejected(daemon: Daemon) -> None:
    with daemon.client() as client:
        intent_id = _create(client)
        for params in ({"since": -1}, {"wait_seconds": "soon"}, {"wait_seconds": -5}):
            resp, raw = _stream(client, intent_id, **params)
            assert resp.status_code == 422, params
            assert json.loads(raw)["error"]["code"] == "validation_error"


def test_an_agent_stream_that_cannot_be_served_is_refused_before_its_first_byte(
    daemon: Daemon,
) -> None:
    """A worker id serves one address: a stream for another is a JSON 400, not a 200 that
    breaks off with a traceback in the log."""
    worker = {"x-axme-worker": "w-1"}
    with daemon.client() as client:
        first = client.get(
            "/v1/agents/test/sse/a/intents/stream", params={"wait_seconds": 0}, headers=worker
        )
        assert first.status_code == 200
        refused = client.get(
            "/v1/agents/test/sse/b/intents/stream", params={"wait_seconds": 0}, headers=worker
        )
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/json"
    assert "w-1 serves agent://test/sse/a" in refused.json()["error"]["message"]
    assert "Traceback" not in daemon.log()
