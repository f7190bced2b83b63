"""The client maps every daemon answer and transport failure to a typed error."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from axme_cli.client import DaemonClient
from axme_cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    AlreadyFinal,
    AmbiguousId,
    BadInput,
    DaemonUnreachable,
    IdempotencyConflict,
    NotFound,
    PayloadTooLarge,
)

IDS = [
    "3f2a0000-0000-4000-8000-000000000001",
    "3f2b0000-0000-4000-8000-000000000002",
]


def _error(status: int, code: str, message: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "details": {}}, "detail": message}
    return httpx.Response(status, json=body)


def _client(handler: httpx.MockTransport) -> DaemonClient:
    return DaemonClient(Path("/nonexistent.sock"), transport=handler)


@pytest.mark.parametrize(
    ("status", "code", "exc", "exit_code"),
    [
        (404, "not_found", NotFound, EXIT_NOT_FOUND),
        (409, "already_final", AlreadyFinal, EXIT_CONFLICT),
        (409, "idempotency_conflict", IdempotencyConflict, EXIT_CONFLICT),
        (413, "payload_too_large", PayloadTooLarge, EXIT_BAD_INPUT),
        (400, "invalid_json", BadInput, EXIT_BAD_INPUT),  # unknown code: by HTTP status
    ],
)
def test_error_bodies_become_typed_errors(
    status: int, code: str, exc: type[Exception], exit_code: int
) -> None:
    transport = httpx.MockTransport(lambda request: _error(status, code, "it went wrong"))
    with _client(transport) as client, pytest.raises(exc) as info:
        client.get_intent(IDS[0])
    assert info.value.message == "it went wrong"  # type: ignore[attr-defined]
    assert info.value.exit_code == exit_code  # type: ignore[attr-defined]


def test_a_missing_socket_is_daemon_unreachable() -> None:
    with DaemonClient(Path("/nonexistent/axme.sock")) as client, pytest.raises(DaemonUnreachable):
        client.health()
    assert DaemonUnreachable.exit_code == EXIT_UNREACHABLE


def test_autostart_runs_once_then_retries() -> None:
    calls: list[str] = []
    state = {"up": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"ok": True})

    def start() -> None:
        calls.append("start")
        state["up"] = True

    transport = httpx.MockTransport(handler)
    with DaemonClient(Path("/x.sock"), transport=transport, autostart=start) as client:
        assert client.health() == {"ok": True}
        assert client.health() == {"ok": True}
    assert calls == ["start"]


def _listing(request: httpx.Request) -> httpx.Response:
    prefix = request.url.params.get("id_prefix", "")
    found = [
        {"intent_id": i, "intent_type": "t.v1", "status": "SUBMITTED"}
        for i in IDS
        if i.startswith(prefix)
    ]
    return httpx.Response(200, json={"ok": True, "intents": found, "next_cursor": None})


def test_prefixes_resolve_like_git() -> None:
    with _client(httpx.MockTransport(_listing)) as client:
        assert client.resolve_id(IDS[0]) == IDS[0]  # a full id needs no lookup
        assert client.resolve_id("3F2A") == IDS[0]
        with pytest.raises(AmbiguousId) as info:
            client.resolve_id("3f2")
        assert IDS[0] in info.value.message and IDS[1] in info.value.message
        with pytest.raises(NotFound):
            client.resolve_id("ffff")
        with pytest.raises(BadInput):
            client.resolve_id("not-an-id!")


def test_follow_reconnects_after_stream_timeout_until_final() -> None:
    streams: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        since = int(request.url.params["since"])
        streams.append(since)
        if since == 0:
            event = {"seq": 2, "event_type": "intent.submitted", "status": "SUBMITTED"}
            body = f"event: intent.submitted\ndata: {json.dumps(event)}\n\n"
            body += 'event: stream.timeout\ndata: {"next_seq": 2}\n\n'
        else:
            event = {"seq": 3, "event_type": "intent.completed", "status": "COMPLETED"}
            body = f"event: intent.completed\ndata: {json.dumps(event)}\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    with _client(httpx.MockTransport(handler)) as client:
        seen = [e["status"] for e in client.follow(IDS[0])]
    assert seen == ["SUBMITTED", "COMPLETED"]
    assert streams == [0, 2]


def test_a_refused_connection_gives_its_reason_once() -> None:
    import socket
    import tempfile

    # A socket file nothing listens on (a daemon that died), and a start that did not help.
    path = Path(tempfile.mkdtemp(prefix="axme-", dir="/tmp")) / "axme.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    try:
        with DaemonClient(path, autostart=lambda: None) as client:
            with pytest.raises(DaemonUnreachable) as info:
                client.health()
    finally:
        stale.close()
        path.unlink()
        path.parent.rmdir()
    assert info.value.message == f"cannot reach the axme daemon at {path}: Connection refused"
    assert info.value.exit_code == EXIT_UNREACHABLE
