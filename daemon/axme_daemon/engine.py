"""The intent lifecycle behind the API: create, read, resolve, and follow events.

Transport-free: the API maps HTTP onto these calls, tests and (later) the dispatcher call
them directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from axme_cli.errors import AxmeError, NotFound
from axme_cli.protocol import IntentStatus
from axme_daemon.delivery import Dispatcher, agent_topic
from axme_daemon.events import EventHub, KeepAlive, StreamTimeout
from axme_daemon.intents import (
    Event,
    Intent,
    NewIntent,
    Step,
    Task,
    check_agent_outcome,
    request_hash,
)
from axme_daemon.lifecycle.threads import owner_of
from axme_daemon.mesh import Mesh
from axme_daemon.scenarios import agent_then_person
from axme_daemon.store import IntentFilter, Page, Store
from axme_daemon.store.base import Effects, RemoteChange, WorkerReport
from axme_daemon.tasks import TaskSpec

log = logging.getLogger(__name__)

#: Longest single wait for a timer, in seconds: NTP, a resumed laptop or a person may step the
#: wall clock during it.
CLOCK_RECHECK = 1.0


class Engine:
    def __init__(self, store: Store, *, lease_grace: float | None = None) -> None:
        self.store = store
        self.hub = EventHub()
        store.add_commit_listener(self.hub.notify)
        self.dispatcher = Dispatcher(
            store, self.hub, **({"lease_grace": lease_grace} if lease_grace else {})
        )
        store.set_deliverer(self.dispatcher)
        store.add_remote_listener(self._remote_change)
        self.dispatcher.on_final = self._ended
        self.notices: list[Callable[[dict[str, Any]], None]] = []
        self._timer_wake = asyncio.Event()
        self.dispatcher.on_timer = self._timer_wake.set  # a release armed a backoff timer
        self._timers: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.mesh = Mesh(store, wake=lambda address: self.hub.notify([agent_topic(address)]))
        self.dispatcher.blocked = self.mesh.is_killed
        self.dispatcher.end_canceled = self._end_canceled

    def _remote_change(self, change: RemoteChange) -> None:
        """Another daemon committed: wake this one's agent streams and timer loop for it."""
        self.dispatcher.remote_change(change)
        if change.queued is None:  # it cannot say what: every stream and the timers look
            self.hub.wake_all()
        if change.timers or change.queued is None:
            self._timer_wake.set()

    async def _end_canceled(self, intent_id: str) -> None:
        """End an intent whose cancel another daemon asked of a worker here that hears
        none: CANCELED as asked (the saga keeps who asked and why)."""
        try:
            await self.resolve(intent_id, IntentStatus.CANCELED, actor=None)
        except AxmeError as exc:  # ended meanwhile (its worker's report, the other daemon)
            log.info("%s: the cancel asked elsewhere: %s", intent_id, exc.message)

    async def start(self) -> None:
        await self.mesh.load()
        await self.dispatcher.start()
        self._timers = asyncio.create_task(self._timer_loop(), name="timers")

    async def close(self) -> None:
        if self._timers is not None:
            self._timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timers
        await self.dispatcher.close()

    # -- durable waits -----------------------------------------------------------------

    async def _timer_loop(self) -> None:
        """Sleep until the next timer in the store, fire what is due, repeat. Timers live in
        the store, so a restarted daemon neither loses nor double-fires them.

        Due times are wall-clock times, waits are monotonic: the wall clock is read again at
        least every `CLOCK_RECHECK` seconds, so a clock stepped forward fires what became due
        and one stepped back has the store bring its timers forward (`fire_timers`)."""
        while True:
            now = time.time()
            due = await self.store.next_timer(now)
            delay = None if due is None else min(max(0.0, due - now), CLOCK_RECHECK)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wake.wait(), delay)
            self._timer_wake.clear()
            if due is not None and time.time() >= due:
                try:
                    await self._apply(await self.store.fire_timers(time.time()))
                except Exception:
                    log.exception("firing timers failed; retrying in 1 s")
                    await asyncio.sleep(1)

    async def _apply(self, effects: Effects) -> None:
        if effects.requeued:  # a worker may hold one still (a step's deadline moved it on)
            await self.dispatcher.let_go(effects.requeued)
        for intent in effects.finished:
            await self._ended(intent)
        for notice in effects.notices:
            for hook in self.notices:
                try:  # a notification is a side effect: it never fails the change it tells of
                    hook(notice)
                except Exception:
                    log.exception("notice %s: a listener failed", notice.get("event"))
        self._timer_wake.set()  # a wait may have added or removed timers

    async def _ended(self, intent: Intent) -> None:
        """An intent became final: free its worker's slot; a parent waiting on it resumes."""
        self.dispatcher.finished(intent)
        # Only a child (`ctx.call`, which sets reply_to to its parent's id, not an inbox
        # address) has a parent that may wait for it: the others skip a write.
        if intent.status.is_final and intent.reply_to is not None and not owner_of(intent.reply_to):
            await self._apply(await self.store.child_finished(intent))

    async def begin_wait(
        self,
        intent_id: str,
        worker_id: str | None,
        ordinal: int,
        key: str,
        kind: str,
        arguments: dict[str, Any],
    ) -> dict[str, Any]:
        if kind == "child":
            arguments = {
                **arguments,
                "child_intent_id": await self._child(intent_id, ordinal, arguments),
            }
        state, effects = await self.store.begin_wait(
            intent_id, worker_id, ordinal, key, kind, arguments
        )
        await self._apply(effects)
        if state["state"] == "waiting":
            current = await self.get(intent_id)
            # Unless a write (a signal, a timer) ended the wait and delivered it again since:
            # then the slot is the new delivery's.
            if current.lease_worker is None:
                self.dispatcher.finished(current)
        return state

    async def _child(self, parent_id: str, ordinal: int, arguments: dict[str, Any]) -> str:
        """The child intent of a `ctx.call`, created once however often the step replays."""
        body = {
            "intent_type": arguments["intent_type"],
            "to_agent": arguments["to_agent"],
            "payload": arguments.get("payload") or {},
        }
        new = NewIntent(
            **body,
            from_agent=arguments.get("from_agent"),
            reply_to=parent_id,
            correlation_id=parent_id,
            idempotency_key=f"child:{parent_id}:{ordinal}",
            request_hash=request_hash(body),
        )
        child, _ = await self.create(new)
        return child.intent_id

    async def decide(
        self, task_id: str, outcome: str, actor: str, comment: str | None, data: dict[str, Any]
    ) -> Task:
        task, effects = await self.store.decide(task_id, outcome, actor, comment, data)
        await self._apply(effects)
        return task

    async def signal(self, intent_id: str, name: str, data: Any) -> bool:
        delivered, effects = await self.store.send_signal(intent_id, name, data)
        await self._apply(effects)
        return delivered

    async def tasks(
        self,
        *,
        status: str | None = None,
        intent_id: str | None = None,
        prefix: str | None = None,
        limit: int = 200,
    ) -> list[Task]:
        return await self.store.list_tasks(
            status=status, intent_id=intent_id, prefix=prefix, limit=limit
        )

    async def task(self, task_id: str) -> Task:
        found = await self.store.list_tasks(prefix=task_id, limit=2)
        match = [t for t in found if t.task_id == task_id]
        if not match:
            raise NotFound(f"no task {task_id}", details={"task_id": task_id})
        return match[0]

    async def create(self, new: NewIntent, *, agent_first: bool = False) -> tuple[Intent, bool]:
        """`agent_first`: an intent with a `human_task` goes to its agent first, and to the
        person once the agent resumes it (else the person's own: it waits at once)."""
        if new.human_task is not None and agent_first:
            plan = agent_then_person(new.to_agent, TaskSpec(**new.human_task).model_dump())
            return await self.run_workflow(new, plan, None)
        if new.human_task is not None:  # no agent code: the intent waits for a person
            intent, created, effects = await self.store.create_task_intent(new, str(uuid.uuid4()))
            await self._apply(effects)
            return intent, created
        intent, created = await self.store.create_intent(new, str(uuid.uuid4()))
        if created and intent.status is IntentStatus.SUBMITTED:  # else delivered by the create
            self.dispatcher.queued(intent.to_agent)
        return intent, created

    async def run_workflow(
        self,
        new: NewIntent,
        plan: dict[str, Any],
        scenario_id: str | None,
        keys: Sequence[tuple[str, str, list[str]]] = (),
    ) -> tuple[Intent, bool]:
        """An intent that runs `plan`'s steps (a scenario's, `scenarios.check_bundle`)."""
        intent, created, effects = await self.store.create_workflow_intent(
            new, str(uuid.uuid4()), plan, scenario_id, keys
        )
        await self._apply(effects)
        return intent, created

    async def workflow(self, intent_id: str) -> dict[str, Any] | None:
        return await self.store.get_workflow(intent_id)

    async def _moved_on(self, intent: Intent) -> None:
        """An agent's outcome moved a workflow to its next step: the worker lets the intent
        go, its next agent's streams wake, and a person's task notifies and arms timers."""
        if intent.status.is_final:
            await self._ended(intent)
            return
        await self.dispatcher.let_go([intent])
        if intent.status is IntentStatus.WAITING:
            for task in await self.tasks(status="PENDING", intent_id=intent.intent_id):
                await self._apply(Effects(notices=[{"event": "assigned", "task": task.to_wire()}]))
        self._timer_wake.set()

    async def get(self, intent_id: str) -> Intent:
        intent = await self.store.get_intent(intent_id)
        if intent is None:
            raise NotFound(f"no intent {intent_id}", details={"intent_id": intent_id})
        return intent

    async def list_intents(self, filt: IntentFilter, limit: int, cursor: str | None) -> Page:
        return await self.store.list_intents(filt, limit, cursor)

    async def events(self, intent_id: str, since: int) -> list[Event]:
        await self.get(intent_id)  # 404 for an unknown intent rather than an empty list
        return await self.store.list_events(intent_id, since)

    async def resolve(
        self,
        intent_id: str,
        status: IntentStatus,
        *,
        actor: str | None,
        result: Any = None,
        error: Any = None,
        reason: str | None = None,
    ) -> tuple[Intent, Event]:
        details: dict[str, Any] = {}
        if reason:
            details["reason"] = reason
        if result is not None:
            details["result"] = result
        if error is not None:
            details["error"] = error
        ask = False
        if status is IntentStatus.CANCELED:  # a worker that hears cancels stops the handler
            current = await self.get(intent_id)
            ask = self.dispatcher.hears_cancels(current)
        intent, event = await self.store.transition(
            intent_id,
            status,
            actor=actor,
            details=details,
            result=result,
            error=error,
            ask_worker=ask,
        )
        if event.event_type == "intent.cancel_requested":
            self.dispatcher.cancel_requested(intent)  # its worker stops it, then it ends
        else:
            await self._ended(intent)
        return intent, event

    # -- what workers report -----------------------------------------------------------

    async def complete(
        self,
        intent_id: str,
        result: Any,
        worker_id: str | None,
        steps: Sequence[tuple[int, str, Any]] = (),
    ) -> Intent:
        """Complete the intent; `steps` the worker had not sent yet are recorded with it."""
        intent, _ = await self.store.transition(
            intent_id,
            IntentStatus.COMPLETED,
            worker_id=worker_id,
            details={"result": result} if result is not None else None,
            result=result,
            steps=steps,
            by_agent=True,
        )
        await self._moved_on(intent)
        return intent

    async def advance(
        self, intent_id: str, approve: bool, actor: str, reason: str | None
    ) -> Intent:
        """AXME's `approve_current_step` with no task pending: the current step is done (or,
        not `approve`, failed) as `actor` says. A plain intent has one step: it ends."""
        said = {"approved": approve, "actor": actor, **({"reason": reason} if reason else {})}
        if approve or await self.workflow(intent_id) is not None:
            intent, _ = await self.store.transition(
                intent_id,
                IntentStatus.COMPLETED if approve else IntentStatus.FAILED,
                actor=actor,
                details={"result": said} if approve else {"error": said},
                result=said if approve else None,
                error=None if approve else {"message": reason or f"step rejected by {actor}"},
                by_agent=True,
            )
            await self._moved_on(intent)
            return intent
        intent, _ = await self.resolve(
            intent_id, IntentStatus.CANCELED, actor=actor, reason=reason or f"rejected by {actor}"
        )
        return intent

    async def report(
        self, reports: Sequence[WorkerReport], worker_id: str | None
    ) -> list[Intent | AxmeError | None]:
        """Step records and completions of several intents, written together."""
        answers = await self.store.report(reports, worker_id)
        for answer in answers:
            if isinstance(answer, Intent):
                await self._moved_on(answer)
        return answers

    async def fail(
        self, intent_id: str, error: dict[str, Any], *, retryable: bool, worker_id: str | None
    ) -> Intent:
        """Fail the intent, or (retryable, attempts left) put it back for another delivery."""
        if retryable:
            current = await self.get(intent_id)
            check_agent_outcome(current)
            if current.delivery_attempt < current.max_delivery_attempts:
                message = str(error.get("message", "handler failed"))
                released = await self.store.release(
                    intent_ids=[intent_id],
                    worker_id=worker_id,
                    reason=f"attempt {current.delivery_attempt} failed: {message}",
                )
                # Frees the worker's slot and keeps the reason.
                await self.dispatcher.requeued(released)
                return released[0][0] if released else await self.get(intent_id)
        intent, _ = await self.store.transition(
            intent_id,
            IntentStatus.FAILED,
            worker_id=worker_id,
            details={"error": error},
            error=error,
            by_agent=True,
        )
        await self._moved_on(intent)
        return intent

    async def record_compensation(
        self, intent_id: str, key: str, outcome: dict[str, Any], worker_id: str | None
    ) -> Intent:
        intent, effects = await self.store.record_compensation(intent_id, key, outcome, worker_id)
        await self._apply(effects)
        if intent.lease_worker is None and not intent.status.is_final:
            self.dispatcher.finished(intent)  # a person decides now: the worker's slot is free
        return intent

    async def record_step(
        self, intent_id: str, ordinal: int, key: str, result: Any, worker_id: str | None
    ) -> Step:
        step, _ = await self.store.record_step(intent_id, ordinal, key, result, worker_id)
        return step

    async def record_steps(
        self, intent_id: str, steps: Sequence[tuple[int, str, Any]], worker_id: str | None
    ) -> list[Step]:
        return await self.store.record_steps(intent_id, steps, worker_id)

    async def progress(
        self, intent_id: str, message: str, data: dict[str, Any], worker_id: str | None
    ) -> Event:
        events = await self.store.progress(intent_id, message, data, worker_id)
        return events[-1]

    async def steps(self, intent_id: str) -> list[Step]:
        await self.get(intent_id)
        return await self.store.list_steps(intent_id)

    async def retry(self, intent_id: str, actor: str | None) -> Intent:
        intent, _ = await self.store.retry(intent_id, actor)
        self.dispatcher.queued(intent.to_agent)
        return intent

    async def follow(
        self, intent_id: str, since: int, wait_seconds: float
    ) -> AsyncIterator[Event | StreamTimeout | KeepAlive]:
        """Events after `since` as they happen; ends after a final one or when the hold elapses.

        Call `get` first: this generator assumes the intent exists.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        cursor = since
        with self.hub.subscribe(intent_id) as wake:
            while True:
                wake.clear()
                for event in await self.store.list_events(intent_id, cursor):
                    cursor = event.seq
                    yield event
                    if event.status.is_final:
                        return
                held = await self.hub.hold(wake, deadline)
                if held == "end":
                    yield StreamTimeout(cursor)
                    return
                if held == "keepalive":
                    yield KeepAlive()
