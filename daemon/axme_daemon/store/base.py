"""The storage seam: domain-level async methods, no SQL and no driver types.

Every backend (SQLite now, PostgreSQL later) implements `Store`, and one contract suite in
`tests/integration/test_store_contract.py` runs against each. Each write method is one
transaction that changes an intent and appends its events together, so the timeline can
never disagree with the status.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from axme_cli.errors import AxmeError
from axme_cli.protocol import IntentStatus
from axme_daemon.intents import Event, Intent, NewIntent, Step, Task

#: An AXME inbox thread: its intent and its entries, oldest first (`pos`, `message_id`,
#: `kind`, `owner`, `actor`, `at`, `details`, `deleted_at`).
Thread = tuple[Intent, list[dict[str, Any]]]

#: Called after each commit with the ids of the intents whose events changed.
CommitListener = Callable[[Iterable[str]], None]


@dataclass(frozen=True)
class RemoteChange:
    """What another daemon's commit changed, as a shared store hears of it: intents put in
    the queue for these addresses (None: anything may have changed, e.g. the store missed
    news while reconnecting), whether timers were armed or moved, and which intents it
    changed (None: any; this daemon's workers may hold some, a cancel asked of them)."""

    queued: frozenset[str] | None
    timers: bool
    intents: frozenset[str] | None = frozenset()


RemoteListener = Callable[[RemoteChange], None]


class Deliverer(Protocol):
    """Who may take an intent the moment a write queues it, or frees a slot (the
    dispatcher): the write then delivers it too, instead of a stream's lease write after it."""

    def claim(self, address: str, intent_id: str) -> str | None:
        """A listening worker with a free slot for `address`, now holding `intent_id`."""

    def unclaim(self, worker_id: str, intent_id: str) -> None:
        """The write did not deliver `intent_id` after all."""

    def free(self, worker_id: str, intent_id: str) -> bool:
        """The write ends `intent_id`'s delivery to the worker: its slot is free (for the
        next queued intent, in the same write). Whether the worker held it."""

    def unfree(self, worker_id: str, intent_id: str) -> None:
        """The write that freed the slot rolled back (it runs again): the worker holds
        `intent_id` again."""

    def pushed(self, worker_id: str, intent: Intent) -> None:
        """`intent` was delivered to the worker, durably: wake its stream."""


@dataclass(frozen=True)
class IntentFilter:
    status: IntentStatus | None = None
    to_agent: str | None = None
    intent_type: str | None = None
    id_prefix: str | None = None
    #: Matches an id prefix, or a part of the intent type or the agent address.
    text: str | None = None


@dataclass(frozen=True)
class Page:
    intents: list[Intent]
    next_cursor: str | None


@dataclass
class Effects:
    """What a wait operation changed besides its result, for the engine to act on."""

    requeued: list[Intent] = field(default_factory=list)  # back in the queue: wake agents
    finished: list[Intent] = field(default_factory=list)  # final now: wake a waiting parent
    notices: list[dict[str, Any]] = field(default_factory=list)  # for notification hooks
    touched: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class WorkerReport:
    """One intent's part of a worker's report: step records, and its result if it completed."""

    intent_id: str
    steps: Sequence[tuple[int, str, Any]] = ()
    completed: bool = False
    result: Any = None


@dataclass(frozen=True)
class DaemonInfo:
    """The daemon a store serves, as other daemons sharing the store see it. `daemon_id`
    is its home's, kept across restarts: a restart takes back (and ends) its own leases."""

    daemon_id: str
    host: str
    pid: int
    home: str
    #: Its leases lapse this long after its last heartbeat.
    lease_grace: float


@dataclass(frozen=True)
class StoreStats:
    """Counters a test or a benchmark reads to check that group commit keeps working."""

    commits: int
    writes: int
    #: Waits for the disk (fsyncs) that made commits durable; several commits may share one.
    syncs: int = 0


class Store(ABC):
    """Durable home of intents and their events."""

    #: The backend's own exception classes, which `translate_error` may make sense of.
    error_types: tuple[type[Exception], ...] = ()
    #: Whether several daemons may share it (then each heartbeats, and their leases lapse).
    shared: bool = False
    #: The daemon it serves (`set_daemon`); None for a store opened by a tool or a test.
    daemon: DaemonInfo | None = None

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def add_commit_listener(self, listener: CommitListener) -> None:
        """`listener` hears of this daemon's commits, and, on a shared store, of the intents
        other daemons' commits changed."""

    @abstractmethod
    def add_remote_listener(self, listener: RemoteListener) -> None:
        """On a shared store, `listener` hears what other daemons' commits queued or timed
        (a store only one daemon writes never calls it)."""

    @abstractmethod
    def set_deliverer(self, deliverer: Deliverer) -> None:
        """From now on, an intent a write puts in the queue (a decision, a signal, a timer,
        a retry or a release ends its wait) goes to a listening worker in the same write,
        when one has a free slot and nothing older waits."""

    @abstractmethod
    async def create_intent(self, new: NewIntent, intent_id: str) -> tuple[Intent, bool]:
        """Insert with `intent.created` and `intent.submitted`; return (intent, created).

        With an idempotency key already seen, return the existing intent and False, or raise
        `IdempotencyConflict` when the request hash differs. Not for an intent with a
        `human_task` (`create_task_intent`).
        """

    @abstractmethod
    async def get_intent(self, intent_id: str) -> Intent | None: ...

    @abstractmethod
    async def get_intents(self, intent_ids: Iterable[str]) -> list[Intent]:
        """The ones of `intent_ids` that exist, in no particular order."""

    @abstractmethod
    async def list_intents(self, filt: IntentFilter, limit: int, cursor: str | None) -> Page:
        """Newest first; `cursor` is the opaque `next_cursor` of the previous page."""

    @abstractmethod
    async def list_events(self, intent_id: str, since: int = 0, limit: int = 1000) -> list[Event]:
        """Events with `seq > since`, ascending."""

    @abstractmethod
    async def transition(
        self,
        intent_id: str,
        status: IntentStatus,
        *,
        worker_id: str | None = None,
        event_type: str | None = None,
        actor: str | None = None,
        details: dict[str, Any] | None = None,
        result: Any = None,
        error: Any = None,
        steps: Sequence[tuple[int, str, Any]] = (),
        by_agent: bool = False,
        ask_worker: bool = False,
    ) -> tuple[Intent, Event]:
        """Move an intent to `status` and append its event, in one transaction.

        Raises `NotFound`, or `AlreadyFinal`/`Conflict` when the lifecycle forbids it, or
        `Conflict` when `worker_id` is given and another worker holds the delivery, or when
        `by_agent` (an agent's outcome) and the intent waits for a person. `steps`
        (ordinal, key, result) are recorded first, in the same transaction, all or none.
        FAILED, CANCELED and TIMED_OUT undo the steps recorded with a compensation first
        (`lifecycle/compensation.py`); with `ask_worker` (its worker hears cancels), a
        CANCELED of an intent in progress is asked of its worker instead.
        """

    # -- delivery --------------------------------------------------------------------

    @abstractmethod
    def set_daemon(self, daemon: DaemonInfo) -> None:
        """Before `open`: the daemon this store serves. Its leases carry its id, and on a
        shared store its agents and projects are its own (the registry methods see only
        those)."""

    @abstractmethod
    async def register_daemon(self) -> None:
        """Record the daemon (again, after a restart of its home), heartbeat now."""

    @abstractmethod
    async def heartbeat(self) -> list[tuple[Intent, Event]]:
        """Renew the daemon's heartbeat (its leases with it), and end every delivery held
        through another daemon whose heartbeat is older than its lease grace (or that is
        not registered): each is a failed attempt, as `release` ends it."""

    @abstractmethod
    async def unregister_daemon(self) -> None:
        """The daemon stops: its row goes (what it still holds lapses at once)."""

    @abstractmethod
    async def list_daemons(self) -> list[dict[str, Any]]:
        """Registered daemons, each with `live` (its heartbeat within its lease grace) and
        `lapses_in` (seconds until it is not, negative once it is not), by the store's clock,
        and `listening` (the addresses its workers listen for, as it last said)."""

    @abstractmethod
    async def leases_by_daemon(self) -> dict[str, int]:
        """How many deliveries each daemon's workers hold now, by daemon id (a daemon that
        holds none is absent)."""

    @abstractmethod
    async def set_listening(self, addresses: Iterable[str]) -> None:
        """The addresses this daemon's workers listen for now (`list_daemons`); registering
        the daemon again clears them (its workers went with its last run)."""

    @abstractmethod
    async def known_addresses(self) -> set[str]:
        """The addresses some live daemon serves: an agent registered there and not
        removed, or one its workers listen for. On a store one daemon uses, its agents."""

    @abstractmethod
    async def lease(
        self, address: str, worker_id: str, limit: int, reasons: dict[str, str]
    ) -> list[tuple[Intent, Event]]:
        """Deliver up to `limit` queued intents of `address` to `worker_id` (oldest first):
        DELIVERED, `delivery_attempt` + 1, a new `delivery_seq`, `intent.delivered`
        (with `reasons[intent_id]` when it is a redelivery)."""

    @abstractmethod
    async def release(
        self,
        *,
        intent_ids: list[str] | None = None,
        worker_id: str | None = None,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> list[tuple[Intent, Event]]:
        """End deliveries (of these intents, or all of one worker's, or all of this daemon's:
        on a shared store those held through it or through no daemon) as failed attempts:
        back to SUBMITTED (or WAITING a backoff first, see `redelivery_delay`), or FAILED
        with `intent.delivery_failed` once attempts are used up. `details` say more of why
        (they go into the event, and into the error of an intent that fails)."""

    @abstractmethod
    async def retry(self, intent_id: str, actor: str | None) -> tuple[Intent, Event]:
        """FAILED or TIMED_OUT back to SUBMITTED with fresh attempts; `Conflict` otherwise."""

    @abstractmethod
    async def record_step(
        self, intent_id: str, ordinal: int, key: str, result: Any, worker_id: str | None
    ) -> tuple[Step, list[Event]]:
        """Record a step result once (the same ordinal and key again returns the record)."""

    @abstractmethod
    async def report(
        self, reports: Sequence[WorkerReport], worker_id: str | None
    ) -> list[Intent | AxmeError | None]:
        """Apply several intents' reports in one transaction, each all or none: per report,
        the intent it completed, None (steps only), or the error that refused it."""

    @abstractmethod
    async def record_steps(
        self, intent_id: str, steps: Sequence[tuple[int, str, Any]], worker_id: str | None
    ) -> list[Step]:
        """Several step records (ordinal, key, result) at once: all are recorded or none."""

    @abstractmethod
    async def progress(
        self, intent_id: str, message: str, data: dict[str, Any], worker_id: str | None
    ) -> list[Event]: ...

    @abstractmethod
    async def record_compensation(
        self, intent_id: str, key: str, outcome: dict[str, Any], worker_id: str | None
    ) -> tuple[Intent, Effects]:
        """A compensating intent's worker ran the compensation of step `key` (`ok`,
        `result`) or gave up on it (`error`, `attempts`): recorded once. The last one ends
        the intent, compensated; a failure opens a manual compensation task."""

    @abstractmethod
    async def list_steps(self, intent_id: str) -> list[Step]: ...

    @abstractmethod
    async def leased_to(self, worker_id: str, after_delivery_seq: int) -> list[Intent]:
        """Open intents delivered to `worker_id` with `delivery_seq` above the cursor."""

    @abstractmethod
    async def has_queued(self, address: str) -> bool:
        """Whether any intent for `address` waits for a delivery (a cheap read, so that an
        idle stream need not queue a write to find nothing to lease)."""

    @abstractmethod
    async def count_queued(self, address: str) -> int: ...

    # -- durable waits ---------------------------------------------------------------

    @abstractmethod
    async def begin_wait(
        self,
        intent_id: str,
        worker_id: str | None,
        ordinal: int,
        key: str,
        kind: str,
        arguments: dict[str, Any],
    ) -> tuple[dict[str, Any], Effects]:
        """A handler step starts waiting (kind human, time, signal or child); the intent goes
        to WAITING without a lease, unless the wait is already over (`state: done`)."""

    @abstractmethod
    async def create_task_intent(
        self, new: NewIntent, intent_id: str
    ) -> tuple[Intent, bool, Effects]:
        """`create_intent` for an intent with its own `human_task`: it is inserted WAITING
        for the decision, with its task, in one write (all or nothing)."""

    @abstractmethod
    async def create_workflow_intent(
        self,
        new: NewIntent,
        intent_id: str,
        plan: dict[str, Any],
        scenario_id: str | None,
        keys: Sequence[tuple[str, str, list[str]]] = (),
    ) -> tuple[Intent, bool, Effects]:
        """`create_intent` for an intent that runs a workflow (`scenarios.py`'s plan): the
        intent, its workflow started at the entry step, and `keys` (name, hash, scopes: the
        agents' keys a scenario provisions) in one write, all or nothing. With an
        idempotency key already seen, the intent as it is and False, nothing written."""

    @abstractmethod
    async def get_workflow(self, intent_id: str) -> dict[str, Any] | None:
        """The workflow an intent runs, as clients read it (which step, who holds it)."""

    @abstractmethod
    async def decide(
        self,
        task_id: str,
        outcome: str,
        actor: str,
        comment: str | None,
        data: dict[str, Any],
    ) -> tuple[Task, Effects]:
        """Record a decision once (`Conflict` after); it resumes whatever waits on the task."""

    @abstractmethod
    async def send_signal(self, intent_id: str, name: str, data: Any) -> tuple[bool, Effects]:
        """Resume the wait for `name`, or keep the signal for a wait to come."""

    @abstractmethod
    async def child_finished(self, child: Intent) -> Effects: ...

    @abstractmethod
    async def fire_timers(self, now: float) -> Effects:
        """Apply every timer due by `now`, each exactly once. A timer armed after `now` (the
        clock went back) is first brought forward to fire one full duration from `now`."""

    @abstractmethod
    async def next_timer(self, now: float) -> float | None:
        """The earliest due time, or `now` when a timer needs bringing forward."""

    @abstractmethod
    async def list_tasks(
        self,
        *,
        status: str | None = None,
        intent_id: str | None = None,
        prefix: str | None = None,
        limit: int = 200,
    ) -> list[Task]: ...

    # -- agent registry --------------------------------------------------------------

    @abstractmethod
    async def put_agents(
        self,
        source: str,
        digest: str | None,
        specs: list[dict[str, Any]],
        replace_source: bool,
        hooks: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Upsert agent specs from `source` (an axme.toml path, or 'cli'); False when
        `digest` says that source is already applied as is. With a digest, the project's
        notification `hooks` are stored with it (replacing its previous ones)."""

    @abstractmethod
    async def list_projects(self) -> list[dict[str, Any]]:
        """Applied projects: `config_path`, `digest`, `applied_at`, `hooks` (a list)."""

    @abstractmethod
    async def delete_agent(self, address: str) -> bool: ...

    @abstractmethod
    async def set_agent_removed(self, address: str, removed: bool) -> bool:
        """Mark a declared agent removed by hand (or back); `list_agents` then shows it with
        `removed: True`, and the next change of its project's file brings it back. False
        when no such agent is stored."""

    @abstractmethod
    async def list_agents(self) -> list[dict[str, Any]]: ...

    # -- API keys --------------------------------------------------------------------

    @abstractmethod
    async def put_api_key(self, name: str, key_hash: str, scopes: list[str]) -> dict[str, Any]:
        """Keep a new key's hash under `name`; `Conflict` when the name is taken."""

    @abstractmethod
    async def list_api_keys(self) -> list[dict[str, Any]]:
        """Every key: `name`, `key_hash`, `scopes` (a list), `created_at`; by name."""

    @abstractmethod
    async def delete_api_key(self, name: str) -> bool: ...

    # -- AXME inbox threads (lifecycle/threads.py, lifecycle/inbox.py) -----------------

    @abstractmethod
    async def inbox_thread(self, intent_id: str) -> Thread | None:
        """The thread of an intent sent with a `reply_to` address, with its entries."""

    @abstractmethod
    async def inbox_threads(self, owner: str | None, limit: int) -> list[Thread]:
        """The threads `owner` holds now (every thread for None), newest change first."""

    @abstractmethod
    async def inbox_changes(
        self, owner: str | None, cursor: int, limit: int
    ) -> list[tuple[int, Thread]]:
        """Thread changes after `cursor` (of `owner`'s threads), in order, with each
        thread as it is now; the int is the change's cursor."""

    @abstractmethod
    async def inbox_reply(
        self, intent_id: str, owner: str | None, actor: str, message: str
    ) -> dict[str, Any]:
        """Add a reply; NotFound unless the thread exists (and `owner` holds it)."""

    @abstractmethod
    async def inbox_delegate(
        self, intent_id: str, owner: str | None, actor: str, delegate_to: str, note: str | None
    ) -> dict[str, Any]:
        """Move the thread to `delegate_to`'s inbox."""

    @abstractmethod
    async def inbox_delete(
        self,
        intent_id: str,
        owner: str | None,
        actor: str,
        mode: str,
        message_ids: list[str] | None,
        limit: int | None,
    ) -> list[str]:
        """Delete replies (those named, or the latest `limit`); the ids deleted."""

    # -- the mesh's kill switch --------------------------------------------------------

    @abstractmethod
    async def kill_agent(self, address: str, actor: str) -> dict[str, Any]:
        """Mark `address` killed; its row (`address`, `killed_at`, `actor`), the first kill's
        when it was killed already."""

    @abstractmethod
    async def resume_agent(self, address: str) -> bool:
        """Lift the kill of `address`; False when it was not killed."""

    @abstractmethod
    async def list_killed_agents(self) -> list[dict[str, Any]]:
        """Every killed address's row, by address."""

    @abstractmethod
    def stats(self) -> StoreStats: ...

    def problem(self) -> str | None:
        """Why the store takes no writes now (damage, a failed sync), for `/health`; or None."""
        return None

    def translate_error(self, exc: Exception) -> AxmeError | None:
        """The clear error for a failure that is the backend's own (a damaged file, a full
        disk) rather than a bug, so that a client sees what it is and not a 500; or None."""
        return None
