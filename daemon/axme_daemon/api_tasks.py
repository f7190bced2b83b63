"""Human tasks, signals and waits over HTTP: axme's own paths and the AXME dialects.

Every way of deciding (axme's `/v1/tasks/{id}/decision`, AXME's `/resume` with `task_result`
or `approve_current_step`, `/v1/approvals/{id}/decision`) ends in `Engine.decide`, so the same
checks apply and the first decision wins.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, RootModel

from axme_cli.errors import Conflict, NotFound, ValidationFailed
from axme_cli.protocol import MAX_DURATION_SECONDS
from axme_daemon.api_body import body_of, read_body
from axme_daemon.authz import actor_of, bound_sender, worker_of
from axme_daemon.engine import Engine
from axme_daemon.intents import Task
from axme_daemon.models import IntentBody
from axme_daemon.tasks import TaskSpec

WAIT_KINDS = ("human", "time", "signal", "child")


class _Wait(BaseModel):
    ordinal: int = Field(ge=1, le=1_000_000)
    key: str = Field(min_length=1, max_length=300)


class HumanWait(_Wait):
    """`ctx.request_approval`, `ctx.ask`: a task for a person."""

    kind: Literal["human"]
    arguments: TaskSpec


class Sleep(BaseModel):
    seconds: float = Field(gt=0, le=MAX_DURATION_SECONDS)


class TimeWait(_Wait):
    """`ctx.sleep`."""

    kind: Literal["time"]
    arguments: Sleep


class AwaitSignal(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    timeout_seconds: float | None = Field(default=None, gt=0, le=MAX_DURATION_SECONDS)


class SignalWait(_Wait):
    """`ctx.wait_for_event`."""

    kind: Literal["signal"]
    arguments: AwaitSignal


class ChildWait(_Wait):
    """`ctx.call`: the child intent, created once."""

    kind: Literal["child"]
    arguments: IntentBody


Wait = HumanWait | TimeWait | SignalWait | ChildWait


class WaitRequest(RootModel[Annotated[Wait, Field(discriminator="kind")]]):
    """A handler step starts waiting; what `arguments` holds depends on `kind`."""


async def read_wait(request: Request) -> Wait:
    """The body checked for its `kind`, before anything changes. Errors name fields as the
    client wrote them (pydantic puts the kind it matched first in each error's location)."""
    try:
        return (await read_body(request, WaitRequest)).root
    except RequestValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
                kinds = ", ".join(WAIT_KINDS)
                err = {
                    "type": "value_error",
                    "loc": ("body", "kind"),
                    "msg": f"must be one of {kinds}",
                }
            elif len(loc) > 1 and loc[1] in WAIT_KINDS:
                err = {**err, "loc": (loc[0], *loc[2:])}
            errors.append(err)
        raise RequestValidationError(errors) from None


class Decision(BaseModel):
    outcome: str = Field(min_length=1, max_length=64)
    actor: str | None = Field(default=None, max_length=200)
    comment: str | None = Field(default=None, max_length=5000)
    data: dict[str, Any] = Field(default_factory=dict)


class ApprovalDecision(BaseModel):
    decision: str
    comment: str | None = Field(default=None, max_length=5000)
    actor: str | None = Field(default=None, max_length=200)


class Signal(BaseModel):
    data: Any = None


async def pending_task(engine: Engine, intent_id: str) -> Task:
    await engine.get(intent_id)
    tasks = await engine.tasks(status="PENDING", intent_id=intent_id)
    if not tasks:
        raise Conflict(
            f"intent {intent_id} has no pending human task to decide",
            details={"intent_id": intent_id},
        )
    return tasks[0]


async def approval_task(engine: Engine, approval_id: str) -> str:
    """The task an approval id names: a task's own id, else its intent's pending task."""
    try:
        return (await engine.task(approval_id)).task_id
    except NotFound:
        pass
    if await engine.store.get_intent(approval_id) is None:
        raise NotFound(
            f"no approval {approval_id}: neither a task id nor an intent id",
            details={"approval_id": approval_id},
        )
    return (await pending_task(engine, approval_id)).task_id


async def decide_resume(
    request: Request, engine: Engine, intent_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """AXME's `/resume` dialects for people: `task_result` {outcome, comment, ...data},
    `outcome` + `task_result.approved`, or `approve_current_step` (which, with no task
    pending, advances the intent's current step itself)."""
    if "approve_current_step" in body and "task_result" not in body:
        await engine.get(intent_id)
        if not await engine.tasks(status="PENDING", intent_id=intent_id):
            return await _advance(request, engine, intent_id, body)
    task = await pending_task(engine, intent_id)
    result = body.get("task_result")
    if isinstance(result, dict):
        result = dict(result)
        outcome = result.pop("outcome", None) or body.get("outcome")
        if outcome is None and isinstance(result.get("approved"), bool):
            outcome = "approved" if result.pop("approved") else "rejected"
        comment = result.pop("comment", None)
        data = result.pop("data", None) or result
    elif "approve_current_step" in body:
        outcome = "approved" if body.get("approve_current_step", True) else "rejected"
        comment, data = body.get("reason"), {}
    else:
        outcome, comment, data = body.get("outcome"), body.get("comment"), {}
    if not isinstance(outcome, str) or not outcome:
        raise ValidationFailed("task_result.outcome: is required (e.g. approved, rejected)")
    claimed = body.get("actor")
    actor = actor_of(request, str(claimed) if claimed else None)
    decided = await engine.decide(task.task_id, outcome, actor, comment, data)
    intent = await engine.get(intent_id)
    return {"ok": True, "applied": True, "task": decided.to_wire(), "intent": intent.to_wire()}


async def _advance(
    request: Request, engine: Engine, intent_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """`approve_current_step` where no person's task waits: the current step (a scenario's
    agent step, or a plain intent's only one) is done, as approved by the caller; false
    fails the step (a plain intent ends CANCELED)."""
    approve = body.get("approve_current_step", True)
    if not isinstance(approve, bool):
        raise ValidationFailed("approve_current_step: must be true or false")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationFailed("reason: must be a string")
    claimed = body.get("actor")
    actor = actor_of(request, str(claimed) if claimed else None)
    intent = await engine.advance(intent_id, approve, actor, reason)
    return {"ok": True, "applied": True, "intent": intent.to_wire()}


def add_task_routes(app: FastAPI, engine: Engine) -> None:

    @app.post("/v1/intents/{intent_id}/waits", tags=["intents"], openapi_extra=body_of(WaitRequest))
    async def begin_wait(request: Request, intent_id: str) -> dict[str, Any]:
        """A handler step starts waiting: `human` (a task), `time`, `signal` or `child`.

        `state: done` with `result` when it is already over; otherwise `state: waiting`, the
        intent is WAITING and the worker lets the delivery go.
        """
        wait = await read_wait(request)
        worker_id = worker_of(request)
        arguments = wait.arguments.model_dump(exclude_none=True)
        if isinstance(wait, ChildWait):  # the child is sent by this worker's agent
            sender = bound_sender(request, wait.arguments.from_agent)
            if sender is not None:
                arguments["from_agent"] = sender
        state = await engine.begin_wait(
            intent_id, worker_id, wait.ordinal, wait.key, wait.kind, arguments
        )
        return {"ok": True, **state}

    @app.get("/v1/tasks", tags=["tasks"])
    async def list_tasks(
        status: Annotated[
            str | None, Query(pattern="^(PENDING|DECIDED|TIMED_OUT|CLOSED)?$")
        ] = "PENDING",
        intent_id: str | None = None,
        id_prefix: Annotated[str | None, Query(max_length=36, pattern=r"^[0-9a-f-]+$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """Tasks, nearest deadline first, then oldest (the inbox); `status=` for all."""
        tasks = await engine.tasks(
            status=status or None, intent_id=intent_id, prefix=id_prefix, limit=limit
        )
        return {"ok": True, "tasks": [t.to_wire() for t in tasks]}

    @app.get("/v1/me/tasks", tags=["tasks"])
    async def my_tasks() -> dict[str, Any]:
        """AXME's task list shape."""
        tasks = await engine.tasks(status="PENDING")
        return {
            "ok": True,
            "tasks": [
                {
                    "task_id": t.task_id,
                    "intent_id": t.intent_id,
                    "intent_type": t.intent_type,
                    "status": "WAITING",
                    "to_agent": t.to_agent,
                    "assigned_at": t.created_at,
                    "due_at": t.to_wire()["deadline_at"],
                    "human_task": t.spec,
                }
                for t in tasks
            ],
        }

    @app.get("/v1/tasks/{task_id}", tags=["tasks"])
    async def get_task(task_id: str) -> dict[str, Any]:
        return {"ok": True, "task": (await engine.task(task_id)).to_wire()}

    @app.post("/v1/tasks/{task_id}/decision", tags=["tasks"])
    async def decide(request: Request, task_id: str, body: Decision) -> dict[str, Any]:
        """Decide once: a second decision is a 409, and of two at once exactly one wins."""
        actor = actor_of(request, body.actor)
        task = await engine.decide(task_id, body.outcome, actor, body.comment, body.data)
        return {"ok": True, "task": task.to_wire()}

    @app.post("/v1/approvals/{approval_id}/decision", tags=["tasks"])
    async def decide_approval(
        request: Request, approval_id: str, body: ApprovalDecision
    ) -> dict[str, Any]:
        """AXME's approvals API: `decision` approve or reject. The approval id is a task id,
        or the id of an intent with a pending task (the id an SDK user has)."""
        outcomes = {"approve": "approved", "reject": "rejected"}
        if body.decision not in outcomes:
            raise ValidationFailed("decision: must be approve or reject")
        actor = actor_of(request, body.actor)
        task_id = await approval_task(engine, approval_id)
        task = await engine.decide(task_id, outcomes[body.decision], actor, body.comment, {})
        return {
            "ok": True,
            "approval": {
                "approval_id": task.task_id,
                "decision": body.decision,
                "comment": body.comment,
                "decided_at": task.decided_at,
            },
        }

    @app.post("/v1/intents/{intent_id}/signals/{name}", tags=["intents"])
    async def signal(intent_id: str, name: str, body: Signal | None = None) -> dict[str, Any]:
        """Deliver a named signal to `ctx.wait_for_event(name)`; kept if nothing waits yet."""
        if not name or len(name) > 200:
            raise ValidationFailed("name: 1 to 200 characters")
        delivered = await engine.signal(intent_id, name, body.data if body else None)
        return {"ok": True, "delivered": delivered, "kept": not delivered}
