"""uvicorn's HTTP protocol, sending each plain response in one write.

uvicorn writes a response's status line and headers as soon as the app starts the response,
and the body when the app sends it: two system calls, and a client woken twice, for every
request. Every intent takes a few small requests, so here the head of a response with a
`content-length` waits for its body (or the response's end) and both leave together. Streams
(chunked, no `content-length`) leave as before: their head at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/1.1 "
_SIZED = b"\r\ncontent-length: "


class _OneWrite:
    """The connection's transport, holding a sized response's head until its body."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data.startswith(_HEAD) and data.endswith(b"\r\n\r\n") and _SIZED in data:
            self._head = data
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` writing each sized response (head and body) at once."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_OneWrite(transport))  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]  # a HEAD answer has no body
        super().on_response_complete()
