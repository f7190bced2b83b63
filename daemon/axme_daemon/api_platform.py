"""AXME platform routes the SDK calls beyond intents: `/v1/capabilities` and the agent mesh
(`/v1/mesh/...`: heartbeats, health, kill and resume), served over the agent registry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from axme_cli import __version__
from axme_cli.errors import ValidationFailed
from axme_daemon.api_workers import normalize_address
from axme_daemon.auth import KeyRing, principal_of
from axme_daemon.authz import actor_of
from axme_daemon.mesh import HEALTH, Mesh
from axme_daemon.registry import Registry

#: What this daemon does of the AXME platform (`GET /v1/capabilities`). It takes intents of
#: any type, so it lists none in `supported_intent_types` and says `any_intent_type`.
CAPABILITIES = (
    "intents",
    "intent_events_stream",
    "agent_stream",
    "resume",
    "resolve",
    "human_tasks",
    "approvals",
    "inbox",
    "mesh",
    "idempotency",
)


class Metrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intents_total: float | None = Field(default=None, ge=0)
    intents_succeeded: float | None = Field(default=None, ge=0)
    intents_failed: float | None = Field(default=None, ge=0)
    avg_latency_ms: float | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)


class Heartbeat(BaseModel):
    metrics: Metrics | None = None


def add_platform_routes(app: FastAPI, mesh: Mesh, keys: KeyRing) -> None:
    def registered() -> dict[str, dict[str, Any]]:
        registry: Registry | None = app.state.registry
        return {a["address"]: a for a in registry.describe()} if registry else {}

    def agent(address: str) -> dict[str, Any]:
        known = registered().get(address)
        state = known.get("state") if known else None
        return mesh.describe(address, registered=known is not None, state=state)

    def target(address_id: str) -> str:
        address = normalize_address(address_id)
        mesh.known(address, set(registered()) | keys.agent_addresses())
        return address

    @app.get("/v1/capabilities", tags=["daemon"])
    async def capabilities() -> dict[str, Any]:
        """What the daemon serves of the AXME platform; any intent type is taken."""
        return {
            "ok": True,
            "service": "axme",
            "version": __version__,
            "capabilities": list(CAPABILITIES),
            "supported_intent_types": [],
            "any_intent_type": True,
            "delivery_modes": ["stream", "poll"],
        }

    @app.post("/v1/mesh/heartbeat", tags=["mesh"])
    async def heartbeat(request: Request, body: Heartbeat | None = None) -> dict[str, Any]:
        """An agent says it is alive (and how it does): the agent its key works for."""
        address = principal_of(request.scope).address
        if address is None:
            raise ValidationFailed(
                "heartbeat: send it with an agent's key (its AXME_API_KEY, or a key made with"
                " axme keys create NAME --scope agent:ADDRESS): the mesh knows agents by key"
            )
        metrics = body.metrics.model_dump(exclude_none=True) if body and body.metrics else {}
        mesh.heartbeat(address, metrics)
        return {"ok": True, **agent(address)}

    @app.get("/v1/mesh/agents", tags=["mesh"])
    async def mesh_agents(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        health: Annotated[str | None, Query(pattern=f"^({'|'.join(HEALTH)})$")] = None,
    ) -> dict[str, Any]:
        """Registered agents, agents with a key of their own, and any that sent a heartbeat
        or was killed, by address; `health` one of healthy, stale, unknown, killed."""
        addresses = set(registered()) | keys.agent_addresses() | set(mesh.beats) | set(mesh.killed)
        agents = [agent(a) for a in sorted(addresses)]
        if health is not None:
            agents = [a for a in agents if a["health_status"] == health]
        return {"ok": True, "agents": agents[:limit]}

    @app.get("/v1/mesh/agents/{address_id:path}", tags=["mesh"])
    async def mesh_agent(address_id: str) -> dict[str, Any]:
        return {"ok": True, "agent": agent(target(address_id))}

    @app.post("/v1/mesh/agents/{address_id:path}/kill", tags=["mesh"])
    async def kill(request: Request, address_id: str) -> dict[str, Any]:
        """No new intents to or from the agent, and no stream for it, until resumed."""
        address = target(address_id)
        await mesh.kill(address, actor_of(request, None))
        return {"ok": True, "agent": agent(address)}

    @app.post("/v1/mesh/agents/{address_id:path}/resume", tags=["mesh"])
    async def resume(address_id: str) -> dict[str, Any]:
        address = target(address_id)
        resumed = await mesh.resume(address)
        return {"ok": True, "resumed": resumed, "agent": agent(address)}
