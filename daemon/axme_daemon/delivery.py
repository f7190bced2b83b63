"""Delivery of intents to workers: leases, the agent stream, and redelivery.

A worker is one agent process connected to the daemon. A delivery is leased to exactly one
worker (the store fences every report by `lease_worker`). Leases end when the worker finishes
the intent, when the supervisor sees the process exit (at once: no timeout involved), or, for
an unsupervised worker, when it has had no open stream and no heartbeat for `lease_grace`
seconds. An ended lease puts the intent back in the queue, or fails it once its attempts are
used up.

A lease also names the daemon its worker is connected to. On a store several daemons share,
each heartbeats about every second; a daemon whose heartbeat is older than its lease grace is
taken for dead with its workers, and the next heartbeat of a live daemon ends its leases
(`Store.heartbeat`). A (re)starting daemon ends only its own: the leases of its home's last
run, whose workers died with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from axme_cli.errors import AxmeError, BadInput
from axme_cli.protocol import IntentStatus
from axme_daemon.events import EventHub, KeepAlive, StreamTimeout
from axme_daemon.intents import Event, Intent
from axme_daemon.store import Store
from axme_daemon.store.base import RemoteChange

log = logging.getLogger(__name__)

#: How long a lease outlives its holder's last sign of life: an unsupervised worker's stream
#: or heartbeat, or, on a shared store, its daemon's heartbeat.
DEFAULT_LEASE_GRACE = 10.0
#: How long after another daemon's lapse this one looks: its own clock's sleep against the
#: database's clock.
_AFTER_LAPSE = 0.02


def agent_topic(address: str) -> str:
    """The hub key that wakes an address's streams: new work, or a worker's freed capacity."""
    return f"agent:{address}"


@dataclass
class Worker:
    worker_id: str
    address: str
    supervised: bool
    limit: int
    pid: int | None = None
    streams: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    held: set[str] = field(default_factory=set)
    #: Of `held`, those a write claimed and has not settled yet (its COMMIT may still be on
    #: its way to a server): a read of the store does not show them yet.
    claiming: set[str] = field(default_factory=set)
    #: Deliveries made to this worker by the writes that queued them (counted, and kept
    #: here, once on disk, until a stream of the worker sends them: no read of the store).
    pushes: int = 0
    inbox: list[Intent] = field(default_factory=list)
    #: Intents it holds whose cancel was asked: each of its streams tells it once.
    cancels: set[str] = field(default_factory=set)
    #: Its streams asked for notices (axme's SDK): a cancel is asked of it, not imposed.
    hears_cancels: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "address": self.address,
            "supervised": self.supervised,
            "pid": self.pid,
            "streams": self.streams,
            "in_flight": sorted(self.held),
            "max_in_flight": self.limit,
        }


@dataclass(frozen=True)
class CancelNotice:
    """A cancel was asked of an intent the worker runs: its handler stops at its next
    ctx call (sent only to workers that ask for notices: AXME's listen() knows none)."""

    intent_id: str


@dataclass(frozen=True)
class Delivery:
    """One intent handed to a worker on its stream."""

    intent: Intent
    steps: list[dict[str, Any]]

    def to_wire(self) -> dict[str, Any]:
        # The shape AXME's listen() yields (intent_id, seq as the cursor, status DELIVERED),
        # plus what axme's own SDK needs to run the handler without another round trip,
        # and `phase: compensate` when the worker is to undo its steps instead.
        i = self.intent
        wire = {
            "intent_id": i.intent_id,
            "seq": i.delivery_seq,
            "event_type": "intent.delivered",
            "status": IntentStatus.DELIVERED.value,
            "at": i.updated_at,  # the delivery's write (or a later one of the same lease)
            "intent_type": i.intent_type,
            "to_agent": i.to_agent,
            "delivery_attempt": i.delivery_attempt,
            "max_delivery_attempts": i.max_delivery_attempts,
            "intent": i.to_wire(),
            "steps": self.steps,
        }
        if i.saga_phase == "compensating":
            wire["phase"] = "compensate"
        return wire


class Dispatcher:
    def __init__(self, store: Store, hub: EventHub, *, lease_grace: float = DEFAULT_LEASE_GRACE):
        self.store = store
        self.hub = hub
        self.lease_grace = lease_grace
        self.workers: dict[str, Worker] = {}
        self._reasons: dict[str, str] = {}  # why an intent's next delivery is a redelivery
        self._reaper: asyncio.Task[None] | None = None
        #: Called for each intent a release made final (attempts used up).
        self.on_final: Callable[[Intent], Coroutine[Any, Any, None]] | None = None
        #: Called when a release armed a timer (a backoff before the next delivery).
        self.on_timer: Callable[[], None] | None = None
        #: Called with a worker's id when its stream hands it a delivery (it is serving).
        self.on_serving: Callable[[str], None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        #: Whether an address takes no new work now (the mesh's kill switch).
        self.blocked: Callable[[str], bool] = lambda address: False
        #: Called with an intent whose cancel another daemon asked of a worker of this one
        #: that hears no cancels: it ends the intent, as a cancel asked here would have.
        self.end_canceled: Callable[[str], Coroutine[Any, Any, None]] | None = None
        self._ending: set[str] = set()  # intents end_canceled is ending now
        self._listening: frozenset[str] | None = frozenset()  # as the store last heard it

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Leases do not survive the daemon: put every delivery of its last run back (on a
        shared store, also those of daemons whose heartbeat lapsed)."""
        if self.store.daemon is not None:
            await self.store.register_daemon()
        released = await self.store.release(reason="the daemon restarted")
        await self.requeued(released)
        if released:
            log.info("requeued %d deliveries after a restart", len(released))
        if self.store.shared:
            await self._heartbeat()
        self._reaper = asyncio.create_task(self._reap_forever(), name="lease-reaper")

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self.store.daemon is not None:
            with contextlib.suppress(Exception):  # the store may be gone; the row then lapses
                await self.store.unregister_daemon()

    async def _heartbeat(self) -> None:
        """Keep this daemon's leases; end those of daemons whose heartbeat lapsed."""
        released = await self.store.heartbeat()
        await self.requeued(released)
        if released:
            log.warning(
                "requeued %d deliveries of daemons that stopped heartbeating: %s",
                len(released),
                (released[0][1].details or {}).get("reason", ""),
                extra={"action": "lapsed"},
            )

    async def _next_lapse(self) -> float:
        """Seconds until another daemon's heartbeat lapses, if it does not beat first: the
        next heartbeat comes then, so a dead daemon's leases end right at their lapse."""
        me = self.store.daemon.daemon_id if self.store.daemon else None
        soon = [
            float(d["lapses_in"])
            for d in await self.store.list_daemons()
            if d["daemon_id"] != me and d["lapses_in"] > 0
        ]
        return min(soon, default=float("inf")) + _AFTER_LAPSE

    def remote_change(self, change: RemoteChange) -> None:
        """Another daemon queued work: wake the streams of the addresses it names (all of
        them when the store cannot say)."""
        addresses = change.queued
        if addresses is None:
            addresses = frozenset(w.address for w in self.workers.values())
        self.hub.notify(agent_topic(a) for a in addresses)
        workers = self.workers.values()
        if change.intents is None:
            held = {i: w for w in workers for i in w.held}
        else:
            held = {i: w for i in change.intents for w in workers if i in w.held}
        if held:
            self._background(self._changed_elsewhere(held))

    async def _changed_elsewhere(self, held: dict[str, Worker]) -> None:
        """Another daemon changed intents this one's workers hold: a cancel it asked is told
        to the worker (or, one that hears none, ends the intent here); one it ended frees
        the worker's slot. Only what is settled is acted on: a lease this daemon's writer
        is making now is not in the store yet."""
        for intent_id, worker in held.items():
            intent = await self.store.get_intent(intent_id)
            if intent is None:
                continue
            if intent.status.is_final:
                self.finished(intent)
            elif intent.saga_phase == "canceling" and intent.lease_worker == worker.worker_id:
                if worker.hears_cancels:
                    self.cancel_requested(intent)
                elif self.end_canceled is not None and intent_id not in self._ending:
                    self._ending.add(intent_id)
                    try:
                        await self.end_canceled(intent_id)
                    finally:
                        self._ending.discard(intent_id)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- workers ---------------------------------------------------------------------

    def register(
        self, worker_id: str, address: str, *, supervised: bool, limit: int, pid: int | None
    ) -> Worker:
        worker = self.workers.get(worker_id)
        if worker is None:
            worker = Worker(worker_id, address, supervised, limit, pid)
            self.workers[worker_id] = worker
            self._tell_listening()
        elif worker.address != address:
            raise BadInput(
                f"worker {worker_id} serves {worker.address}, not {address}",
                details={"worker_id": worker_id},
            )
        return worker

    # -- delivery by the write that queues an intent (the store's Deliverer) -------------

    def claim(self, address: str, intent_id: str) -> str | None:
        """A worker listening for `address` with a free slot, which now holds `intent_id`:
        the write that queued it delivers it too, instead of a lease write of its own."""
        if self.blocked(address):
            return None
        best: Worker | None = None
        for worker in self.workers.values():
            if worker.address != address or worker.streams == 0:
                continue
            free = worker.limit - len(worker.held)
            if free > 0 and (best is None or free > best.limit - len(best.held)):
                best = worker
        if best is None:
            return None
        best.held.add(intent_id)
        best.claiming.add(intent_id)
        return best.worker_id

    def unclaim(self, worker_id: str, intent_id: str) -> None:
        """The write did not deliver `intent_id` after all (older intents were queued)."""
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.held.discard(intent_id)
            worker.claiming.discard(intent_id)

    def free(self, worker_id: str, intent_id: str) -> bool:
        """A write completes `intent_id`: its slot takes the next queued intent in that write."""
        worker = self.workers.get(worker_id)
        if worker is None or intent_id not in worker.held:
            return False
        worker.held.discard(intent_id)
        return True

    def _tell_listening(self) -> None:
        """On a shared store, record which addresses this daemon's workers listen for, so
        that the other daemons know those agents too (`Store.known_addresses`)."""
        if not self.store.shared or self.store.daemon is None:
            return
        now = frozenset(w.address for w in self.workers.values())
        if now != self._listening:
            self._listening = now
            self._background(self._write_listening(now))  # written in the order told

    async def _write_listening(self, addresses: frozenset[str]) -> None:
        failures: tuple[type[Exception], ...] = (AxmeError, *self.store.error_types)
        try:
            await self.store.set_listening(addresses)
        except failures as exc:  # the next tick says it again
            log.warning("could not record the addresses this daemon listens for: %s", exc)
            self._listening = None

    def unfree(self, worker_id: str, intent_id: str) -> None:
        """The write that freed the slot rolled back: the intent is the worker's again."""
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.held.add(intent_id)

    def workers_for(self, address: str) -> list[Worker]:
        return [w for w in self.workers.values() if w.address == address]

    def heartbeat(self, worker_id: str) -> bool:
        worker = self.workers.get(worker_id)
        if worker is None:
            return False
        worker.last_seen = time.monotonic()
        return True

    async def worker_gone(
        self, worker_id: str, reason: str, details: dict[str, Any] | None = None
    ) -> list[Intent]:
        """Release everything the worker held: a failed attempt of each of its intents,
        redelivered to the next worker (see `redelivery_delay`)."""
        worker = self.workers.pop(worker_id, None)
        self._tell_listening()
        released = await self.store.release(worker_id=worker_id, reason=reason, details=details)
        await self.requeued(released)
        if released:
            log.info(
                "released %d deliveries of %s: %s",
                len(released),
                worker.address if worker else worker_id,
                reason,
            )
        return [intent for intent, _ in released]

    async def requeued(self, released: list[tuple[Intent, Event]]) -> None:
        """Deliveries ended: remember why, and wake the streams that can take them."""
        addresses = set()
        for intent, event in released:
            holder = None
            if intent.status is IntentStatus.SUBMITTED:
                # The write that put it back may have delivered it to another worker already.
                now = await self.store.get_intent(intent.intent_id)
                holder = self._holder(intent.intent_id, now)
            for worker in self.workers.values():
                worker.cancels.discard(intent.intent_id)
                if worker.worker_id != holder:
                    worker.held.discard(intent.intent_id)
            if holder is not None:
                continue
            if intent.status is IntentStatus.SUBMITTED:
                self._reasons[intent.intent_id] = str((event.details or {}).get("reason", ""))
                addresses.add(intent.to_agent)
            elif intent.status.is_final and self.on_final is not None:
                self._background(self.on_final(intent))
            elif intent.status is IntentStatus.WAITING and self.on_timer is not None:
                self.on_timer()  # its backoff's timer
        self.hub.notify(agent_topic(a) for a in addresses)

    async def let_go(self, intents: list[Intent]) -> None:
        """These intents' deliveries ended without ending them (a workflow moved on): free
        the slots of the workers that held them, unless the write delivered one again."""
        for intent in intents:
            holder = self._holder(intent.intent_id, await self.store.get_intent(intent.intent_id))
            for worker in self.workers.values():
                if worker.worker_id != holder:
                    worker.held.discard(intent.intent_id)
        self.hub.notify(agent_topic(i.to_agent) for i in intents)

    def _holder(self, intent_id: str, stored: Intent | None) -> str | None:
        """The worker that holds `intent_id`: one a write delivered it to and has not
        settled (its COMMIT may still be on its way: the store does not show it yet), else
        the store's lease."""
        for worker in self.workers.values():
            if intent_id in worker.claiming:
                return worker.worker_id
        return stored.lease_worker if stored is not None else None

    def finished(self, intent: Intent) -> None:
        """A worker reported an outcome: free its slot and wake its streams."""
        self._reasons.pop(intent.intent_id, None)
        for worker in self.workers.values():
            worker.cancels.discard(intent.intent_id)
            if intent.intent_id in worker.held:
                worker.held.discard(intent.intent_id)
        self.hub.notify([agent_topic(intent.to_agent)])

    def hears_cancels(self, intent: Intent) -> bool:
        """Whether the worker that runs `intent` is told of cancels (its handler then stops
        at its next ctx call); one that is not (an AXME SDK agent) has its intent canceled
        at once. A worker of another daemon sharing the store is asked: that daemon tells
        it, or ends the intent when it hears none (`remote_change`), or its leases lapse."""
        worker = self.workers.get(intent.lease_worker or "")
        if worker is not None:
            return worker.hears_cancels
        me = self.store.daemon.daemon_id if self.store.daemon else None
        return (
            self.store.shared
            and intent.lease_worker is not None
            and intent.lease_daemon not in (None, me)
        )

    def cancel_requested(self, intent: Intent) -> None:
        """Tell the worker that runs `intent` (on its streams) that a cancel was asked."""
        worker = self.workers.get(intent.lease_worker or "")
        if worker is not None:
            worker.cancels.add(intent.intent_id)
            self.hub.notify([agent_topic(intent.to_agent)])

    def queued(self, address: str) -> None:
        self.hub.notify([agent_topic(address)])

    def pushed(self, worker_id: str, intent: Intent) -> None:
        """A write delivered `intent` to the worker: its stream reads it when woken."""
        self._reasons.pop(intent.intent_id, None)
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.claiming.discard(intent.intent_id)
            worker.pushes += 1
            worker.inbox.append(intent)
        self.hub.notify([agent_topic(intent.to_agent)])

    async def _reap_forever(self) -> None:
        tick = min(1.0, self.lease_grace / 4)
        delay = tick
        while True:
            await asyncio.sleep(delay)
            delay = tick
            if self.store.shared:
                self._tell_listening()
                try:
                    await self._heartbeat()
                    delay = min(tick, await self._next_lapse())
                except Exception:  # the store says why in its log; the next beat tries again
                    log.exception("heartbeat failed")
            now = time.monotonic()
            for worker in list(self.workers.values()):
                if worker.supervised or worker.streams > 0:
                    continue
                if now - worker.last_seen > self.lease_grace:
                    await self.worker_gone(
                        worker.worker_id,
                        f"worker {worker.worker_id} stopped listening "
                        f"(no stream or heartbeat for {self.lease_grace:g}s)",
                    )

    # -- the agent stream --------------------------------------------------------------

    async def stream(
        self,
        address: str,
        worker_id: str | None,
        *,
        since: int,
        wait_seconds: float,
        limit: int | None,
        notices: bool = False,
    ) -> AsyncIterator[Delivery | CancelNotice | StreamTimeout | KeepAlive]:
        """Deliveries for one worker: first those it holds past `since` (a reconnecting
        worker gets them again), then new leases up to its limit, for `wait_seconds`; with
        `notices`, a `CancelNotice` for each intent it runs whose cancel was asked."""
        worker_id = worker_id or f"anon-{uuid.uuid4().hex[:12]}"
        worker = self.register(worker_id, address, supervised=False, limit=limit or 1, pid=None)
        if limit is not None:
            worker.limit = limit
        worker.hears_cancels = worker.hears_cancels or notices
        worker.streams += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        cursor = since
        serving = False
        #: What this stream sent, by intent: a push settled while the stream awaited a lease
        #: of its own carries an earlier cursor than that lease, so `cursor` cannot tell.
        sent: dict[str, int] = {}
        told: set[str] = set()  # the cancels this stream told of
        # First what it holds already (a reconnect), from the store; then what writes
        # push to it, from its inbox.
        worker.inbox.clear()
        for intent in await self.store.leased_to(worker_id, cursor):
            worker.held.add(intent.intent_id)
            worker.inbox.append(intent)
        try:
            with self.hub.subscribe(agent_topic(address)) as wake:
                while True:
                    wake.clear()
                    if self.blocked(address):  # killed: its next stream is refused
                        yield StreamTimeout(cursor)
                        return
                    if notices and worker.cancels - told:
                        for intent_id in sorted(worker.cancels - told):
                            told.add(intent_id)
                            yield CancelNotice(intent_id)
                    pushed, worker.inbox = worker.inbox, []
                    if len(sent) > 2 * worker.limit + 64:
                        sent = {i: seq for i, seq in sent.items() if i in worker.held}
                    for intent in pushed:
                        # Skipped: sent already, or ended or taken back since it was pushed.
                        seq = intent.delivery_seq
                        if intent.intent_id in worker.held and sent.get(intent.intent_id, -1) < seq:
                            sent[intent.intent_id] = seq
                            cursor = max(cursor, seq)
                            serving = serving or self._serving(worker_id)
                            yield await self._delivery(intent)
                    free = worker.limit - len(worker.held)
                    if free > 0 and await self.store.has_queued(address):
                        leased = await self.store.lease(address, worker_id, free, self._reasons)
                        for intent, _ in leased:
                            self._reasons.pop(intent.intent_id, None)
                            worker.held.add(intent.intent_id)
                            sent[intent.intent_id] = intent.delivery_seq
                            cursor = max(cursor, intent.delivery_seq)
                            serving = serving or self._serving(worker_id)
                            yield await self._delivery(intent)
                        if leased:
                            continue  # more may be queued than fit in one lease call
                    held = await self.hub.hold(wake, deadline)
                    if held == "end":
                        yield StreamTimeout(cursor)
                        return
                    if held == "keepalive":
                        yield KeepAlive()
        finally:
            worker.streams -= 1
            worker.last_seen = time.monotonic()

    def _serving(self, worker_id: str) -> bool:
        if self.on_serving is not None:
            self.on_serving(worker_id)
        return True

    async def _delivery(self, intent: Intent) -> Delivery:
        steps = []
        if may_have_steps(intent):
            steps = [s.to_wire() for s in await self.store.list_steps(intent.intent_id)]
        return Delivery(intent, steps)


#: Events of an intent delivered once and nothing else: created, submitted, delivered.
_FIRST_DELIVERY_EVENTS = 3


def may_have_steps(intent: Intent) -> bool:
    """Whether a delivery must carry recorded steps. Every step record appends an event, so
    an intent with no more events than a first delivery makes has none: that delivery skips
    the read. Any other (a crash redelivery, a wait's end, `axme retry`) replays them all."""
    return intent.last_seq > _FIRST_DELIVERY_EVENTS
