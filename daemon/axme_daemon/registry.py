"""The agent registry: specs kept in the store, processes run by the supervisor.

Specs come from projects' `axme.toml` files (the CLI sends a project's file when it runs
there; the daemon applies it only when its digest changed) and from `axme agents add`. The
registry is re-applied to the supervisor after every change and when the daemon starts, so a
daemon restart brings every agent back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Self, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from axme_cli.errors import NotFound
from axme_cli.protocol import AGENT_ADDRESS_RE
from axme_daemon.delivery import Dispatcher
from axme_daemon.notify import HOOK_EVENTS, Hook, select_hooks
from axme_daemon.store import Store
from axme_daemon.supervisor import AgentSpec, Supervisor

log = logging.getLogger(__name__)


class AgentIn(BaseModel):
    """One agent as the CLI sends it (validated again here: the API is public)."""

    model_config = ConfigDict(extra="forbid")

    address: str
    command: list[str] = Field(min_length=1)
    cwd: str = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    replicas: int = Field(default=1, ge=0, le=64)
    concurrency: int = Field(default=1, ge=1, le=1024)
    max_delivery_attempts: int = Field(default=3, ge=1, le=100)
    start_seconds: float = Field(default=1.0, ge=0, le=3600)
    start_retries: int = Field(default=3, ge=1, le=100)
    stop_grace_seconds: float = Field(default=5.0, ge=0, le=3600)
    executable: str | None = Field(default=None, min_length=1)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not AGENT_ADDRESS_RE.match(value):
            raise ValueError(f"address must be like agent://org/env/name, got {value!r}")
        return value

    def spec(self) -> AgentSpec:
        return AgentSpec(**{**self.model_dump(), "command": tuple(self.command)})


HookEvent = Literal["assigned", "reminder", "escalation", "timeout"]
_ALL_EVENTS: tuple[HookEvent, ...] = get_args(HookEvent)
assert _ALL_EVENTS == HOOK_EVENTS, "the daemon and the CLI must agree on the events"


class HookIn(BaseModel):
    """One notification hook: a command (argv) or a webhook URL with an optional HMAC secret.

    Messages never show the secret (our 422s carry no input values), and reprs show neither
    the secret nor the webhook URL (a chat webhook's path is its token)."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] | None = Field(default=None, min_length=1)
    webhook: str | None = Field(default=None, min_length=1, max_length=4096, repr=False)
    secret: str | None = Field(default=None, min_length=1, repr=False)
    on: list[HookEvent] = Field(default_factory=lambda: list(_ALL_EVENTS), min_length=1)
    cwd: str | None = Field(default=None, min_length=1)  # default: the project directory

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.command is None) == (self.webhook is None):
            raise ValueError("a hook needs exactly one of command and webhook")
        if self.command is not None:
            if any(not word or "\0" in word for word in self.command):
                raise ValueError("command: words must be non-empty and hold no NUL")
            if self.secret is not None:
                raise ValueError("secret: only a webhook takes a secret")
        if self.webhook is not None:
            try:
                parts = urlsplit(self.webhook)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname)
                parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
            except ValueError:
                ok = False
            if not ok:
                raise ValueError("webhook: expected an http:// or https:// URL with a host")
        return self

    def hook(self, source: str) -> Hook:
        return Hook(
            on=frozenset(self.on),
            command=None if self.command is None else tuple(self.command),
            cwd=self.cwd,
            webhook=self.webhook,
            secret=self.secret,
            source=source,
        )


class ProjectIn(BaseModel):
    """A project's axme.toml, as `axme` found and validated it."""

    config_path: str = Field(min_length=1)
    project_dir: str = Field(min_length=1)
    digest: str = Field(min_length=1, max_length=128)
    agents: list[AgentIn]
    hooks: list[HookIn] = Field(default_factory=list)

    def stored_hooks(self) -> list[dict[str, Any]]:
        """The hooks as the store keeps them: command hooks run in the project directory."""
        return [
            hook.model_dump(exclude_none=True)
            | ({"cwd": hook.cwd or self.project_dir} if hook.command is not None else {})
            for hook in self.hooks
        ]


def _spec(stored: dict[str, Any]) -> AgentSpec:
    fields = {k: v for k, v in stored.items() if k in AgentIn.model_fields}
    return AgentIn(**fields).spec()


def _hooks(project: dict[str, Any]) -> tuple[Hook, ...]:
    source = str(project["config_path"])
    hooks = []
    for i, stored in enumerate(project.get("hooks") or []):
        try:
            hooks.append(HookIn(**stored).hook(source))
        except (ValidationError, TypeError):  # written by another version: skip, say so
            log.warning("%s: stored hook %d is not valid; it is skipped", source, i)
    return tuple(hooks)


class Registry:
    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        dispatcher: Dispatcher,
        *,
        before_start: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """`before_start` runs before any agent process starts (the daemon opens its TCP
        listener there, so AXME SDK agents get a URL)."""
        self.store = store
        self._before_start = before_start
        self.supervisor = supervisor
        self.dispatcher = dispatcher
        self.specs: dict[str, AgentSpec] = {}
        #: Agents a project declares that `axme agents remove` took out: address -> axme.toml.
        self.removed: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        self.hooks: dict[str, tuple[Hook, ...]] = {}  # by project (axme.toml path)

    async def start(self) -> None:
        await self._reconcile()

    async def load_hooks(self) -> None:
        """Projects' hooks and which project declares which agent, from the store; before the
        engine starts, so notices of timers that fell due while the daemon was down find them."""
        self._sources = {a["address"]: a["source"] for a in await self.store.list_agents()}
        await self._load_project_hooks()

    async def _load_project_hooks(self) -> None:
        self.hooks = {p["config_path"]: _hooks(p) for p in await self.store.list_projects()}

    def hooks_for(self, address: str) -> list[Hook]:
        """The hooks a task for `address` fires (see `notify.select_hooks`)."""
        return select_hooks(address, self._sources, self.hooks)

    async def _reconcile(self) -> None:
        stored = await self.store.list_agents()
        self.specs = {s["address"]: _spec(s) for s in stored if not s.get("removed")}
        self.removed = {s["address"]: s["source"] for s in stored if s.get("removed")}
        self._sources = {s["address"]: s["source"] for s in stored}
        await self._load_project_hooks()
        if self.specs and self._before_start is not None:
            await self._before_start()
        await self.supervisor.apply(list(self.specs.values()))

    async def apply_project(self, project: ProjectIn) -> bool:
        changed = await self.store.put_agents(
            project.config_path,
            project.digest,
            [a.model_dump() for a in project.agents],
            replace_source=True,
            hooks=project.stored_hooks(),
        )
        if changed:
            log.info(
                "applied %s (%d agents, %d hooks)",
                project.config_path,
                len(project.agents),
                len(project.hooks),
                extra={"action": "apply"},
            )
            await self._reconcile()
        return changed

    async def add(self, agent: AgentIn) -> None:
        await self.store.put_agents("cli", None, [agent.model_dump()], replace_source=False)
        await self._reconcile()

    async def remove(self, address: str) -> str | None:
        """Stop and forget an agent; the axme.toml that declares it, if one does.

        An agent added by hand is deleted. One a project declares is kept, marked removed:
        applying the same file again does not bring it back (the daemon applies a file only
        when it changed), `restart` or a change to the file does.
        """
        if address in self.removed:
            raise NotFound(
                f"agent {address} is removed already (declared in {self.removed[address]};"
                f" bring it back with: axme agents restart {address})"
            )
        source = self._sources.get(address)
        declared = address in self.specs and source not in (None, "cli")
        if declared:
            await self.store.set_agent_removed(address, True)
        elif not await self.store.delete_agent(address):
            raise NotFound(f"no agent {address} is registered")
        await self._reconcile()
        return source if declared else None

    async def restart(self, address: str) -> None:
        """Restart its processes; a declared agent that was removed is started again."""
        if address in self.removed:
            await self.store.set_agent_removed(address, False)
            await self._reconcile()
            return
        if address not in self.specs:
            raise NotFound(f"no agent {address} is registered")
        await self.supervisor.restart(address)

    def describe(self, address: str | None = None) -> list[dict[str, Any]]:
        """Each agent's spec (env keys only), process states and deliveries in flight."""
        out = []
        for status in self.supervisor.status():
            if address is not None and status["address"] != address:
                continue
            workers = self.dispatcher.workers_for(status["address"])
            status["in_flight"] = sum(len(w.held) for w in workers)
            status["source"] = self._sources.get(status["address"], "")
            out.append(status)
        if address is not None and not out:
            raise NotFound(f"no agent {address} is registered")
        return out

    def pending_reason(self, address: str) -> str:
        """Why an intent for `address` is still waiting for a worker, in a user's words."""
        workers = self.dispatcher.workers_for(address)
        if address not in self.specs:
            if workers:
                return f"queued for {address} (served by an unsupervised worker)"
            if address in self.removed:
                return (
                    f"agent {address} is declared in {self.removed[address]} but was removed"
                    f" (axme agents remove); it waits until it is back: axme agents restart"
                    f" {address}, or a change to that file"
                )
            return (
                f"no agent is registered at {address}; it waits until one is (declare it in a"
                f" project's axme.toml and run axme there, or: axme agents add {address} --"
                " COMMAND)"
            )
        state: dict[str, Any] = next(
            (s for s in self.supervisor.status() if s["address"] == address), {"state": "?"}
        )
        if state["state"] == "FATAL":
            exits = [r["last_exit"]["description"] for r in state["replicas"] if r["last_exit"]]
            last = exits[0] if exits else "it keeps failing to start"
            return f"agent {address} is FATAL ({last}); fix it, then: axme agents restart {address}"
        if state["state"] in ("STARTING", "BACKOFF"):
            return f"agent {address} is starting ({state['state']})"
        if state["state"] == "STOPPED":
            return f"agent {address} is stopped; start it with: axme agents restart {address}"
        return f"queued for {address}: waiting for a free worker"
