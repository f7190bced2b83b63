"""Requests leave in one write when their body is small: the daemon reads them whole."""

from __future__ import annotations

from axme_cli.unix_http import _ONE_WRITE, _Connection


class Sent:
    """The socket under a connection: what each write carried."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def _post(body: bytes) -> list[bytes]:
    conn = _Connection("/nowhere", timeout=1)
    sock = Sent()
    conn.sock = sock  # type: ignore[assignment]
    conn.request("POST", "/v1/intents", body=body, headers={"Content-Type": "application/json"})
    return sock.writes


def test_a_small_request_is_one_write_of_head_and_body() -> None:
    [write] = _post(b'{"intent_type":"t"}')
    head, _, body = write.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/intents HTTP/1.1\r\n")
    assert b"Content-Length: 19" in head
    assert body == b'{"intent_type":"t"}'


def test_a_large_body_follows_its_head() -> None:
    body = b"x" * (_ONE_WRITE + 1)
    head, rest = _post(body)
    assert head.endswith(b"\r\n\r\n") and rest == body


def test_a_request_without_a_body_is_its_head() -> None:
    conn = _Connection("/nowhere", timeout=1)
    sock = Sent()
    conn.sock = sock  # type: ignore[assignment]
    conn.request("GET", "/health")
    [write] = sock.writes
    assert write.startswith(b"GET /health HTTP/1.1\r\n") and write.endswith(b"\r\n\r\n")
