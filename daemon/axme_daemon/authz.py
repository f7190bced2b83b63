"""What each principal may do: one table, checked by one layer before any handler runs.

The owner (the Unix socket, or a key in `AXME_API_KEYS`) may do everything. Any other key
needs the scope its route names in `RULES`. An agent's key (a supervised process's, or a key
with `agent:ADDRESS`) works on that agent's deliveries only: its stream, and the outcome,
steps, progress and waits of intents delivered to its own worker (403 for another agent's
intent, 409 for one delivered to another worker); it may create intents, and read and
signal the ones addressed to it or created by it. Nothing else.

The handlers ask this module for the worker, the actor and the sender a request stands for,
so none of them comes from a header or a body field a key chooses (the owner may name its
worker and act as someone else).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from axme_cli.errors import AxmeError, Conflict, Forbidden
from axme_daemon.api_body import error_answer
from axme_daemon.auth import PRINCIPAL, Principal, principal_of
from axme_daemon.finite_json import parse_json
from axme_daemon.intents import Intent
from axme_daemon.store import Store

#: Body keys that make a `/resume` a person's decision rather than an agent's outcome.
DECISION_KEYS = ("task_result", "approve_current_step", "outcome")

READ = ("intents:read",)
WRITE = ("intents:write",)
DECIDE = ("tasks:decide",)
ADMIN = ("agents:admin",)


@dataclass(frozen=True)
class Rule:
    """Who may use a route besides the owner: a key holding any of `scopes`, and an agent's
    key as `agent` says (None: not at all). `anyone`: every known key."""

    scopes: tuple[str, ...] = ()
    agent: str | None = None
    anyone: bool = False


#: (method, path, rule), first match wins. Agent rules: `create` (new intents), `list` (its
#: own address's), `own` (an intent addressed to it or created by it), `lease` (an intent
#: delivered to its worker), `reports` (`lease` for each), `stream` (its own address),
#: `heartbeat` (its own worker), `self` (any agent's key: the route acts on its own agent),
#: `inbox` (its own inbox: `owner_agent=` its address, which the handler holds it to).
#: `resume` is `lease` for an agent's outcome, and needs
#: `tasks:decide` for a person's decision (its body says which).
RULES: tuple[tuple[str, str, Rule], ...] = (
    ("GET", "/health", Rule(anyone=True)),
    ("GET", "/openapi.json", Rule(anyone=True)),
    ("GET", "/docs", Rule(anyone=True)),
    ("POST", "/v1/intents", Rule(WRITE, agent="create")),
    ("POST", "/v1/reports", Rule(agent="reports")),
    ("GET", "/v1/intents", Rule(READ, agent="list")),
    ("GET", "/v1/intents/{intent_id}", Rule(READ, agent="own")),
    ("GET", "/v1/intents/{intent_id}/events", Rule(READ, agent="own")),
    ("GET", "/v1/intents/{intent_id}/events/stream", Rule(READ, agent="own")),
    ("GET", "/v1/intents/{intent_id}/steps", Rule(READ, agent="own")),
    ("POST", "/v1/intents/{intent_id}/resolve", Rule(WRITE)),
    ("POST", "/v1/intents/{intent_id}/retry", Rule(WRITE)),
    ("POST", "/v1/intents/{intent_id}/signals/{name}", Rule(WRITE, agent="own")),
    ("POST", "/v1/intents/{intent_id}/resume", Rule(agent="resume")),
    ("POST", "/v1/intents/{intent_id}/controls", Rule(WRITE)),
    ("POST", "/v1/intents/{intent_id}/policy", Rule(WRITE)),
    ("POST", "/v1/intents/{intent_id}/steps", Rule(agent="lease")),
    ("POST", "/v1/intents/{intent_id}/progress", Rule(agent="lease")),
    ("POST", "/v1/intents/{intent_id}/waits", Rule(agent="lease")),
    ("POST", "/v1/intents/{intent_id}/compensations", Rule(agent="lease")),
    ("GET", "/v1/agents/{address:path}/intents/stream", Rule(agent="stream")),
    ("POST", "/v1/workers/{worker_id}/heartbeat", Rule(agent="heartbeat")),
    ("GET", "/v1/watch", Rule(READ)),
    ("GET", "/v1/tasks", Rule((*READ, *DECIDE))),
    ("GET", "/v1/tasks/{task_id}", Rule((*READ, *DECIDE))),
    ("GET", "/v1/me/tasks", Rule((*READ, *DECIDE))),
    ("GET", "/v1/inbox", Rule((*READ, *DECIDE), agent="inbox")),
    ("GET", "/v1/inbox/changes", Rule((*READ, *DECIDE), agent="inbox")),
    ("GET", "/v1/inbox/{thread_id}", Rule((*READ, *DECIDE), agent="inbox")),
    ("POST", "/v1/tasks/{task_id}/decision", Rule(DECIDE)),
    ("POST", "/v1/approvals/{approval_id}/decision", Rule(DECIDE)),
    ("POST", "/v1/inbox/{thread_id}/approve", Rule(DECIDE)),
    ("POST", "/v1/inbox/{thread_id}/reject", Rule(DECIDE)),
    ("POST", "/v1/scenarios/validate", Rule((*WRITE, *ADMIN))),
    # Apply provisions agents and their keys: an administrator's.
    ("POST", "/v1/scenarios/apply", Rule(ADMIN)),
    ("POST", "/v1/inbox/{thread_id}/reply", Rule(DECIDE, agent="inbox")),
    ("POST", "/v1/inbox/{thread_id}/delegate", Rule(DECIDE, agent="inbox")),
    ("POST", "/v1/inbox/{thread_id}/messages/delete", Rule(DECIDE, agent="inbox")),
    ("GET", "/v1/agents", Rule((*ADMIN, *READ))),
    ("GET", "/v1/daemons", Rule((*ADMIN, *READ))),
    ("POST", "/v1/agents", Rule(ADMIN)),
    ("POST", "/v1/projects/apply", Rule(ADMIN)),
    ("POST", "/v1/agents/{address:path}/restart", Rule(ADMIN)),
    ("GET", "/v1/agents/{address:path}", Rule((*ADMIN, *READ))),
    ("DELETE", "/v1/agents/{address:path}", Rule(ADMIN)),
    ("GET", "/v1/capabilities", Rule(anyone=True)),
    ("POST", "/v1/mesh/heartbeat", Rule(agent="self")),
    ("GET", "/v1/mesh/agents", Rule((*ADMIN, *READ))),
    ("GET", "/v1/mesh/agents/{address_id:path}", Rule((*ADMIN, *READ))),
    ("POST", "/v1/mesh/agents/{address_id:path}/kill", Rule(ADMIN)),
    ("POST", "/v1/mesh/agents/{address_id:path}/resume", Rule(ADMIN)),
    # /v1/keys and anything not listed: the owner only.
)

_COMPILED: dict[str, list[tuple[re.Pattern[str], Rule]]] = {}
for _method, _path, _rule in RULES:
    _COMPILED.setdefault(_method, []).append((compile_path(_path)[0], _rule))
_OWNER_ONLY = Rule()


def rule_for(method: str, path: str) -> tuple[Rule, dict[str, str]]:
    for pattern, rule in _COMPILED.get(method, ()):
        match = pattern.match(path)
        if match:
            return rule, match.groupdict()
    return _OWNER_ONLY, {}


def _refuse(principal: Principal, rule: Rule, what: str) -> Forbidden:
    if rule.scopes:
        needed = " or ".join(rule.scopes)
        return Forbidden(
            f"key {principal.name!r} lacks the scope {needed} needed for {what}",
            details={"scope": list(rule.scopes), "key": principal.name},
        )
    if rule.agent == "self":
        return Forbidden(
            f"{what} is for an agent's own key; key {principal.name!r} is no agent's",
            details={"key": principal.name},
        )
    if rule.agent in ("lease", "reports", "resume", "stream", "heartbeat"):
        return Forbidden(
            f"{what} is for the agent the intent is delivered to (its own key) "
            f"or the owner; key {principal.name!r} is neither",
            details={"key": principal.name},
        )
    return Forbidden(
        f"{what} is for the owner only (the Unix socket or a key in AXME_API_KEYS)",
        details={"key": principal.name},
    )


def _not_its_intent(principal: Principal, intent: Intent) -> Forbidden:
    return Forbidden(
        f"intent {intent.intent_id} is not {principal.address}'s: an agent's key works on "
        "intents addressed to its agent (and reads and signals the ones it sent)",
        details={"intent_id": intent.intent_id, "agent": principal.address},
    )


def _check_lease(principal: Principal, intent: Intent) -> None:
    if intent.to_agent != principal.address:
        raise _not_its_intent(principal, intent)
    if intent.lease_worker != principal.worker_id:
        raise Conflict(
            f"intent {intent.intent_id} is not delivered to this worker",
            details={"intent_id": intent.intent_id, "code_reason": "not_leased"},
        )


class _Check:
    """One request's check; reads the body (and gives it back) only for the routes whose
    body says what is asked: `/resume` (an outcome or a decision), `/v1/reports` (intents)."""

    def __init__(self, store: Store, scope: Scope, receive: Receive, principal: Principal):
        self.store = store
        self.scope = scope
        self.receive = receive
        self.principal = principal
        self.body: bytes | None = None

    async def json_body(self) -> Any:
        chunks = []
        while True:
            message = await self.receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body") or message["type"] != "http.request":
                break
        self.body = b"".join(chunks)
        try:
            return parse_json(self.body)
        except (ValueError, AxmeError):
            return None  # the handler words the error

    def replay(self) -> Receive:
        if self.body is None:
            return self.receive
        pending: list[Message] = [{"type": "http.request", "body": self.body, "more_body": False}]

        async def receive() -> Message:
            return pending.pop() if pending else await self.receive()

        return receive

    async def run(self, how: str, params: dict[str, str]) -> None:
        """Raise unless the agent may."""
        me = self.principal
        if how in ("create", "self"):
            return  # `bound_sender` binds its from_agent; `self` acts on its own agent
        if how == "list":
            query = parse_qs(self.scope.get("query_string", b"").decode())
            if query.get("to_agent") != [me.address]:
                raise Forbidden(
                    f"an agent's key lists only its own intents: add to_agent={me.address}",
                    details={"agent": me.address},
                )
            return
        if how == "stream":
            from axme_daemon.api_workers import normalize_address

            if normalize_address(params["address"]) != me.address:
                raise Forbidden(
                    f"an agent's key streams only its own deliveries ({me.address})",
                    details={"agent": me.address},
                )
            return
        if how == "inbox":
            from axme_daemon.api_inbox import inbox_address

            query = parse_qs(self.scope.get("query_string", b"").decode())
            named = query.get("owner_agent", [None])[-1]
            if named is None or inbox_address(named, "owner_agent") != me.address:
                raise Forbidden(
                    f"an agent's key uses only its own inbox: add owner_agent={me.address}",
                    details={"agent": me.address},
                )
            return
        if how == "heartbeat":
            if params["worker_id"] != me.worker_id:
                raise Forbidden("an agent's key keeps only its own worker's leases")
            return
        if how == "reports":
            body = await self.json_body()
            parts = body.get("reports") if isinstance(body, dict) else None
            ids = [p["intent_id"] for p in parts or () if isinstance(p, dict) and "intent_id" in p]
            for each in await self.store.get_intents(i for i in ids if isinstance(i, str)):
                _check_lease(me, each)
            return
        intent = await self.store.get_intent(params["intent_id"])
        if intent is None:
            return  # the handler answers 404
        if how == "lease":
            _check_lease(me, intent)
        elif me.address not in (intent.to_agent, intent.from_agent):
            raise _not_its_intent(me, intent)


class Authorize:
    """Check a TCP request against `RULES` before any handler; a socket request (the owner)
    passes untouched. Sits inside the body limit, so a body it reads is limited too."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal: Principal | None = scope.get(PRINCIPAL)
        if principal is None or principal.owner or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        check = _Check(self.store, scope, receive, principal)
        try:
            await self._check(check, scope["method"], scope["path"])
        except AxmeError as exc:
            await error_answer(exc)(scope, receive, send)
            return
        await self.app(scope, check.replay(), send)

    async def _check(self, check: _Check, method: str, path: str) -> None:
        rule, params = rule_for(method, path)
        if rule.anyone:
            return
        principal = check.principal
        if rule.agent == "resume":  # a person's decision, or an agent's outcome
            body = await check.json_body()
            decision = isinstance(body, dict) and any(k in body for k in DECISION_KEYS)
            rule = Rule(DECIDE) if decision else Rule(agent="lease")
        if principal.scopes.intersection(rule.scopes):
            return
        if rule.agent is not None and principal.address is not None:
            try:
                await check.run(rule.agent, params)
            except Forbidden as exc:
                if rule.scopes:  # name what would open it, as for any other key
                    exc.message += f" (beyond that, it needs the scope {' or '.join(rule.scopes)})"
                    exc.details["scope"] = list(rule.scopes)
                raise
            return
        raise _refuse(principal, rule, f"{method} {path}")


# -- what handlers ask ---------------------------------------------------------------------


def worker_of(request: Request, address: str | None = None) -> str | None:
    """The worker a request comes from: on the socket, the one it names (`X-Axme-Worker`,
    axme's own SDK); on TCP, the one the daemon bound to its key, whatever it sends.

    An owner's key (`AXME_API_KEYS`, the local key) is one worker per `address` it streams,
    so one AXME program may listen as several agents with one key; its other requests are
    the owner's, bound to no worker's lease (as on the socket without `X-Axme-Worker`)."""
    principal: Principal | None = request.scope.get(PRINCIPAL)
    if principal is None:
        named = Headers(scope=request.scope).get("x-axme-worker")
        return named[:200] if named else None
    if principal.owner:
        return f"{principal.worker_id}@{address}" if address else None
    return principal.worker_id


def actor_of(request: Request, claimed: str | None) -> str:
    """Who a decision (or a cancel, a retry) is recorded as: the key's name, or the owner's
    user name unless the owner acts as `claimed`."""
    principal = principal_of(request.scope)
    if principal.owner:
        return claimed or principal.name
    if claimed and claimed != principal.name:
        raise Forbidden(
            f"actor: key {principal.name!r} acts as itself; only the owner may act as someone else",
            details={"key": principal.name},
        )
    return principal.name


def bound_sender(request: Request, claimed: str | None) -> str | None:
    """The `from_agent` of an intent an agent's key creates: always its own agent."""
    principal = principal_of(request.scope)
    if principal.address is None or principal.owner:
        return claimed
    if claimed and claimed != principal.address:
        raise Forbidden(
            f"from_agent: an agent's key sends as its own agent ({principal.address})",
            details={"agent": principal.address},
        )
    return principal.address
