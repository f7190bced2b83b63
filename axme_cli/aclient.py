"""`AsyncDaemonClient`: the daemon's API for asyncio callers (the TUI's workers).

The same URLs and the same typed errors as `DaemonClient`; it never starts a daemon (the
command that runs the TUI does that once, before the app starts) and never blocks the loop.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import aconnect_sse

from axme_cli.client import STREAM_SLACK, _given, _raise_for, answer
from axme_cli.errors import DaemonUnreachable


class AsyncDaemonClient:
    def __init__(
        self,
        socket_path: Path,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.socket_path = socket_path
        self._http = httpx.AsyncClient(
            transport=transport or httpx.AsyncHTTPTransport(uds=str(socket_path), verify=False),
            base_url="http://axme",
            timeout=timeout,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DaemonUnreachable(
                f"cannot reach the axme daemon at {self.socket_path}: {exc}"
            ) from exc
        return answer(response)

    async def _sse(
        self, path: str, params: dict[str, Any], wait_seconds: float
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        timeout = httpx.Timeout(10.0, read=wait_seconds + STREAM_SLACK)
        try:
            async with aconnect_sse(
                self._http, "GET", path, params=params, timeout=timeout
            ) as source:
                if source.response.status_code >= 400:
                    await source.response.aread()
                    _raise_for(source.response)
                async for sse in source.aiter_sse():
                    yield sse.event, (json.loads(sse.data) if sse.data else {})
        except httpx.TransportError as exc:
            raise DaemonUnreachable(f"lost the axme daemon at {self.socket_path}: {exc}") from exc

    # -- the daemon and its live feed -------------------------------------------------

    async def health(self) -> dict[str, Any]:
        return await self._request("GET", "/health")

    async def watch(
        self, *, wait_seconds: float = 60.0
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """`watch.ready`, then `intent.changed` / `agents.changed`, then `stream.timeout`."""
        async for item in self._sse("/v1/watch", {"wait_seconds": wait_seconds}, wait_seconds):
            yield item

    # -- intents -----------------------------------------------------------------------

    async def list_intents(
        self,
        *,
        status: str | None = None,
        to_agent: str | None = None,
        text: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        params = _given(status=status, to_agent=to_agent, q=text, limit=limit)
        data = await self._request("GET", "/v1/intents", params=params)
        return data["intents"]  # type: ignore[no-any-return]

    async def get_intent(self, intent_id: str) -> dict[str, Any]:
        data = await self._request("GET", f"/v1/intents/{intent_id}")
        return data["intent"]  # type: ignore[no-any-return]

    async def list_events(self, intent_id: str, since: int = 0) -> list[dict[str, Any]]:
        data = await self._request(
            "GET", f"/v1/intents/{intent_id}/events", params={"since": since}
        )
        return data["events"]  # type: ignore[no-any-return]

    async def list_steps(self, intent_id: str) -> list[dict[str, Any]]:
        data = await self._request("GET", f"/v1/intents/{intent_id}/steps")
        return data["steps"]  # type: ignore[no-any-return]

    async def stream_events(
        self, intent_id: str, *, since: int = 0, wait_seconds: float = 60.0
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """One held stream of an intent's events after `since`, ending with `stream.timeout`
        or right after a final event."""
        params = {"since": since, "wait_seconds": wait_seconds}
        path = f"/v1/intents/{intent_id}/events/stream"
        async for item in self._sse(path, params, wait_seconds):
            yield item

    async def cancel_intent(self, intent_id: str, *, reason: str | None = None) -> dict[str, Any]:
        body = _given(status="CANCELED", reason=reason)
        return await self._request("POST", f"/v1/intents/{intent_id}/resolve", json=body)

    async def retry_intent(self, intent_id: str) -> dict[str, Any]:
        return await self._request("POST", f"/v1/intents/{intent_id}/retry", json={})

    # -- tasks -------------------------------------------------------------------------

    async def list_tasks(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Pending tasks, nearest deadline first, then oldest."""
        data = await self._request("GET", "/v1/tasks", params={"limit": limit})
        return data["tasks"]  # type: ignore[no-any-return]

    async def decide_task(
        self,
        task_id: str,
        outcome: str,
        *,
        comment: str | None = None,
        data: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        body = _given(outcome=outcome, comment=comment, data=data, actor=actor)
        answer = await self._request("POST", f"/v1/tasks/{quote(task_id)}/decision", json=body)
        return answer["task"]  # type: ignore[no-any-return]

    # -- agents ------------------------------------------------------------------------

    async def list_agents(self) -> list[dict[str, Any]]:
        return (await self._request("GET", "/v1/agents"))["agents"]  # type: ignore[no-any-return]

    async def restart_agent(self, address: str) -> dict[str, Any]:
        path = address.removeprefix("agent://")
        answer = await self._request("POST", f"/v1/agents/{path}/restart")
        return answer["agent"]  # type: ignore[no-any-return]
