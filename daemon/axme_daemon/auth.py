"""Who is asking: the principal behind each request, and the keys of the TCP listener.

The Unix socket (mode 0600: only its owner can open it) is the owner, with full authority.
On the loopback TCP listener every request carries a key (`x-api-key`, or `Authorization:
Bearer`), and is the principal that key stands for:

- the key the supervisor made for one agent process (its `AXME_API_KEY`): that agent's worker;
- a key made by `axme keys create NAME --scope ...`: its name and scopes (the store keeps only
  its sha256, so the database holds nothing that would let a reader use it);
- a key listed in `AXME_API_KEYS`: the owner (kept for compatibility);
- the daemon's local key: the owner, made when the daemon starts and kept only in its memory,
  told only to the socket's owner (`axme daemon status`), so that a program written for AXME
  (`AxmeClientConfig(base_url=..., api_key=...)`) can be pointed at the daemon at once; it
  changes each time the daemon starts.

An unknown key is a 401 (`invalid_platform_api_key`). What each principal may do is
`authz`'s table. Keys never appear in a log or an error message.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from axme_cli.errors import BadInput, NotFound, Unauthorized
from axme_cli.protocol import AGENT_ADDRESS_RE
from axme_daemon.api_body import error_answer
from axme_daemon.store import Store

#: Where a request's principal sits in its ASGI scope. Requests on the Unix socket have
#: none: they are the owner's, and pay nothing for it.
PRINCIPAL = "axme.principal"

#: The scopes a key may hold; `agent:ADDRESS` makes it a worker of that agent.
SCOPES = ("intents:read", "intents:write", "tasks:decide", "agents:admin")
AGENT_SCOPE = "agent:"

KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Principal:
    """One request's authority. `name` is the actor recorded for what it decides."""

    name: str
    owner: bool = False
    scopes: frozenset[str] = field(default_factory=frozenset)
    #: The agent whose deliveries this principal works on, and the worker it is: bound by
    #: the daemon to the key, never taken from a header.
    address: str | None = None
    worker_id: str | None = None


#: The owner on the Unix socket (the daemon runs as the socket's owner).
OWNER = Principal(name=os_user(), owner=True)


def principal_of(scope: Scope) -> Principal:
    principal: Principal | None = scope.get(PRINCIPAL)
    return OWNER if principal is None else principal


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def presented_key(headers: Headers) -> str:
    key = headers.get("x-api-key") or ""
    auth = headers.get("authorization") or ""
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes as given, in order, without repeats; `BadInput` naming a wrong one."""
    out: list[str] = []
    agents = 0
    for scope in scopes:
        if scope.startswith(AGENT_SCOPE):
            agents += 1
            if not AGENT_ADDRESS_RE.match(scope.removeprefix(AGENT_SCOPE)):
                raise BadInput(f"scope: {scope!r} is not agent:agent://org/env/name")
        elif scope not in SCOPES:
            known = ", ".join((*SCOPES, "agent:ADDRESS"))
            raise BadInput(f"scope: unknown scope {scope!r} (one of {known})")
        if scope not in out:
            out.append(scope)
    if not out:
        raise BadInput("scope: at least one is required")
    if agents > 1:
        raise BadInput("scope: a key works for one agent at most (one agent:ADDRESS)")
    return out


def _named(name: str, scopes: list[str]) -> Principal:
    address = next((s.removeprefix(AGENT_SCOPE) for s in scopes if s.startswith(AGENT_SCOPE)), None)
    return Principal(
        name=name,
        scopes=frozenset(s for s in scopes if not s.startswith(AGENT_SCOPE)),
        address=address,
        worker_id=f"key-{name}" if address else None,
    )


class KeyRing:
    """Every key the TCP listener knows, in memory (a lookup costs no store read)."""

    def __init__(self, store: Store, static_keys: str | None = None) -> None:
        self.store = store
        self._workers: dict[str, Principal] = {}  # per-process keys, live with the process
        self._hashed: dict[str, Principal] = {}  # sha256 → named key or AXME_API_KEYS key
        raw = os.environ.get("AXME_API_KEYS", "") if static_keys is None else static_keys
        hashes = {key_hash(k.strip()) for k in raw.split(",") if k.strip()}
        #: The owner's key for programs on the TCP listener; see the module's docstring.
        self.local_key = "axme_local_" + secrets.token_urlsafe(32)
        hashes.add(key_hash(self.local_key))
        self._static = {
            h: Principal(name=OWNER.name, owner=True, worker_id=f"key-{h[:16]}") for h in hashes
        }

    async def load(self) -> None:
        """The named keys from the store (the daemon is their only writer from then on)."""
        self._hashed = dict(self._static)
        for row in await self.store.list_api_keys():
            self._hashed[row["key_hash"]] = _named(row["name"], row["scopes"])

    def lookup(self, key: str) -> Principal | None:
        return self._workers.get(key) or self._hashed.get(key_hash(key))

    def agent_addresses(self) -> set[str]:
        """The agents that named keys (`agent:ADDRESS`) work for."""
        return {p.address for p in self._hashed.values() if p.address is not None}

    def learn(self, name: str, digest: str, scopes: list[str]) -> None:
        """A key the store took in another write (a scenario's agents)."""
        self._hashed[digest] = _named(name, scopes)

    def add_worker(self, key: str, worker_id: str, address: str) -> None:
        self._workers[key] = Principal(name=address, address=address, worker_id=worker_id)

    def drop_worker(self, key: str) -> None:
        self._workers.pop(key, None)

    async def create(self, name: str, scopes: list[str]) -> tuple[str, dict[str, Any]]:
        """A new key for `name`: the key itself (shown once, never stored) and its record."""
        if not KEY_NAME_RE.match(name):
            raise BadInput(f"name: {name!r} must be 1 to 64 letters, digits, '.', '_', '@' or '-'")
        scopes = check_scopes(scopes)
        key = "axme_" + secrets.token_urlsafe(32)
        digest = key_hash(key)
        record = await self.store.put_api_key(name, digest, scopes)
        self._hashed[digest] = _named(name, scopes)
        return key, record

    async def list(self) -> list[dict[str, Any]]:
        return [
            {"name": r["name"], "scopes": r["scopes"], "created_at": r["created_at"]}
            for r in await self.store.list_api_keys()
        ]

    async def revoke(self, name: str) -> None:
        """Forget the key: from now on it is unknown (401)."""
        if not await self.store.delete_api_key(name):
            raise NotFound(f"no key named {name!r} (axme keys list)", details={"name": name})
        self._hashed = {h: p for h, p in self._hashed.items() if p.owner or p.name != name}


class TcpEdge:
    """The TCP listener's first layer: a known key, or 401 before anything else runs."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            key = presented_key(Headers(scope=scope))
            principal = self.keys.lookup(key) if key else None
            if principal is None:
                message = "unknown API key" if key else "an API key is required (x-api-key header)"
                await error_answer(Unauthorized(message))(scope, receive, send)
                return
            scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)
