"""The TCP listener answers only requests addressed to a loopback name.

A web page can make a browser talk to 127.0.0.1 by pointing its own domain there (DNS
rebinding); the browser then sends that domain in `Host`. Refusing every `Host` but
`localhost`, a loopback address and the address the listener is bound to keeps such pages
out, before any key is looked at. The listener sends no CORS headers at all, so a browser
also refuses to let a page read an answer or send the key headers cross-origin.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from axme_daemon.api_body import error_response


def host_name(header: str) -> str | None:
    """The name in a `Host` header value (`[::1]:80` -> `::1`), None when it has no shape."""
    try:
        name = urlsplit(f"//{header}").hostname
    except ValueError:
        return None
    return name or None


def loopback_host(header: str, bound: str) -> bool:
    name = host_name(header)
    if name is None:
        return False
    if name in ("localhost", bound):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class LoopbackHostOnly:
    """Answers 421 in the usual error shape to a request whose `Host` is not loopback."""

    def __init__(self, app: ASGIApp, bound: str) -> None:
        self.app = app
        self.bound = bound

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "")
            if not loopback_host(host, self.bound):
                message = "Host: this listener answers only to localhost or a loopback address"
                await error_response(421, "misdirected_request", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)
