"""The storage seam: domain-level async methods, no SQL and no driver types.

Every backend (SQLite now, PostgreSQL later) implements `Store`, and one contract suite in
`tests/integration/test_store_contract.py` runs against each. Each write method is one
transaction that changes an intent and appends its events together, so the timeline can
never disagree with the status.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from axme_cli.protocol import IntentStatus
from axme_daemon.intents import Event, Intent, NewIntent

#: Called after each commit with the ids of the intents whose events changed.
CommitListener = Callable[[Iterable[str]], None]


@dataclass(frozen=True)
class IntentFilter:
    status: IntentStatus | None = None
    to_agent: str | None = None
    intent_type: str | None = None
    id_prefix: str | None = None


@dataclass(frozen=True)
class Page:
    intents: list[Intent]
    next_cursor: str | None


@dataclass(frozen=True)
class StoreStats:
    """Counters a test or a benchmark reads to check that group commit keeps working."""

    commits: int
    writes: int


class Store(ABC):
    """Durable home of intents and their events."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def add_commit_listener(self, listener: CommitListener) -> None: ...

    @abstractmethod
    async def create_intent(self, new: NewIntent, intent_id: str) -> tuple[Intent, bool]:
        """Insert with `intent.created` and `intent.submitted`; return (intent, created).

        With an idempotency key already seen, return the existing intent and False, or raise
        `IdempotencyConflict` when the request hash differs.
        """

    @abstractmethod
    async def get_intent(self, intent_id: str) -> Intent | None: ...

    @abstractmethod
    async def list_intents(self, filt: IntentFilter, limit: int, cursor: str | None) -> Page:
        """Newest first; `cursor` is the opaque `next_cursor` of the previous page."""

    @abstractmethod
    async def list_events(self, intent_id: str, since: int = 0, limit: int = 1000) -> list[Event]:
        """Events with `seq > since`, ascending."""

    @abstractmethod
    async def transition(
        self,
        intent_id: str,
        status: IntentStatus,
        *,
        event_type: str | None = None,
        actor: str | None = None,
        details: dict[str, Any] | None = None,
        result: Any = None,
        error: Any = None,
    ) -> tuple[Intent, Event]:
        """Move an intent to `status` and append its event, in one transaction.

        Raises `NotFound`, or `AlreadyFinal`/`Conflict` when the lifecycle forbids it.
        """

    @abstractmethod
    def stats(self) -> StoreStats: ...
