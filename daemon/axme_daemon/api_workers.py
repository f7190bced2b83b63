"""What agents use: the AXME agent stream, `/resume`, and axme's step and progress records.

A worker is who `authz.worker_of` says: on the Unix socket the one it names (`X-Axme-Worker`,
axme's own SDK), on TCP the one the daemon bound to its key (the supervisor's per-process key).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event
from pydantic import BaseModel, Field, ValidationError

from axme_cli.errors import AxmeError, BadInput, ValidationFailed
from axme_cli.protocol import agent_address
from axme_daemon.api_body import body_of, json_answer, read_body
from axme_daemon.authz import actor_of, worker_of
from axme_daemon.delivery import CancelNotice, Delivery
from axme_daemon.engine import Engine
from axme_daemon.events import KeepAlive, StreamTimeout
from axme_daemon.holds import limits
from axme_daemon.intents import Intent, StepFailure, Undoable, compact_json
from axme_daemon.store import WorkerReport


def normalize_address(raw: str) -> str:
    """`agent://org/env/name`, `org/env/name` (AXME SDK paths) or a bare name."""
    try:
        return agent_address(raw)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


class StepError(BaseModel):
    """What a step raised: enough for a replay to raise it again (axme's SDK rebuilds the
    exception from `module`, `qualname` and `args` when it can)."""

    type: str = Field(min_length=1, max_length=300)
    message: str = Field(max_length=20_000)
    module: str | None = Field(default=None, max_length=300)
    qualname: str | None = Field(default=None, max_length=300)
    args: list[Any] | None = Field(default=None, max_length=100)
    traceback: str | None = Field(default=None, max_length=20_000)


class StepRecord(BaseModel):
    ordinal: int = Field(ge=1, le=1_000_000)
    key: str = Field(min_length=1, max_length=300)
    result: Any = None
    #: Set when the step raised and the handler went on (then `result` is ignored).
    error: StepError | None = None
    #: The name of the step's compensation: run (last step first) if the intent does not
    #: complete.
    compensate: str | None = Field(default=None, min_length=1, max_length=300)


class CompensationRecord(BaseModel):
    """What became of one compensation: it ran (`ok`, its `result`), or it kept failing
    (`error`, after `attempts`)."""

    key: str = Field(min_length=1, max_length=300)
    ok: bool
    result: Any = None
    error: StepError | None = None
    attempts: int = Field(default=1, ge=1, le=10_000)


class StepBatch(BaseModel):
    steps: list[StepRecord] = Field(min_length=1, max_length=1000)


class Outcome(BaseModel):
    """How a delivery ended, as `/resume` takes it (`complete` or `fail`)."""

    action: Literal["complete", "fail"]
    result: Any = None
    error: Any = None
    retryable: bool = False


class Report(BaseModel):
    """One intent's part of a worker's report: step records, then (optionally) its outcome."""

    intent_id: str = Field(min_length=1, max_length=100)
    steps: list[StepRecord] = Field(default_factory=list, max_length=1000)
    outcome: Outcome | None = None
    #: The handler started: a DELIVERED intent is IN_PROGRESS from now (any report says so;
    #: this one says only that, for a handler whose first step takes a while).
    started: bool = False


class Reports(BaseModel):
    reports: list[Report] = Field(min_length=1, max_length=1000)


class ProgressRecord(BaseModel):
    message: str = Field(min_length=1, max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict)


class RetryRequest(BaseModel):
    actor: str | None = Field(default=None, max_length=200)


#: Keys of a `/resume` body that say how to fail, not what failed.
_FAIL_KEYS = ("action", "error", "retryable", "step_records")


def _error_of(body: dict[str, Any]) -> dict[str, Any]:
    """The error a failure records: `error` (an object, or its message), else `reason`; the
    body's other keys (AXME agents send e.g. `failures` beside `reason`) are kept in it."""
    error = body.get("error")
    if isinstance(error, dict):
        out = dict(error)
    elif error is not None:
        out = {"message": str(error)}
    else:
        out = {"message": str(body.get("reason") or "the agent reported a failure")}
    for key, value in body.items():
        if key not in _FAIL_KEYS:
            out.setdefault(key, value)
    return out


def _step_records(raw: Any) -> list[tuple[int, str, Any]]:
    """`step_records` of a completion: steps the worker sends with its outcome (axme's SDK
    batches them rather than sending one request per step)."""
    if raw is None:
        return []
    try:
        batch = StepBatch(steps=raw)
    except ValidationError as exc:
        raise ValidationFailed(f"step_records: {exc.errors()[0]['msg']}") from None
    return _inputs(batch.steps)


def _inputs(steps: list[StepRecord]) -> list[tuple[int, str, Any]]:
    return [(s.ordinal, s.key, _step_value(s)) for s in steps]


def _step_value(step: StepRecord) -> Any:
    if step.error is not None:
        return StepFailure(step.error.model_dump(exclude_none=True))
    if step.compensate is not None:
        return Undoable(step.result, step.compensate)
    return step.result


async def _fail(engine: Engine, report: Report, worker_id: str | None) -> Intent | AxmeError:
    assert report.outcome is not None
    try:
        if report.steps:
            await engine.record_steps(report.intent_id, _inputs(report.steps), worker_id)
        error = _error_of({"error": report.outcome.error})
        retryable = report.outcome.retryable
        return await engine.fail(report.intent_id, error, retryable=retryable, worker_id=worker_id)
    except AxmeError as exc:
        return exc


def _answer(intent_id: str, outcome: Intent | AxmeError | None) -> dict[str, Any]:
    if isinstance(outcome, AxmeError):
        return {
            "intent_id": intent_id,
            "ok": False,
            "status_code": outcome.http_status,
            "error": {"code": outcome.code, "message": outcome.message, "details": outcome.details},
        }
    if outcome is None:
        return {"intent_id": intent_id, "ok": True}
    return {"intent_id": intent_id, "ok": True, "status": outcome.status.value}


def add_worker_routes(app: FastAPI, engine: Engine) -> None:

    @app.get("/v1/agents/{address:path}/intents/stream", tags=["agents"])
    async def agent_stream(
        request: Request,
        address: str,
        since: Annotated[int, Query(ge=0, le=2**62)] = 0,
        wait_seconds: Annotated[float, Query(ge=0, le=3600)] = 15,
        max_in_flight: Annotated[int | None, Query(ge=1, le=1024)] = None,
        status: str | None = None,
        notices: bool = False,
    ) -> StreamingResponse:
        """Deliveries for one worker, as server-sent `intent.delivered` events.

        `seq` is the agent's delivery cursor: `since=0` replays what this worker holds and
        is not finished. Each delivery is leased to the worker until it resumes the intent.
        With `notices=true` (axme's SDK), `intent.cancel_requested` tells the worker that a
        cancel was asked of an intent it runs.
        """
        target = normalize_address(address)
        engine.mesh.check_open(target)
        worker_id = worker_of(request, target) or f"anon-{uuid.uuid4().hex[:12]}"
        # Refused (this worker serves another address) as JSON before the stream starts:
        # once its first byte is out, an error can only cut the connection.
        engine.dispatcher.register(
            worker_id, target, supervised=False, limit=max_in_flight or 1, pid=None
        )

        async def frames() -> AsyncIterator[bytes]:
            async for item in engine.dispatcher.stream(
                target,
                worker_id,
                since=since,
                wait_seconds=wait_seconds,
                limit=max_in_flight,
                notices=notices,
            ):
                if isinstance(item, CancelNotice):
                    data = json.dumps({"intent_id": item.intent_id})
                    yield format_sse_event(event="intent.cancel_requested", data_str=data)
                elif isinstance(item, KeepAlive):
                    yield KEEPALIVE_COMMENT
                elif isinstance(item, StreamTimeout):
                    data = json.dumps({"ok": True, "next_seq": item.next_seq})
                    yield format_sse_event(event="stream.timeout", data_str=data)
                elif isinstance(item, Delivery):
                    wire = item.to_wire()
                    data = compact_json(wire)
                    yield format_sse_event(
                        event="intent.delivered", data_str=data, id=str(wire["seq"])
                    )

        return limits(request).respond("agent", frames())

    @app.post("/v1/intents/{intent_id}/resume", tags=["intents"])
    async def resume_intent(
        request: Request, intent_id: str, body: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        """An agent's outcome: `action: complete` (with `result`, or the other keys as the
        result) or `action: fail` (with `error`, and `retryable: true` to be redelivered)."""
        worker_id = worker_of(request)
        if any(k in body for k in ("task_result", "approve_current_step", "outcome")):
            from axme_daemon.api_tasks import decide_resume

            return await decide_resume(request, engine, intent_id, body)
        action = body.get("action", "complete")
        if action == "complete":
            if "result" in body:
                result = body["result"]
                steps = _step_records(body.get("step_records"))
            else:
                result = {k: v for k, v in body.items() if k != "action"} or None
                steps = []
            intent = await engine.complete(intent_id, result, worker_id, steps)
        elif action == "fail":
            retryable = body.get("retryable", False)
            if not isinstance(retryable, bool):
                raise ValidationFailed("retryable: must be true or false")
            intent = await engine.fail(
                intent_id, _error_of(body), retryable=retryable, worker_id=worker_id
            )
        else:
            raise ValidationFailed(f"action: must be complete or fail, got {action!r}")
        return {"ok": True, "applied": True, "intent": intent.to_wire()}

    @app.post("/v1/intents/{intent_id}/steps", tags=["intents"])
    async def record_step(
        request: Request, intent_id: str, body: StepRecord | StepBatch
    ) -> dict[str, Any]:
        """Record a finished step's result once (or a batch, `{"steps": [...]}`, all or
        none); later deliveries replay it."""
        worker_id = worker_of(request)
        if isinstance(body, StepBatch):
            steps = await engine.record_steps(intent_id, _inputs(body.steps), worker_id)
            return {"ok": True, "steps": [s.to_wire() for s in steps]}
        ((ordinal, key, result),) = _inputs([body])
        step = await engine.record_step(intent_id, ordinal, key, result, worker_id)
        return {"ok": True, "step": step.to_wire()}

    @app.post("/v1/intents/{intent_id}/compensations", tags=["intents"])
    async def record_compensation(
        request: Request, intent_id: str, body: CompensationRecord
    ) -> dict[str, Any]:
        """What became of one compensation of a compensating intent, recorded once: the
        last one ends the intent (compensated); a failure asks a person (retry, skip,
        mark_done) and the intent waits for the decision."""
        if not body.ok and body.error is None:
            raise ValidationFailed("error: required when ok is false")
        outcome = body.model_dump(exclude_none=True, exclude={"key"})
        intent = await engine.record_compensation(intent_id, body.key, outcome, worker_of(request))
        return {"ok": True, "intent": intent.to_wire()}

    @app.post("/v1/reports", tags=["agents"], openapi_extra=body_of(Reports))
    async def reports(request: Request) -> Response:
        """What a worker reports for several intents in one request: each intent's step
        records, and its outcome when it has one.

        Each intent's part stands alone: its steps and outcome are applied all or none, and
        a refusal (a lost lease, an out-of-order step) answers that part with its error
        while the others apply. The daemon commits them together, so a worker running many
        handlers pays one round trip for all their reports.
        """
        body = await read_body(request, Reports)
        worker_id = worker_of(request)
        seen: set[str] = set()
        for report in body.reports:
            if report.intent_id in seen:
                raise ValidationFailed(f"reports: intent {report.intent_id} appears twice")
            seen.add(report.intent_id)
            if not report.steps and report.outcome is None and not report.started:
                raise ValidationFailed(
                    f"reports: intent {report.intent_id} has no steps or outcome"
                    " (nor started: true)"
                )

        # Steps and completions (nearly every report) are written as one op; a failure,
        # which may put the intent back in the queue, takes the engine's own path.
        plain = [r for r in body.reports if r.outcome is None or r.outcome.action == "complete"]
        written = await engine.report(
            [
                WorkerReport(
                    r.intent_id,
                    _inputs(r.steps),
                    completed=r.outcome is not None,
                    result=r.outcome.result if r.outcome is not None else None,
                )
                for r in plain
            ],
            worker_id,
        )
        done: dict[str, Intent | AxmeError | None] = {
            r.intent_id: answer for r, answer in zip(plain, written, strict=True)
        }
        for r in body.reports:
            if r.intent_id not in done:
                done[r.intent_id] = await _fail(engine, r, worker_id)
        answers = [_answer(r.intent_id, done[r.intent_id]) for r in body.reports]
        return json_answer({"ok": True, "reports": answers})

    @app.get("/v1/intents/{intent_id}/steps", tags=["intents"])
    async def list_steps(intent_id: str) -> dict[str, Any]:
        return {"ok": True, "steps": [s.to_wire() for s in await engine.steps(intent_id)]}

    @app.post("/v1/intents/{intent_id}/progress", tags=["intents"])
    async def progress(request: Request, intent_id: str, body: ProgressRecord) -> dict[str, Any]:
        worker_id = worker_of(request)
        event = await engine.progress(intent_id, body.message, body.data, worker_id)
        return {"ok": True, "event": event.to_wire()}

    @app.post("/v1/intents/{intent_id}/retry", tags=["intents"])
    async def retry(
        request: Request, intent_id: str, body: RetryRequest | None = None
    ) -> dict[str, Any]:
        """Put a FAILED (or TIMED_OUT) intent back in the queue with fresh attempts."""
        intent = await engine.retry(intent_id, actor_of(request, body.actor if body else None))
        return {"ok": True, "intent": intent.to_wire()}

    @app.post("/v1/workers/{worker_id}/heartbeat", tags=["agents"])
    async def heartbeat(worker_id: str) -> dict[str, Any]:
        """Keep an unsupervised worker's leases while it works without an open stream."""
        return {"ok": True, "known": engine.dispatcher.heartbeat(worker_id)}
