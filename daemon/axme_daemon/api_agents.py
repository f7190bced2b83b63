"""The agent registry over HTTP: what `axme agents ...` and the project apply use."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from axme_daemon.api_workers import normalize_address
from axme_daemon.registry import AgentIn, ProjectIn, Registry


def add_agent_routes(app: FastAPI, registry: Registry) -> None:

    @app.get("/v1/agents", tags=["agents"])
    async def list_agents() -> dict[str, Any]:
        """Every registered agent: state, replicas (pid, restarts, last exit), in flight."""
        return {"ok": True, "agents": registry.describe()}

    @app.post("/v1/agents", tags=["agents"])
    async def add_agent(body: AgentIn) -> dict[str, Any]:
        """Register (or update) one agent; the supervisor starts it at once."""
        await registry.add(body)
        return {"ok": True, "agent": registry.describe(body.address)[0]}

    @app.post("/v1/projects/apply", tags=["agents"])
    async def apply_project(body: ProjectIn) -> dict[str, Any]:
        """A project's axme.toml: its agents replace the ones it declared before."""
        changed = await registry.apply_project(body)
        return {"ok": True, "changed": changed}

    @app.post("/v1/agents/{address:path}/restart", tags=["agents"])
    async def restart_agent(address: str) -> dict[str, Any]:
        """Restart every replica; also the way out of FATAL."""
        target = normalize_address(address)
        await registry.restart(target)
        return {"ok": True, "agent": registry.describe(target)[0]}

    @app.get("/v1/agents/{address:path}", tags=["agents"])
    async def get_agent(address: str) -> dict[str, Any]:
        return {"ok": True, "agent": registry.describe(normalize_address(address))[0]}

    @app.delete("/v1/agents/{address:path}", tags=["agents"])
    async def remove_agent(address: str) -> dict[str, Any]:
        """Stop the agent and forget it; its queued intents wait for a new one. One that a
        project declares stays removed until its file changes or it is restarted
        (`declared_in` names the file)."""
        target = normalize_address(address)
        declared_in = await registry.remove(target)
        return {"ok": True, "address": target, "declared_in": declared_in}
