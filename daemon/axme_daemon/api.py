"""The HTTP API: AXME's /v1 intent paths plus `/health`, over FastAPI.

No SQL and no process work here: routes validate, call the engine, and shape responses. Every
error leaves as `{"error": {"code", "message", "details"}, "detail": message}` with the
status the AXME SDK maps to its exception types.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from axme_cli import __version__
from axme_cli.errors import AxmeError, PayloadTooLarge, ValidationFailed
from axme_cli.protocol import DEFAULT_MAX_DELIVERY_ATTEMPTS, IntentStatus
from axme_daemon.api_agents import add_agent_routes
from axme_daemon.api_body import (
    FiniteJsonRoute,
    body_of,
    document_bodies,
    error_answer,
    error_response,
    json_answer,
    read_body,
)
from axme_daemon.api_daemons import add_daemon_routes
from axme_daemon.api_direct import DirectRoutes, Endpoint
from axme_daemon.api_inbox import add_inbox_routes, completion_delivery
from axme_daemon.api_keys import add_key_routes
from axme_daemon.api_platform import add_platform_routes
from axme_daemon.api_scenarios import add_scenario_routes, known_agents
from axme_daemon.api_tasks import WaitRequest, add_task_routes
from axme_daemon.api_watch import add_watch_routes
from axme_daemon.api_workers import Reports, add_worker_routes
from axme_daemon.auth import PRINCIPAL, KeyRing
from axme_daemon.authz import Authorize, actor_of, bound_sender
from axme_daemon.config import DaemonSettings
from axme_daemon.engine import Engine
from axme_daemon.events import KeepAlive, StreamTimeout
from axme_daemon.holds import StreamLimits, limits
from axme_daemon.intents import Intent, NewIntent, compact_json, request_hash
from axme_daemon.models import CreateIntent, ResolveIntent
from axme_daemon.registry import Registry
from axme_daemon.store import IntentFilter, shown_url
from axme_daemon.trace import TraceEcho

#: Largest `since` accepted: SQLite integers are 64-bit.
MAX_SEQ = 2**62

MAX_IDEMPOTENCY_KEY = 200
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Send again with the same key and body to get the first answer back.",
    "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
}

#: The routes every intent goes through, served by `DirectRoutes`; each endpoint takes
#: only the request.
DIRECT = {("POST", "/v1/intents"), ("POST", "/v1/reports")}

log = logging.getLogger(__name__)

_WAITING_WORDS = {
    "WAITING_FOR_HUMAN": "waiting for a person to decide (axme inbox; axme approve {id})",
    "WAITING_FOR_TIME": "sleeping until its timer fires",
    "WAITING_FOR_TOOL": "waiting for signal {name} (axme signal {id} {name})",
    "WAITING_FOR_AGENT": "waiting for a child intent to finish",
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
}


def _describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    """One message naming each wrong field, e.g. `payload: must be a JSON object`."""
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            return 400, "invalid_json", f"request body is not valid JSON: {ctx.get('error', '')}"
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in {"body", "query", "path", "header"}]
        where = ".".join(loc)
        kind = err.get("type")
        msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        if kind == "missing":
            msg = "is required"
        elif kind in {"dict_type", "model_attributes_type", "model_type"}:
            msg = "must be a JSON object"
        elif kind == "enum":
            expected = (err.get("ctx") or {}).get("expected", "")
            msg = f"must be one of {expected}".replace("'", "")
        if not where:
            parts.append(f"request body {msg}")
        elif msg.startswith(where):
            parts.append(msg)
        else:
            parts.append(f"{where}: {msg}")
    return 422, "validation_error", "; ".join(parts) or "invalid request"


class BodyLimit:
    """Answer 413 in our error shape for a body over the limit, before reading it all."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"request body is larger than the limit of {self.limit} bytes "
            "(set AXME_MAX_PAYLOAD_BYTES or --max-payload-bytes to change it)",
            details={"limit_bytes": self.limit},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await error_answer(self._error())(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise self._error()
            return message

        await self.app(scope, limited, send)


def attach_registry(app: FastAPI, registry: Registry) -> None:
    """Add the agent registry to an app built before the registry existed."""
    app.state.registry = registry
    add_agent_routes(app, registry)


def create_app(
    engine: Engine,
    settings: DaemonSettings,
    keys: KeyRing | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    """The API as the owner sees it on the Unix socket; the TCP listener wraps it in
    `auth.TcpEdge`, and `authz.Authorize` (inside) checks what each key may do."""
    started = time.time()
    app = FastAPI(
        title="axme daemon",
        version=__version__,
        description="Durable intents for agent work: the AXME Intent Protocol on a local socket.",
        # No OpenTelemetry here: it would look its providers up on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.router.route_class = FiniteJsonRoute  # bodies FastAPI reads: no NaN, no Infinity
    direct: dict[tuple[str, str], Endpoint] = {}
    app.add_middleware(DirectRoutes, routes=direct, handlers=app.exception_handlers)
    app.add_middleware(Authorize, store=engine.store)
    app.add_middleware(BodyLimit, limit=settings.max_payload_bytes)
    app.add_middleware(TraceEcho)
    app.state.stream_limits = StreamLimits(settings.stream_caps)

    @app.exception_handler(AxmeError)
    async def _axme_error(request: Request, exc: AxmeError) -> JSONResponse:
        return error_answer(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = f"internal error: {type(exc).__name__}: {exc} (details in the daemon log)"
        return error_response(500, "internal_error", message)

    async def _store_error(request: Request, exc: Exception) -> JSONResponse:
        known = engine.store.translate_error(exc)  # a damaged file, a full disk
        if known is None:
            return await _unexpected(request, exc)
        return error_response(known.http_status, known.code, known.message)

    for error_type in engine.store.error_types:  # answered here, not by the 500 middleware
        app.add_exception_handler(error_type, _store_error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _describe_validation(exc)
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, AxmeError):  # e.g. the body limit hit while parsing
            return error_answer(exc.__cause__)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        else:
            message = str(exc.detail)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, message)

    app.state.registry = registry

    ring = keys if keys is not None else KeyRing(engine.store)

    async def _daemons() -> dict[str, Any]:
        """This daemon's id and lease grace; on a store daemons share, how many of them are
        registered and how many heartbeat within their grace (this one included)."""
        store = engine.store
        out: dict[str, Any] = {
            "daemon_id": store.daemon.daemon_id if store.daemon else None,
            "lease_grace": settings.lease_grace,
        }
        if store.shared:
            try:
                found = await store.list_daemons()
            except store.error_types:  # the server is away: /health still answers
                return out
            live = sum(1 for d in found if d["live"])
            out["daemons"] = {"live": live, "registered": len(found)}
        return out

    @app.get("/health", tags=["daemon"])
    async def health(request: Request) -> dict[str, Any]:
        stats = engine.store.stats()
        problem = engine.store.problem()
        tcp = getattr(app.state, "tcp_url", None)
        # The local key goes only to the socket's owner, and only while a listener takes it.
        local = tcp is not None and PRINCIPAL not in request.scope
        return {
            "ok": problem is None,
            **({"problem": problem} if problem else {}),
            "service": "axme",
            "version": __version__,
            "pid": settings.pid,
            "home": str(settings.paths.home),
            "socket": str(settings.paths.socket),
            "tcp": tcp,
            **({"api_key": ring.local_key} if local else {}),
            "database": shown_url(settings.database_url),
            **(await _daemons()),
            "uptime_seconds": round(time.time() - started, 3),
            "store": {"commits": stats.commits, "writes": stats.writes, "syncs": stats.syncs},
            "streams": engine.hub.subscribers,
            "held_streams": app.state.stream_limits.describe(),
        }

    @app.post(
        "/v1/intents",
        tags=["intents"],
        openapi_extra={**body_of(CreateIntent), "parameters": [IDEMPOTENCY_KEY]},
    )
    async def create_intent(request: Request) -> Response:
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise ValidationFailed(
                f"idempotency-key: must be at most {MAX_IDEMPOTENCY_KEY} characters"
            )
        body = await read_body(request, CreateIntent)
        fields = body.model_dump()
        if body.human_task is not None:
            from axme_daemon.tasks import TaskSpec

            try:
                TaskSpec(**body.human_task)
            except ValidationError as exc:
                raise ValidationFailed(
                    "human_task: "
                    + "; ".join(
                        f"{'.'.join(str(p) for p in e['loc']) or 'task'}: "
                        f"{str(e['msg']).removeprefix('Value error, ')}"
                        for e in exc.errors()
                    )
                ) from None
        fields["from_agent"] = bound_sender(request, body.from_agent)
        engine.mesh.check_open(body.to_agent, fields["from_agent"])
        attempts = fields.pop("max_delivery_attempts")
        asked_first = fields.pop("agent_first")
        if attempts is None:
            reg: Registry | None = app.state.registry
            spec = reg.specs.get(body.to_agent) if reg else None
            attempts = spec.max_delivery_attempts if spec else DEFAULT_MAX_DELIVERY_ATTEMPTS
        new = NewIntent(
            **fields,
            max_delivery_attempts=attempts,
            idempotency_key=idempotency_key or None,
            # correlation_id is per-call metadata (the SDK makes a new one each send), so
            # it does not count when telling a replay from a reused key.
            request_hash=request_hash(
                {k: v for k, v in body.model_dump().items() if k != "correlation_id"}
            )
            if idempotency_key
            else None,
        )
        # AXME's order: an agent with a human_task works first, then the person decides.
        agent_first = new.human_task is not None and (
            asked_first
            if asked_first is not None
            else new.to_agent in await known_agents(request, engine, new.to_agent)
        )
        intent, created = await engine.create(new, agent_first=agent_first)
        return json_answer(
            {
                "ok": True,
                "intent_id": intent.intent_id,
                "status": intent.status.value,
                "created_at": intent.created_at,
                "idempotent_replay": not created,
                "intent": intent.to_wire(),
            }
        )

    @app.get("/v1/intents", tags=["intents"])
    async def list_intents(
        status: IntentStatus | None = None,
        to_agent: str | None = None,
        intent_type: str | None = None,
        id_prefix: Annotated[str | None, Query(max_length=36, pattern=r"^[0-9a-f-]+$")] = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Newest first; `q` matches an id prefix or part of the type or the agent."""
        page = await engine.list_intents(
            IntentFilter(status, to_agent, intent_type, id_prefix, q or None), limit, cursor
        )
        return {
            "ok": True,
            "intents": [i.to_wire() for i in page.intents],
            "next_cursor": page.next_cursor,
        }

    async def _awaited_signal(intent: Intent) -> str | None:
        """The signal a waiting intent waits for, from its latest wait's event (a few events
        back at most: what came after it are signals of other names and reminders)."""
        for event in reversed(await engine.events(intent.intent_id, max(0, intent.last_seq - 20))):
            if event.status is IntentStatus.WAITING and event.event_type == "intent.waiting":
                name = (event.details or {}).get("signal")
                return shlex.quote(str(name)) if name else None
        return None

    @app.get("/v1/intents/{intent_id}", tags=["intents"])
    async def get_intent(intent_id: str) -> dict[str, Any]:
        intent = await engine.get(intent_id)
        wire = intent.to_wire()
        reg: Registry | None = app.state.registry
        if intent.status is IntentStatus.SUBMITTED and reg is not None:
            wire["pending_reason"] = reg.pending_reason(intent.to_agent)
        elif intent.status is IntentStatus.WAITING:
            name = "NAME"
            if intent.waiting_reason == "WAITING_FOR_TOOL":
                name = await _awaited_signal(intent) or name
            wire["pending_reason"] = _WAITING_WORDS.get(
                intent.waiting_reason or "", "waiting"
            ).format(id=intent.intent_id[:8], name=name)
        workflow = await engine.workflow(intent_id)
        if workflow is not None:
            wire["scenario"] = workflow
            if not intent.status.is_final and workflow.get("pending_with"):
                wire["pending_with"] = workflow["pending_with"]
        # Some AXME clients read the intent at top level, others under "intent".
        return {"ok": True, **wire, "intent": wire}

    @app.get("/v1/intents/{intent_id}/events", tags=["events"])
    async def list_events(
        intent_id: str, since: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0
    ) -> dict[str, Any]:
        events = await engine.events(intent_id, since)
        return {"ok": True, "events": [e.to_wire() for e in events]}

    @app.get("/v1/intents/{intent_id}/events/stream", tags=["events"])
    async def stream_events(
        request: Request,
        intent_id: str,
        since: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        wait_seconds: Annotated[float, Query(ge=0, le=3600)] = 15,
    ) -> StreamingResponse:
        """Server-sent events after `since`, held `wait_seconds`, then `stream.timeout`.

        The stream ends right after a final event (COMPLETED, FAILED, CANCELED, TIMED_OUT).
        """
        await engine.get(intent_id)

        async def frames() -> AsyncIterator[bytes]:
            async for item in engine.follow(intent_id, since, wait_seconds):
                if isinstance(item, KeepAlive):
                    yield KEEPALIVE_COMMENT
                elif isinstance(item, StreamTimeout):
                    data = json.dumps({"ok": True, "next_seq": item.next_seq})
                    yield format_sse_event(event="stream.timeout", data_str=data)
                else:
                    data = compact_json(item.to_wire())
                    yield format_sse_event(event=item.event_type, data_str=data, id=str(item.seq))

        return limits(request).respond("events", frames())

    @app.post("/v1/intents/{intent_id}/resolve", tags=["intents"])
    async def resolve_intent(
        request: Request, intent_id: str, body: ResolveIntent
    ) -> dict[str, Any]:
        intent, event = await engine.resolve(
            intent_id,
            body.status,
            actor=actor_of(request, body.actor),
            result=body.result,
            error=body.error,
            reason=body.reason,
        )
        delivery = completion_delivery(await engine.store.inbox_thread(intent_id))
        return {
            "ok": True,
            "intent": intent.to_wire(),
            "event": event.to_wire(),
            "completion_delivery": delivery,
        }

    # Routes are added to the app itself, not included as routers: FastAPI matches an
    # included router's routes through a per-request wrapper that cost more than the rest
    # of a small request. The busiest (intents) come first; agent routes come last, since
    # their address takes any path.
    add_worker_routes(app, engine)
    add_task_routes(app, engine)
    add_inbox_routes(app, engine)
    add_watch_routes(app, engine)
    app.state.keys = ring
    add_key_routes(app, ring)
    add_daemon_routes(app, engine)
    add_platform_routes(app, engine.mesh, ring)
    add_scenario_routes(app, engine, settings)
    if registry is not None:
        add_agent_routes(app, registry)
    document_bodies(app, CreateIntent, Reports, WaitRequest)
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in route.methods or ():
                if (method, route.path) in DIRECT:
                    direct[method, route.path] = route.endpoint
    return app
