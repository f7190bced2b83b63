"""AXME's agent mesh over the agent registry: heartbeats, health, and the kill switch.

A kill is durable (the store's `killed_agents`) and held here in memory too, so the checks
on the create and stream paths cost no read: while an address is killed, a new intent to or
from it and its delivery stream get 403 `agent_killed`, its open streams end, and nothing
queued is delivered to it; intents already delivered may still be reported (nothing in
flight is lost). Heartbeats and their metrics are kept in memory only: they say how an
agent is now, and a restarted daemon waits for the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from axme_cli.errors import AgentKilled, NotFound
from axme_daemon.intents import now_iso
from axme_daemon.store import Store

#: A heartbeat older than this leaves an agent `stale` (AXME's SDK beats every 30 s).
FRESH_SECONDS = 90.0
HEALTH = ("healthy", "stale", "unknown", "killed")
#: Metrics a heartbeat may carry (AXME's SDK `report_metric` buffer).
METRICS = ("intents_total", "intents_succeeded", "intents_failed", "avg_latency_ms", "cost_usd")


@dataclass
class Beat:
    at: str
    monotonic: float
    metrics: dict[str, float] = field(default_factory=dict)


def address_id(address: str) -> str:
    """The id AXME's mesh paths take: the address without `agent://` (`org/env/name`)."""
    return address.removeprefix("agent://")


class Mesh:
    def __init__(self, store: Store, wake: Callable[[str], None] = lambda address: None) -> None:
        self.store = store
        #: Wakes an address's open streams, so that they end at once after a kill.
        self.wake = wake
        self.killed: dict[str, dict[str, Any]] = {}
        self.beats: dict[str, Beat] = {}

    async def load(self) -> None:
        self.killed = {r["address"]: r for r in await self.store.list_killed_agents()}

    def check_open(self, *addresses: str | None) -> None:
        """403 `agent_killed` when any of `addresses` is killed."""
        if not self.killed:
            return
        for address in addresses:
            if address is not None and address in self.killed:
                row = self.killed[address]
                raise AgentKilled(
                    f"agent {address} is killed (by {row['actor']} at {row['killed_at']}): no new"
                    f" work until it is resumed (POST /v1/mesh/agents/{address_id(address)}"
                    "/resume)",
                    details={"agent": address, "killed_at": row["killed_at"]},
                )

    def heartbeat(self, address: str, metrics: dict[str, float]) -> dict[str, Any]:
        beat = self.beats.get(address)
        if beat is None:
            beat = self.beats[address] = Beat(now_iso(), time.monotonic())
        beat.at, beat.monotonic = now_iso(), time.monotonic()
        beat.metrics.update(metrics)
        return self.describe(address, registered=False)

    def is_killed(self, address: str) -> bool:
        return address in self.killed

    async def kill(self, address: str, actor: str) -> None:
        self.killed[address] = await self.store.kill_agent(address, actor)
        self.wake(address)

    async def resume(self, address: str) -> bool:
        resumed = await self.store.resume_agent(address)
        self.killed.pop(address, None)
        return resumed

    def health(self, address: str, *, registered: bool) -> str:
        if address in self.killed:
            return "killed"
        beat = self.beats.get(address)
        if beat is not None:
            return "healthy" if time.monotonic() - beat.monotonic < FRESH_SECONDS else "stale"
        return "healthy" if registered else "unknown"

    def describe(
        self, address: str, *, registered: bool, state: str | None = None
    ) -> dict[str, Any]:
        """The agent as AXME's mesh lists it. A registered agent the daemon runs is healthy
        while its processes run (`state` RUNNING), whether or not it sends heartbeats."""
        beat = self.beats.get(address)
        killed = self.killed.get(address)
        running = registered and state in (None, "RUNNING")
        return {
            "address_id": address_id(address),
            "address": address,
            "display_name": address.rsplit("/", 1)[-1],
            "health_status": self.health(address, registered=running),
            "registered": registered,
            "state": state,
            "last_heartbeat_at": beat.at if beat else None,
            "metrics": dict(beat.metrics) if beat else {},
            "killed_at": killed["killed_at"] if killed else None,
            "killed_by": killed["actor"] if killed else None,
        }

    def known(self, address: str, others: set[str]) -> None:
        """NotFound unless the mesh has heard of `address` (a heartbeat, a kill, `others`)."""
        if address not in self.beats and address not in self.killed and address not in others:
            raise NotFound(
                f"no agent {address} in the mesh (not registered, no key of its own, no heartbeat)",
                details={"agent": address},
            )
