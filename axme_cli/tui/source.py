"""What the screens need from the daemon, as a protocol: `AsyncDaemonClient` implements it,
and so can a recorded source for tests that need the same pixels every run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class Source(Protocol):
    def watch(self, *, wait_seconds: float = 60.0) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...

    async def list_intents(
        self,
        *,
        status: str | None = None,
        to_agent: str | None = None,
        text: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]: ...

    async def get_intent(self, intent_id: str) -> dict[str, Any]: ...

    async def list_events(self, intent_id: str, since: int = 0) -> list[dict[str, Any]]: ...

    async def list_steps(self, intent_id: str) -> list[dict[str, Any]]: ...

    def stream_events(
        self, intent_id: str, *, since: int = 0, wait_seconds: float = 60.0
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...

    async def cancel_intent(
        self, intent_id: str, *, reason: str | None = None
    ) -> dict[str, Any]: ...

    async def retry_intent(self, intent_id: str) -> dict[str, Any]: ...

    async def list_tasks(self, *, limit: int = 1000) -> list[dict[str, Any]]: ...

    async def decide_task(
        self,
        task_id: str,
        outcome: str,
        *,
        comment: str | None = None,
        data: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]: ...

    async def list_agents(self) -> list[dict[str, Any]]: ...

    async def restart_agent(self, address: str) -> dict[str, Any]: ...
