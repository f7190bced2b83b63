"""The agent registry over HTTP: what `axme agents ...` and the project apply use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from axme_daemon.api_workers import normalize_address
from axme_daemon.registry import AgentIn, ProjectIn, Registry


def agent_routes(registry: Registry) -> APIRouter:
    router = APIRouter(tags=["agents"])

    @router.get("/v1/agents")
    async def list_agents() -> dict[str, Any]:
        """Every registered agent: state, replicas (pid, restarts, last exit), in flight."""
        return {"ok": True, "agents": registry.describe()}

    @router.post("/v1/agents")
    async def add_agent(body: AgentIn) -> dict[str, Any]:
        """Register (or update) one agent; the supervisor starts it at once."""
        await registry.add(body)
        return {"ok": True, "agent": registry.describe(body.address)[0]}

    @router.post("/v1/projects/apply")
    async def apply_project(body: ProjectIn) -> dict[str, Any]:
        """A project's axme.toml: its agents replace the ones it declared before."""
        changed = await registry.apply_project(body)
        return {"ok": True, "changed": changed}

    @router.post("/v1/agents/{address:path}/restart")
    async def restart_agent(address: str) -> dict[str, Any]:
        """Restart every replica; also the way out of FATAL."""
        target = normalize_address(address)
        await registry.restart(target)
        return {"ok": True, "agent": registry.describe(target)[0]}

    @router.get("/v1/agents/{address:path}")
    async def get_agent(address: str) -> dict[str, Any]:
        return {"ok": True, "agent": registry.describe(normalize_address(address))[0]}

    @router.delete("/v1/agents/{address:path}")
    async def remove_agent(address: str) -> dict[str, Any]:
        """Stop the agent and forget it; its queued intents wait for a new one."""
        target = normalize_address(address)
        await registry.remove(target)
        return {"ok": True, "address": target}

    return router
