"""Every answer carries back the request's `X-Trace-Id`, as AXME's gateway does.

The AXME SDK sends a fresh trace id with each call and reads it back from the answer (into
its errors' `trace_id`), so a failure in a client's log can be matched to the request. An id
longer than `MAX_TRACE_ID` or not plain printable ASCII is not echoed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_TRACE_ID = 128
#: Set on the scope by the outermost echo, so an inner one (the socket app inside the TCP
#: listener's layers) does not add the header twice.
_ECHOED = "axme.trace_echoed"


def _trace_id(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"x-trace-id":
            if 0 < len(value) <= MAX_TRACE_ID and all(0x21 <= b <= 0x7E for b in value):
                return bytes(value)
            return None
    return None


class TraceEcho:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(_ECHOED):
            await self.app(scope, receive, send)
            return
        scope[_ECHOED] = True
        trace = _trace_id(scope)
        if trace is None:
            await self.app(scope, receive, send)
            return

        async def echo(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-trace-id", trace)]
            await send(message)

        await self.app(scope, receive, echo)
