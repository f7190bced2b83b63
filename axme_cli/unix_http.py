"""HTTP/1.1 over the daemon's Unix socket with the standard library: requests and held
server-sent-event streams.

`import httpx` costs about 160 ms (the package imports its own CLI: click, rich, pygments),
which was most of a short `axme` command and of an agent's restart; httpx is left for injected
transports (tests) and the official SDK.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode


class ConnectFailed(OSError):
    """Nothing accepted the connection: no request was sent, so any method may be retried."""

    def __str__(self) -> str:
        # "Connection refused", not "[Errno 111] Connection refused": the callers' messages
        # name the socket, and users read the reason, not the number.
        return self.strerror or super().__str__()


class TransportFailed(OSError):
    """The connection broke or timed out during a request."""


class Reply:
    """One answer: the status, the reason and the body (the names `httpx.Response` uses)."""

    def __init__(self, status_code: int, reason_phrase: str, content: bytes) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


#: Largest body sent in the same write as its head (a larger one is not worth the copy).
_ONE_WRITE = 64 * 1024


class _Connection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("axme", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError as exc:
            sock.close()
            raise ConnectFailed(exc.errno, exc.strerror or str(exc)) from exc
        self.sock = sock

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        """Send the head and a small body in one write: `http.client` writes them apart,
        which wakes the daemon twice for one request."""
        if not isinstance(message_body, bytes) or len(message_body) > _ONE_WRITE:
            super()._send_output(message_body, encode_chunked)  # type: ignore[misc]
            return
        head: list[bytes] = self._buffer  # type: ignore[attr-defined]
        head.extend((b"", b""))
        self.send(b"\r\n".join(head) + message_body)
        del head[:]


class UnixHTTP:
    """One kept-alive connection, used by one request at a time (a lock guards it)."""

    def __init__(self, path: str, *, timeout: float, headers: dict[str, str] | None = None):
        self._path = path
        self._timeout = timeout
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._conn: _Connection | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        if params:
            path = f"{path}?{urlencode(params)}"
        sent = dict(self._headers)
        if headers:
            sent.update(headers)
        body = None
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            sent["Content-Type"] = "application/json"
        with self._lock:
            # A kept-alive connection the daemon closed while idle fails before any answer:
            # send once more on a fresh one (as browsers and httpx do).
            retry = self._conn is not None
            while True:
                try:
                    return self._exchange(method, path, body, sent)
                except ConnectFailed:
                    raise
                except (http.client.HTTPException, OSError) as exc:
                    self._drop()
                    if not (retry and _closed_while_idle(exc)):
                        raise TransportFailed(str(exc) or type(exc).__name__) from exc
                    retry = False

    def events(
        self, path: str, *, params: dict[str, Any], read_timeout: float
    ) -> Iterator[Reply | tuple[str, str]]:
        """A held SSE stream on a connection of its own: first a `Reply` when the daemon
        refused it (status >= 400), else (event, data) per event; keep-alive comments are
        skipped."""
        conn = _Connection(self._path, read_timeout)
        try:
            try:
                conn.request("GET", f"{path}?{urlencode(params)}", headers=self._headers)
                response = conn.getresponse()
                if response.status >= 400:
                    yield Reply(response.status, response.reason, response.read())
                    return
                yield from _parse_sse(response)
            except ConnectFailed:
                raise
            except (http.client.HTTPException, OSError) as exc:
                raise TransportFailed(str(exc) or type(exc).__name__) from exc
        finally:
            conn.close()

    def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> Reply:
        if self._conn is None:
            self._conn = _Connection(self._path, self._timeout)
        self._conn.request(method, path, body=body, headers=headers)
        response = self._conn.getresponse()
        content = response.read()
        if response.will_close:
            self._drop()
        return Reply(response.status, response.reason, content)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _closed_while_idle(exc: BaseException) -> bool:
    return isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError)


def _parse_sse(response: http.client.HTTPResponse) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent-event stream; comments (keep-alives) skipped.

    sseclient-py does the framing: it reads the response line by line as events arrive."""
    from sseclient import SSEClient

    for event in SSEClient(response).events():
        yield event.event, event.data
