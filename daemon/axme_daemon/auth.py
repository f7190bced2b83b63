"""API keys for the loopback TCP listener (the Unix socket is private to its owner).

Keys come from the supervisor (one per agent process, handed over in `AXME_API_KEY`) and
from `AXME_API_KEYS` (comma-separated, for agents the daemon does not run). A request on TCP
without a known key gets 401 in the usual error shape.
"""

from __future__ import annotations

import os

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from axme_daemon.api import error_response


def static_api_keys() -> frozenset[str]:
    raw = os.environ.get("AXME_API_KEYS", "")
    return frozenset(k.strip() for k in raw.split(",") if k.strip())


class RequireApiKey:
    def __init__(self, app: ASGIApp, keys: dict[str, str], static_keys: frozenset[str]) -> None:
        self.app = app
        self.keys = keys  # live: the supervisor adds and removes per-process keys
        self.static_keys = static_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            key = headers.get("x-api-key") or ""
            auth = headers.get("authorization") or ""
            if not key and auth.lower().startswith("bearer "):
                key = auth[7:].strip()
            if key not in self.keys and key not in self.static_keys:
                message = "unknown API key" if key else "an API key is required (x-api-key header)"
                await error_response(401, "unauthorized", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)
