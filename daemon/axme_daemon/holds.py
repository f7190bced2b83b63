"""Caps on held streams, so that they never take the file descriptors everything else needs.

Each held stream (`/v1/watch`, an intent's event stream, an agent's delivery stream) keeps a
connection, hence a file descriptor, open as long as it is held. A stream past its kind's cap,
or one that would leave fewer than `FD_RESERVE` descriptors below the process's limit for
everything else, is answered 503 with `Retry-After`, and its connection is closed: creates,
decisions and reports always find a descriptor. Watch and event streams, which only look on,
share at most three quarters of that room, so agents' delivery streams always find some. The
limit is read as each stream opens, so a limit changed under a running daemon counts at once.
"""

from __future__ import annotations

import resource
from collections import Counter
from collections.abc import AsyncIterable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from axme_cli.errors import TooManyStreams

#: Descriptors kept for everything but held streams: the store and its WAL, logs, the
#: listeners, agents' pipes, and the requests that come and go.
FD_RESERVE = 128
_LABELS = {
    "watch": "/v1/watch streams",
    "events": "intent event streams",
    "agent": "agent delivery streams",
}
#: Streams that move work on: agents' deliveries. Watch and event streams only look on, and
#: may hold `WATCHERS_SHARE` of the room at most, so that watchers never lock agents out.
WORKING = frozenset({"agent"})
WATCHERS_SHARE = 0.75
#: What a refused stream is told to wait before it tries again.
RETRY_AFTER_SECONDS = 5


def fd_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 2**31


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; return the soft limit.

    Distributions start processes at 1024 (some at 256) whatever the hard limit allows; a
    daemon holding a stream per watcher and per worker needs more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 2**20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return fd_limit()
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # e.g. above the kernel's nr_open: keep what we have
        pass
    return fd_limit()


class HeldStream(StreamingResponse):
    """A streaming response that gives its slot back when it ends, however it ends."""

    def __init__(self, content: AsyncIterable[bytes], release: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


class StreamLimits:
    """How many streams of each kind are held, against their caps and the fd limit."""

    def __init__(self, caps: dict[str, int]) -> None:
        self.caps = caps
        self.held: Counter[str] = Counter()

    def respond(self, kind: str, content: AsyncIterable[bytes]) -> HeldStream:
        """Hold a slot of `kind` for `content` until the response ends, or raise
        `TooManyStreams`. Call it last in a route: nothing may fail between it and the
        response being sent, or the slot would never come back."""
        cap = self.caps[kind]
        room = fd_limit() - FD_RESERVE
        if kind not in WORKING:  # people and scripts watching: never all the room
            room = int(room * WATCHERS_SHARE)
            total = sum(n for k, n in self.held.items() if k not in WORKING)
        else:
            total = sum(self.held.values())
        if self.held[kind] >= cap or total >= room:
            which = (
                f"{cap} {_LABELS[kind]}, its cap"
                if self.held[kind] >= cap
                else f"{total} such streams, all that its open-files limit ({fd_limit()}) allows"
            )
            raise TooManyStreams(
                f"the daemon already holds {which}; try again in {RETRY_AFTER_SECONDS}s",
                details={
                    "kind": kind,
                    "held": self.held[kind],
                    "cap": cap,
                    "retry_after": RETRY_AFTER_SECONDS,
                },
            )
        self.held[kind] += 1

        def release() -> None:
            self.held[kind] -= 1

        return HeldStream(content, release)

    def describe(self) -> dict[str, Any]:
        return {kind: {"held": self.held[kind], "cap": cap} for kind, cap in self.caps.items()}


def limits(request: Request) -> StreamLimits:
    found: StreamLimits = request.app.state.stream_limits
    return found
