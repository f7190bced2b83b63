"""Wakes event streams when an intent's timeline grows.

The store is the source of truth: a woken stream re-reads events after its cursor, so a
missed or coalesced wake-up costs nothing, and a client that reconnects with `since=` resumes
exactly where it left off.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

#: The hub key that says an agent's processes changed state (started, exited, restarted).
AGENTS_TOPIC = "agents"


class Watcher:
    """A subscriber to every change: the keys changed since it last looked, and a wake-up."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.changed: set[str] = set()

    def take(self) -> set[str]:
        changed, self.changed = self.changed, set()
        self.wake.clear()
        return changed


class EventHub:
    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._watchers: set[Watcher] = set()
        #: Set when the daemon stops: held streams end now instead of at their timeout.
        self.closing = False

    def close(self) -> None:
        self.closing = True
        self.wake_all()

    def wake_all(self) -> None:
        """Every held stream reads again: something changed that the hub was not told of."""
        for waiters in self._waiters.values():
            for wake in waiters:
                wake.set()
        for watcher in self._watchers:
            watcher.wake.set()

    def notify(self, intent_ids: Iterable[str]) -> None:
        keys = intent_ids if not self._watchers else set(intent_ids)
        for intent_id in keys:
            for wake in self._waiters.get(intent_id, ()):
                wake.set()
        for watcher in self._watchers:
            watcher.changed.update(keys)
            watcher.wake.set()

    @contextmanager
    def watch(self) -> Iterator[Watcher]:
        """Every key that changes from now on, for a client that shows everything live."""
        watcher = Watcher()
        self._watchers.add(watcher)
        try:
            yield watcher
        finally:
            self._watchers.discard(watcher)

    @contextmanager
    def subscribe(self, intent_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `intent_id` changes; subscribe before reading to miss nothing."""
        wake = asyncio.Event()
        self._waiters[intent_id].add(wake)
        try:
            yield wake
        finally:
            waiters = self._waiters[intent_id]
            waiters.discard(wake)
            if not waiters:
                del self._waiters[intent_id]

    async def hold(self, wake: asyncio.Event, deadline: float) -> str:
        """One wait of a held stream: "end" (its time is up, or the daemon stops), "woken"
        (read again), or "keepalive" (nothing happened for a while; ping the client)."""
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0 or self.closing:
            return "end"
        if wake.is_set():
            return "woken"
        try:
            # asyncio.timeout, not wait_for: no task of its own per wait (3.11's wait_for
            # wraps the wait in one), and a stream waits once per delivery.
            async with asyncio.timeout(min(remaining, KEEPALIVE_SECONDS)):
                await wake.wait()
        except TimeoutError:
            return "keepalive" if deadline - loop.time() > 0 else "woken"
        return "woken"

    @property
    def subscribers(self) -> int:
        return sum(len(w) for w in self._waiters.values()) + len(self._watchers)


#: Keep-alive cadence for held streams, below common proxy idle timeouts.
KEEPALIVE_SECONDS = 15.0


class StreamTimeout:
    """Yielded by a held stream when its hold elapsed; carries the cursor to resume from."""

    def __init__(self, next_seq: int) -> None:
        self.next_seq = next_seq


class KeepAlive:
    """Yielded by a held stream while nothing happens, so the transport can ping."""
