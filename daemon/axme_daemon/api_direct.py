"""The routes every intent goes through, served without FastAPI's per-request layers.

A create and a worker's report are most of the daemon's requests. Under FastAPI each passed
the exception middleware, the router (a regex match per route until one fits), the endpoint
wrapper with its exit stack and dependency solving: together about as much as the work the
request asked for. These few routes take the request straight from the ASGI scope, run the
same endpoint function the app documents and routes, and answer errors with the app's own
exception handlers, so what a client sees is the same; every other path goes to the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """Dispatch exact `(method, path)` pairs to their endpoints; pass the rest to `app`.

    Sits inside the body limit, so a direct route reads its body under the same limit."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[tuple[str, str], Endpoint],
        handlers: Mapping[Any, Callable[[Request, Any], Any]],
    ) -> None:
        self.app = app
        self.routes = routes  # filled in once the app's endpoints exist
        self.handlers = handlers  # the app's exception handlers, by exception class

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await self._answer_error(request, exc)
        await response(scope, receive, send)

    async def _answer_error(self, request: Request, exc: Exception) -> Response:
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                answer: Response = await handler(request, exc)  # the app's are all async
                return answer
        raise exc  # no handler at all: the server's error middleware answers 500
