"""AXME's inbox over HTTP. Two kinds of thread share it:

- a person's task (its id is the task id; `owner_agent` is the task's assignee), decided
  with `/approve` or `/reject`;
- an intent sent with a `reply_to` address (its id is the intent id; `owner_agent` is that
  address, or who it was delegated to), to which the intent's completion is delivered, and
  where its owner replies, delegates and deletes replies. `/v1/inbox/changes` is their feed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, Field, model_validator

from axme_cli.errors import BadInput, Conflict, NotFound, ValidationFailed
from axme_cli.protocol import IntentStatus, agent_address
from axme_daemon.authz import actor_of
from axme_daemon.engine import Engine
from axme_daemon.intents import Intent, Task
from axme_daemon.store.base import Thread

OwnerQuery = Annotated[str | None, Query(max_length=500)]

#: How a thread's entries show in its `timeline`.
EVENT_TYPES = {
    "sent": "message.sent",
    "completed": "intent_completion_delivered",
    "reply": "message.sent",
    "delegated": "thread.delegated",
    "deleted": "messages.deleted",
}
ROLES = {"sent": "initiator", "completed": "agent", "reply": "owner"}


class InboxDecision(BaseModel):
    comment: str | None = Field(default=None, max_length=5000)
    actor: str | None = Field(default=None, max_length=200)


class Reply(BaseModel):
    message: str = Field(min_length=1, max_length=20_000)


class Delegate(BaseModel):
    delegate_to: str = Field(min_length=1, max_length=500)
    note: str | None = Field(default=None, max_length=2000)


class DeleteMessages(BaseModel):
    mode: Literal["self", "both"] = "self"
    limit: int | None = Field(default=None, ge=1, le=1000)
    message_ids: list[str] | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_of(self) -> DeleteMessages:
        if (self.limit is None) == (self.message_ids is None):
            raise ValueError("give either limit or message_ids")
        return self


def inbox_address(raw: str | None, field: str) -> str | None:
    """An inbox's address: `scheme://...` as given, a bare name as `agent://name`."""
    if raw is None or "://" in raw:
        return raw
    try:
        return agent_address(raw)
    except ValueError as exc:
        raise BadInput(f"{field}: {exc}") from None


def task_thread(task: Task, sender: Intent | None) -> dict[str, Any]:
    """A person's task as a thread (its id is the task id)."""
    timeline: list[dict[str, Any]] = [
        {
            "event_id": task.task_id,
            "event_type": "intent.human_task_assigned",
            "actor": "system",
            "at": task.created_at,
            "details": {"title": task.spec.get("title", "")},
        }
    ]
    if task.decision:
        timeline.append(
            {
                "event_id": f"{task.task_id}:decision",
                "event_type": "intent.human_task_decided",
                "actor": task.decision.get("actor"),
                "at": task.decided_at,
                "details": task.decision,
            }
        )
    return {
        "thread_id": task.task_id,
        "kind": "task",
        "intent_id": task.intent_id,
        "intent_type": task.intent_type,
        "subject": task.spec.get("title", ""),
        "status": "pending" if task.status == "PENDING" else "done",
        "owner_agent": task.assignee,
        "from_agent": sender.from_agent if sender else None,
        "to_agent": task.to_agent,
        "created_at": task.created_at,
        "updated_at": task.decided_at or task.created_at,
        "human_task": task.spec,
        "decision": task.decision,
        "timeline": timeline,
    }


def reply_thread(thread: Thread) -> dict[str, Any]:
    """An intent's `reply_to` thread (its id is the intent id)."""
    intent, entries = thread
    if intent.status.is_final:
        status = "done"
    elif intent.status in (IntentStatus.CREATED, IntentStatus.SUBMITTED):
        status = "pending"
    else:
        status = "active"
    timeline, messages = [], []
    completion = None
    for e in entries:
        details = e["details"] or {}
        timeline.append(
            {
                "event_id": e["message_id"],
                "event_type": EVENT_TYPES[e["kind"]],
                "actor": e["actor"],
                "at": e["at"],
                "details": {**details, "deleted": True} if e["deleted_at"] else details,
            }
        )
        if e["kind"] == "completed":
            completion = details
        if e["kind"] in ROLES and not e["deleted_at"]:
            content = {
                "sent": intent.payload,
                "completed": details.get("result", details.get("error")),
            }.get(e["kind"], details.get("message"))
            messages.append(
                {
                    "message_id": e["message_id"],
                    "role": ROLES[e["kind"]],
                    "content": content,
                    "actor": e["actor"],
                    "at": e["at"],
                }
            )
    return {
        "thread_id": intent.intent_id,
        "kind": "reply",
        "intent_id": intent.intent_id,
        "intent_type": intent.intent_type,
        "subject": intent.intent_type,
        "status": status,
        "owner_agent": entries[-1]["owner"],
        "from_agent": intent.from_agent,
        "to_agent": intent.to_agent,
        "reply_to": intent.reply_to,
        "created_at": entries[0]["at"],
        "updated_at": entries[-1]["at"],
        "completion": completion,
        "timeline": timeline,
        "messages": messages,
    }


def completion_delivery(thread: Thread | None) -> dict[str, Any]:
    """Where a resolve's outcome went: the `reply_to` inbox's thread, or nowhere."""
    done = [e for e in thread[1] if e["kind"] == "completed"] if thread else []
    if thread is None or not done:
        return {"delivered": False, "reason": "no_reply_to"}
    return {
        "delivered": True,
        "reply_to": thread[0].reply_to,
        "owner_agent": done[-1]["owner"],
        "thread_id": thread[0].intent_id,
        "message_id": done[-1]["message_id"],
        "completion": done[-1]["details"],
    }


def add_inbox_routes(app: FastAPI, engine: Engine) -> None:
    store = engine.store

    async def task_threads(tasks: list[Task]) -> list[dict[str, Any]]:
        senders = {i.intent_id: i for i in await store.get_intents({t.intent_id for t in tasks})}
        return [task_thread(t, senders.get(t.intent_id)) for t in tasks]

    async def a_task(thread_id: str) -> Task | None:
        try:
            return await engine.task(thread_id)
        except NotFound:
            return None

    async def reply_thread_of(thread_id: str, owner: str | None) -> Thread:
        """The reply thread `thread_id` names; a task's thread is decided, not written to."""
        if await a_task(thread_id) is not None:
            raise Conflict(
                f"thread {thread_id} is a person's task: decide it (/approve or /reject)",
                details={"thread_id": thread_id},
            )
        found = await store.inbox_thread(thread_id)
        if found is None or (owner is not None and found[1][-1]["owner"] != owner):
            where = f" in {owner}'s inbox" if owner else ""
            raise NotFound(f"no inbox thread {thread_id}{where}", details={"thread_id": thread_id})
        return found

    @app.get("/v1/inbox", tags=["inbox"])
    async def inbox(owner_agent: OwnerQuery = None) -> dict[str, Any]:
        """Pending tasks (the assignee's, with `owner_agent`) and `reply_to` threads (the
        owner's, with `owner_agent`), newest first."""
        owner = inbox_address(owner_agent, "owner_agent")
        tasks = await engine.tasks(status="PENDING")
        if owner is not None:
            tasks = [t for t in tasks if t.assignee == owner]
        replies = [reply_thread(t) for t in await store.inbox_threads(owner, 200)]
        return {"ok": True, "threads": await task_threads(tasks) + replies}

    @app.get("/v1/inbox/changes", tags=["inbox"])
    async def changes(
        owner_agent: OwnerQuery = None,
        cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+$")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """`reply_to` threads' changes after `cursor` (a `next_cursor`), oldest first."""
        owner = inbox_address(owner_agent, "owner_agent")
        after = int(cursor) if cursor else 0
        found = await store.inbox_changes(owner, after, limit + 1)
        page = found[:limit]
        return {
            "ok": True,
            "changes": [{"cursor": str(pos), "thread": reply_thread(t)} for pos, t in page],
            "next_cursor": str(page[-1][0]) if page else str(after),
            "has_more": len(found) > limit,
        }

    @app.get("/v1/inbox/{thread_id}", tags=["inbox"])
    async def inbox_thread(thread_id: str, owner_agent: OwnerQuery = None) -> dict[str, Any]:
        owner = inbox_address(owner_agent, "owner_agent")
        task = await a_task(thread_id)
        if task is not None:
            if owner not in (None, task.assignee):
                raise NotFound(f"no inbox thread {thread_id} in {owner}'s inbox")
            return {"ok": True, "thread": (await task_threads([task]))[0]}
        return {"ok": True, "thread": reply_thread(await reply_thread_of(thread_id, owner))}

    async def decide(request: Request, thread_id: str, outcome: str, body: Any) -> dict[str, Any]:
        comment = body.comment if body else None
        actor = actor_of(request, body.actor if body else None)
        task = await engine.decide(thread_id, outcome, actor, comment, {})
        return {"ok": True, "thread": (await task_threads([task]))[0]}

    @app.post("/v1/inbox/{thread_id}/approve", tags=["inbox"])
    async def inbox_approve(
        request: Request, thread_id: str, body: InboxDecision | None = None
    ) -> dict[str, Any]:
        return await decide(request, thread_id, "approved", body)

    @app.post("/v1/inbox/{thread_id}/reject", tags=["inbox"])
    async def inbox_reject(
        request: Request, thread_id: str, body: InboxDecision | None = None
    ) -> dict[str, Any]:
        return await decide(request, thread_id, "rejected", body)

    async def owned(thread_id: str, owner_agent: str | None) -> str | None:
        """The owner a write names (checked to hold the thread), before anything changes."""
        owner = inbox_address(owner_agent, "owner_agent")
        await reply_thread_of(thread_id, owner)
        return owner

    async def shown(thread_id: str) -> dict[str, Any]:
        return reply_thread(await reply_thread_of(thread_id, None))

    @app.post("/v1/inbox/{thread_id}/reply", tags=["inbox"])
    async def reply(
        request: Request, thread_id: str, body: Reply, owner_agent: OwnerQuery = None
    ) -> dict[str, Any]:
        owner = await owned(thread_id, owner_agent)
        await store.inbox_reply(thread_id, owner, actor_of(request, None), body.message)
        return {"ok": True, "thread": await shown(thread_id)}

    @app.post("/v1/inbox/{thread_id}/delegate", tags=["inbox"])
    async def delegate(
        request: Request, thread_id: str, body: Delegate, owner_agent: OwnerQuery = None
    ) -> dict[str, Any]:
        to = inbox_address(body.delegate_to, "delegate_to")
        assert to is not None
        owner = await owned(thread_id, owner_agent)
        await store.inbox_delegate(thread_id, owner, actor_of(request, None), to, body.note)
        return {"ok": True, "thread": await shown(thread_id)}

    @app.post("/v1/inbox/{thread_id}/messages/delete", tags=["inbox"])
    async def delete_messages(
        request: Request, thread_id: str, body: DeleteMessages, owner_agent: OwnerQuery = None
    ) -> dict[str, Any]:
        owner = await owned(thread_id, owner_agent)
        deleted = await store.inbox_delete(
            thread_id,
            owner,
            actor_of(request, None),
            body.mode,
            body.message_ids,
            body.limit,
        )
        if body.message_ids is None and not deleted:
            raise ValidationFailed(f"limit: thread {thread_id} has no reply to delete")
        return {
            "ok": True,
            "thread": await shown(thread_id),
            "mode": body.mode,
            "deleted_count": len(deleted),
            "message_ids": deleted,
        }
