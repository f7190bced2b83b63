"""A sized response leaves in one write; a stream's head leaves at once; nothing is held back
past the end of a response or the connection."""

from __future__ import annotations

import asyncio
import socket
from typing import cast

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from axme_daemon.http_protocol import OneWriteHttpProtocol, _OneWrite

SIZED = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n"
STREAM = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


class Recorder:
    """The socket's side of a transport: what was written, in how many writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _one_write() -> tuple[_OneWrite, Recorder]:
    socket_side = Recorder()
    return _OneWrite(cast(asyncio.Transport, socket_side)), socket_side


def test_a_sized_response_leaves_with_its_body_in_one_write() -> None:
    transport, sent = _one_write()
    transport.write(SIZED)
    assert sent.writes == []
    transport.write(b"{}")
    assert sent.writes == [SIZED + b"{}"]
    transport.write(SIZED)  # the next response on the kept-alive connection
    transport.write(b"[]")
    assert sent.writes == [SIZED + b"{}", SIZED + b"[]"]


def test_a_stream_head_and_its_chunks_leave_at_once() -> None:
    transport, sent = _one_write()
    transport.write(STREAM)
    transport.write(b"5\r\nhello\r\n")
    assert sent.writes == [STREAM, b"5\r\nhello\r\n"]


@pytest.mark.parametrize("end", ["flush", "close"])
def test_a_head_without_a_body_is_not_held_past_the_end(end: str) -> None:
    transport, sent = _one_write()
    transport.write(SIZED)
    getattr(transport, end)()
    assert sent.writes == [SIZED]
    assert sent.closed is (end == "close")


def test_the_rest_of_the_transport_is_the_real_one() -> None:
    transport, sent = _one_write()
    assert transport.is_closing() is False
    sent.closed = True
    assert transport.is_closing() is True


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


async def test_uvicorn_answers_whole_through_it_head_requests_too() -> None:
    """A HEAD answer has no body (uvicorn writes none): its head leaves when it ends."""
    config = uvicorn.Config(_app, http=OneWriteHttpProtocol, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200") and b"content-length: 5" in head
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert second.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
        writer.close()
        await writer.wait_closed()
    finally:
        server.should_exit = True
        await serving
        listener.close()
