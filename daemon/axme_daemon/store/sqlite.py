"""SQLite backend: WAL, a sync before every acknowledgement, and group commit.

All writes go through one write loop. Requests that arrive while a batch is being written
queue up and share the next transaction, so N concurrent creates cost about one commit per
batch instead of one each. A batch's ops (plain functions over `sqlite3`) and its COMMIT run
on the event loop's thread; the COMMIT only writes the WAL, and the WAL syncer thread
(`sqlite_sync.py`) makes it durable, one sync for every batch committed since the last. A
caller's future resolves only after the sync that covers its change: acknowledged means on
disk, as with `synchronous=FULL`, while the next batch is written during the sync instead of
after it. (Running batches in a writer thread cost more in handing the interpreter lock back
and forth with the loop than the writes themselves.)

Reads are short indexed queries, run on the event loop's thread over a second connection,
which WAL lets run beside the writer. A read may see a write up to one sync (about a
millisecond) before it is durable; no write is acknowledged, and no delivery leaves on an
agent stream, before it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from axme_cli.errors import AxmeError, BadInput, StoreDamaged, StoreFull, StoreUnavailable
from axme_cli.protocol import IntentStatus
from axme_daemon.intents import Event, Intent, NewIntent, Step, Task
from axme_daemon.lifecycle import (
    begin,
    compensation,
    daemons,
    delivery,
    human,
    inbox,
    registry,
    scenarios,
    timers,
    waits,
    work,
)
from axme_daemon.lifecycle.human import row_to_task
from axme_daemon.lifecycle.timeline import atomically, load, row_to_event, row_to_intent
from axme_daemon.lifecycle.tx import Tx
from axme_daemon.lifecycle.work import StepInput, row_to_step
from axme_daemon.store.base import (
    CommitListener,
    DaemonInfo,
    Deliverer,
    Effects,
    IntentFilter,
    Page,
    RemoteListener,
    Store,
    StoreStats,
    Thread,
    WorkerReport,
)
from axme_daemon.store.migrations import migrate
from axme_daemon.store.sealing import (
    AGENT_FIELDS,
    HOOK_FIELDS,
    SealedUnreadable,
    Sealer,
    seal_plain_rows,
)
from axme_daemon.store.sqlite_check import (
    check_at_start,
    damaged,
    is_damage,
    is_full,
    opening_failed,
)
from axme_daemon.store.sqlite_sync import WalSyncer
from axme_daemon.store.sqlite_tx import SqliteTx, dict_rows

log = logging.getLogger(__name__)
#: Times a batch the server rolled back for a conflict with another daemon's runs again.
_CONFLICT_RETRIES = 5

T = TypeVar("T")


class StoreBroken(StoreUnavailable):
    """The disk refused to sync the database: the daemon cannot promise durability."""

    code = "store_broken"

    def __init__(self, error: OSError) -> None:
        super().__init__(f"the store cannot sync its writes to disk ({error}); restart the daemon")


#: A write: runs inside the batch transaction, returns its result and the intents it touched.
#: By convention an op raises `AxmeError` only before it writes anything.
WriteOp = Callable[[Tx], tuple[T, Iterable[str]]]
#: A queued write: the op, its caller's future, and whether it may put intents in the queue
#: (then the batch delivers them to listening workers, see `_deliver_queued`).
_Item = tuple[WriteOp[Any], "asyncio.Future[Any]", bool]


@dataclass
class _Batch:
    """A batch's ops run: what its callers and listeners are told once it is on disk."""

    items: list[_Item]
    outcomes: list[tuple[bool, Any]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    #: Deliveries the batch made: (worker id, intent).
    pushes: list[tuple[str, Intent]] = field(default_factory=list)
    commit: int = 0  # the commit number that wrote it, 0: nothing committed
    delivery_seq: int = 0  # the last delivery cursor handed out when it committed


_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)
#: The writer's own: its COMMIT does not wait for the disk, the WAL syncer does, and nothing
#: is acknowledged before (sqlite_sync.py); the syncer also checkpoints.
_WRITER_PRAGMAS = ("PRAGMA synchronous=NORMAL", "PRAGMA wal_autocheckpoint=0")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in _PRAGMAS:
        db.execute(pragma)
    return db


class SqliteStore(Store):
    error_types: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path, *, max_batch: int = 512, key_file: Path | None = None) -> None:
        """`key_file` seals the secrets in agent specs and hooks (default: beside `path`)."""
        self.path = path
        self._key_file = key_file or path.with_name("secrets.key")
        self._sealer: Sealer | None = None
        self._max_batch = max_batch
        self._wdb: sqlite3.Connection | None = None
        self._rdb: sqlite3.Connection | None = None
        self._wtx: Tx | None = None  # the writer's named queries
        self._rtx: Tx | None = None  # the reader's
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._listeners: list[CommitListener] = []
        self._commits = 0
        self._writes = 0
        self._delivery_seq = 0  # last cursor value handed out on the agent streams
        self._syncer: WalSyncer | None = None
        #: Batches committed to the WAL, waiting for the sync that makes them durable.
        self._unsynced: deque[_Batch] = deque()
        self._durable_delivery_seq = 0  # deliveries up to this cursor are on disk
        self._sync_failed: OSError | None = None
        self._writer_failed: str | None = None  # why the writer stopped (`_stop_writing`)
        self._damage: str | None = None  # why the store was found damaged while running
        self._deliverer: Deliverer | None = None
        self._delivered: list[tuple[str, Intent]] = []  # the running batch's deliveries
        self._freed: list[tuple[str, str]] = []  # the slots it freed: (worker id, intent id)
        self.daemon: DaemonInfo | None = None
        self._remote: list[RemoteListener] = []

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_at_start(self.path)
        try:
            await self._open()
        except sqlite3.Error as exc:
            raise opening_failed(self.path, exc) from exc

    async def _open(self) -> None:
        self._wdb = _connect(self.path)
        applied = migrate(self._wdb)
        if applied:
            log.info("schema migrated", extra={"action": "migrate", "versions": applied})
        self._sealer = Sealer(self._key_file)
        if sealed := seal_plain_rows(self._wdb, self._sealer):
            log.info("sealed the secrets of %d rows stored in plain text", sealed)
        for pragma in _WRITER_PRAGMAS:
            self._wdb.execute(pragma)
        loop = asyncio.get_running_loop()
        self._syncer = WalSyncer(
            self.path,
            on_synced=lambda n: loop.call_soon_threadsafe(self._acknowledge, n),
            on_failed=lambda exc: loop.call_soon_threadsafe(self._fail_unsynced, exc),
        )
        self._wtx = SqliteTx(self._wdb)
        self._rdb = _connect(self.path)
        self._rtx = SqliteTx(self._rdb)
        row = self._rtx.one("last_delivery_seq")
        self._delivery_seq = int(row["n"]) if row else 0
        self._durable_delivery_seq = self._delivery_seq
        self._writer = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    async def close(self) -> None:
        """Finish every write already queued, then close the connections."""
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
            self._writer = None
        if self._syncer is not None:
            await asyncio.to_thread(self._syncer.close)  # the last sync, then it stops
            self._syncer = None
            await asyncio.sleep(0)  # run the acknowledgements it posted
        for db in (self._rdb, self._wdb):
            if db is not None:
                db.close()
        self._rdb = self._wdb = None
        self._rtx = self._wtx = None

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    def add_remote_listener(self, listener: RemoteListener) -> None:
        self._remote.append(listener)  # heard only by a shared store (postgres.py)

    def set_deliverer(self, deliverer: Deliverer) -> None:
        self._deliverer = deliverer

    def stats(self) -> StoreStats:
        syncs = self._syncer.syncs if self._syncer is not None else 0
        return StoreStats(commits=self._commits, writes=self._writes, syncs=syncs)

    @property
    def _reader(self) -> sqlite3.Connection:
        if self._rdb is None:
            raise RuntimeError("the store is not open")
        return self._rdb

    @property
    def _reads(self) -> Tx:
        if self._rtx is None:
            raise RuntimeError("the store is not open")
        return self._rtx

    # -- group commit ----------------------------------------------------------------

    def problem(self) -> str | None:
        if self._writer_failed is not None:
            return self._writer_failed
        if self._damage is not None:
            return self._damage
        if self._sync_failed is not None:
            return StoreBroken(self._sync_failed).message
        return None

    def translate_error(self, exc: Exception) -> AxmeError | None:
        if is_damage(exc):
            if self._damage is None:
                self._damage = damaged(self.path, str(exc), running=True).message
                log.critical("%s", self._damage, extra={"action": "damage"})
            return StoreDamaged(self._damage)
        if is_full(exc):
            return StoreFull(
                f"the disk holding AXME_HOME ({self.path.parent}) is full: nothing was "
                "written; free space there and send again (reads still work)"
            )
        return None

    async def _write(self, op: WriteOp[T], *, queues: bool = False) -> T:
        if self._writer_failed is not None:
            raise StoreUnavailable(self._writer_failed)
        if self._sync_failed is not None:
            raise StoreBroken(self._sync_failed)
        if self._damage is not None:
            raise StoreDamaged(self._damage)
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, fut, queues))
        # Once queued, the write happens even if the caller goes away (cancelled, its future
        # is skipped when the batch settles). Not shielded: a shield costs the caller one
        # more turn of the loop before it sees the answer.
        return await fut

    async def _write_loop(self) -> None:
        while (first := await self._queue.get()) is not None:
            batch = [first]
            closing = False
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    closing = True
                    break
                batch.append(item)
            run = _Batch(batch)
            before = self._commits
            scan = any(queues for _, _, queues in batch)
            try:
                run.outcomes = await self._run_batch(
                    [op for op, _, _ in batch], run.touched, run.pushes, scan
                )
            except Exception as exc:
                self._stop_writing(batch, exc)
                return
            if self._commits == before:  # nothing committed: nothing to wait for
                self._settle(run)
            else:
                run.commit, run.delivery_seq = self._commits, self._delivery_seq
                self._committed(run)
            await asyncio.sleep(0)  # let the requests that wait for the loop go first
            if closing:
                return

    def _stop_writing(self, batch: list[_Item], exc: Exception) -> None:
        """A batch failed in a way the writer does not know how to handle (a defect): what
        its ops did is unknown, so the writer stops, and this batch, the writes queued
        behind it and every write after are refused with the reason (`/health` says it
        too) instead of waiting forever. Restarting the daemon recovers from the store."""
        self._writer_failed = (
            f"the store's writer failed ({type(exc).__name__}: {exc}); restart the daemon"
        )
        log.critical("%s", self._writer_failed, exc_info=exc, extra={"action": "write"})
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                batch.append(item)
        for _, fut, _ in batch:
            if not fut.done():
                fut.set_exception(StoreUnavailable(self._writer_failed))

    def _committed(self, run: _Batch) -> None:
        """`run` is committed to the WAL: its callers are answered once it is synced."""
        assert self._syncer is not None
        self._unsynced.append(run)
        self._syncer.written(run.commit)

    def _acknowledge(self, synced: int) -> None:
        """Commits up to `synced` are on disk: answer their callers."""
        while self._unsynced and self._unsynced[0].commit <= synced:
            run = self._unsynced.popleft()
            self._durable_delivery_seq = run.delivery_seq
            self._settle(run)

    def _settle(self, run: _Batch) -> None:
        for (_, fut, _), (ok, value) in zip(run.items, run.outcomes, strict=True):
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        if run.touched:
            for listener in self._listeners:
                listener(run.touched)
        if self._deliverer is not None:
            for worker_id, intent in run.pushes:
                try:
                    self._deliverer.pushed(worker_id, intent)
                except Exception:  # the write is done and answered; a stream reads it later
                    log.exception("telling the dispatcher of a delivery failed")

    def _fail_unsynced(self, error: OSError) -> None:
        """The disk refused a sync: no write since the last good one may be called done."""
        self._sync_failed = error
        while self._unsynced:
            run = self._unsynced.popleft()
            for worker_id, intent in run.pushes:
                if self._deliverer is not None:
                    self._deliverer.unclaim(worker_id, intent.intent_id)
            for _, fut, _ in run.items:
                if not fut.done():
                    fut.set_exception(StoreBroken(error))

    async def _run_batch(
        self,
        ops: list[WriteOp[Any]],
        touched: set[str],
        pushes: list[tuple[str, Intent]],
        scan: bool,
        conflicts: int = 0,
        savepoints: bool = False,
    ) -> list[tuple[bool, Any]]:
        """Run `ops` in one transaction, on the loop's thread; one outcome per op.
        (`savepoints`: a store that leaves them out, see `_refused`, sends them this time.)

        They are short indexed writes, and the COMMIT only writes the WAL: the wait for the
        disk is the syncer's. (Running batches in a writer thread cost more in handing the
        interpreter lock back and forth with the loop than the writes themselves.)
        """
        assert self._wtx is not None
        tx = self._wtx
        outcomes: list[tuple[bool, Any]] = []
        ids: set[str] = set()
        delivered: list[tuple[str, Intent]] = []
        self._delivered = delivered  # what ops deliver themselves (a create) lands here too
        freed: list[tuple[str, str]] = []
        self._freed = freed
        try:
            self._begin(savepoints=savepoints)
            for op in ops:
                try:
                    result, changed = op(tx)
                except AxmeError as exc:
                    outcomes.append((False, exc))
                else:
                    outcomes.append((True, result))
                    ids.update(changed)
            if scan and ids and self._deliverer is not None:
                self._deliver_queued(tx, ids)
            self._before_commit(tx, ids)
            await self._commit()
        except Exception as exc:
            self._rollback()
            for worker_id, intent in delivered:
                assert self._deliverer is not None
                self._deliverer.unclaim(worker_id, intent.intent_id)
            for worker_id, intent_id in freed:  # the slots are taken until it runs again
                assert self._deliverer is not None
                self._deliverer.unfree(worker_id, intent_id)
            if self._conflict(exc) and conflicts < _CONFLICT_RETRIES:
                # Another daemon's transaction and this one each waited for the other: the
                # server rolled this one back. Nothing of it happened; run it again.
                log.warning("batch of %d rolled back (%s); running it again", len(ops), exc)
                return await self._run_batch(ops, touched, pushes, scan, conflicts + 1)
            problem = self.translate_error(exc)
            if problem is not None:  # the store's, not one op's: each would fail the same
                log.error("batch of %d failed: %s", len(ops), problem.message)
                return [(False, problem)] * len(ops)
            refused = self._refused(exc)
            if refused and len(ops) == 1:  # it refused: again, undoing just its own writes
                return await self._run_batch(ops, touched, pushes, scan, conflicts, savepoints=True)
            if len(ops) > 1:
                # One op broke the shared transaction: retry each alone so that only the
                # faulty one fails (or refuses: not a failure).
                level = logging.INFO if refused else logging.WARNING
                log.log(level, "batch of %d failed (%s); retrying one by one", len(ops), exc)
                alone = [await self._run_batch([op], touched, pushes, scan) for op in ops]
                return [o for outcomes in alone for o in outcomes]
            log.exception("write failed", extra={"action": "write"})
            return [(False, exc)]
        self._commits += 1
        self._writes += sum(1 for ok, _ in outcomes if ok)
        touched.update(ids)
        pushes.extend(delivered)
        return outcomes

    def _conflict(self, exc: Exception) -> bool:
        """Whether the server rolled the transaction back for a conflict with another
        writer's (a deadlock): run again, it commits. One writer per SQLite file: never."""
        return False

    def _refused(self, exc: Exception) -> bool:
        """Whether a write of the batch refused after writing, with no savepoint sent to
        undo just its writes (`postgres_tx.UndoBatch`): the batch runs again, one by one,
        then with savepoints. SQLite always sends them."""
        return False

    def _before_commit(self, tx: Tx, ids: set[str]) -> None:
        """The batch changed the intents `ids` and is about to commit: a store other daemons
        share tells them here. One daemon per SQLite file: nothing to tell."""

    def _begin(self, *, savepoints: bool) -> None:
        """One writer at a time: a `*_for_update` read needs no lock of its own. (SQLite's
        savepoints cost next to nothing: always sent.)"""
        self._exec("BEGIN IMMEDIATE")

    async def _commit(self) -> None:
        """Awaited: a store whose COMMIT waits for a server lets the loop serve meanwhile."""
        self._exec("COMMIT")

    def _exec(self, statement: str) -> None:
        assert self._wdb is not None
        self._wdb.execute(statement)

    def _rollback(self) -> None:
        assert self._wdb is not None
        with contextlib.suppress(sqlite3.Error):  # a damaged file may refuse even that
            if self._wdb.in_transaction:
                self._wdb.execute("ROLLBACK")

    def _read(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        """A read put together here (filters, lists of ids), `?` for each parameter."""
        return dict_rows(self._reader.execute(sql, args))

    def _deliver_queued(self, tx: Tx, ids: set[str]) -> None:
        """Deliver, in this transaction, the intents it put in the queue that a listening
        worker can take now (a person's own intent is nobody's delivery)."""
        rows = [row for i in ids if (row := tx.one("queued_by_id", intent_id=i)) is not None]
        for row in sorted(rows, key=lambda r: int(r["pos"])):
            self._deliver(tx, row_to_intent(row))

    def _deliver(self, tx: Tx, intent: Intent, first_at: int | None = None) -> Intent:
        """`intent`, queued, delivered to a listening worker with a free slot when there is
        one and nothing older waits; else as it was. `first_at`: its pos, read first in its
        queue in this transaction."""
        if self._deliverer is None:
            return intent
        worker_id = self._deliverer.claim(intent.to_agent, intent.intent_id)
        if worker_id is None:
            return intent
        leased = delivery.deliver_queued(tx, intent, self._holder(worker_id), first_at)
        if leased is None:
            self._deliverer.unclaim(worker_id, intent.intent_id)
            return intent
        self._delivered.append((worker_id, leased))
        return leased

    def _holder(self, worker_id: str) -> delivery.Holder:
        return delivery.Holder(worker_id, self.daemon_id, self._next_delivery_seq)

    def _next_delivery_seq(self) -> int:
        """The next delivery cursor: one writer per file, so a counter; a batch that
        rolls back leaves a gap, which no stream minds."""
        self._delivery_seq += 1
        return self._delivery_seq

    # -- daemons sharing the store -------------------------------------------------

    def set_daemon(self, daemon: DaemonInfo) -> None:
        self.daemon = daemon

    @property
    def daemon_id(self) -> str | None:
        return None if self.daemon is None else self.daemon.daemon_id

    @property
    def _owner(self) -> str:
        """Whose agents and projects this store's registry reads and writes: one daemon's
        on a shared store, the file's (everything) on SQLite."""
        return self.daemon.daemon_id if self.shared and self.daemon is not None else ""

    def _daemon_fields(self) -> dict[str, Any]:
        d = self.daemon
        if d is None:
            raise RuntimeError("the store has no daemon: call set_daemon first")
        return {
            "daemon_id": d.daemon_id,
            "host": d.host,
            "pid": d.pid,
            "home": d.home,
            "lease_grace": d.lease_grace,
        }

    async def register_daemon(self) -> None:
        await self._write(partial(daemons.register, **self._daemon_fields(), adopt=self.shared))

    async def heartbeat(self) -> list[tuple[Intent, Event]]:
        return await self._write(partial(daemons.heartbeat, **self._daemon_fields()), queues=True)

    async def unregister_daemon(self) -> None:
        if self.daemon is not None:
            await self._write(partial(daemons.unregister, daemon_id=self.daemon.daemon_id))

    async def list_daemons(self) -> list[dict[str, Any]]:
        return daemons.list_daemons(self._reads)

    async def leases_by_daemon(self) -> dict[str, int]:
        return daemons.leases_by_daemon(self._reads)

    async def set_listening(self, addresses: Iterable[str]) -> None:
        if self.daemon is not None:
            me, told = self.daemon.daemon_id, list(addresses)
            await self._write(partial(daemons.set_listening, daemon_id=me, addresses=told))

    async def known_addresses(self) -> set[str]:
        return daemons.known_addresses(self._reads)

    # -- writes ----------------------------------------------------------------------

    async def create_intent(self, new: NewIntent, intent_id: str) -> tuple[Intent, bool]:
        if new.human_task is not None:
            raise ValueError("an intent with a human_task is created by create_task_intent")

        def op(tx: Tx) -> tuple[tuple[Intent, bool], list[str]]:
            # Delivered as it is inserted when a worker has room and nothing older waits.
            deliverer = self._deliverer
            worker_id = deliverer.claim(new.to_agent, intent_id) if deliverer else None
            if deliverer and worker_id and delivery.queued(tx, new.to_agent):
                deliverer.unclaim(worker_id, intent_id)
                worker_id = None
            lease = None if worker_id is None else self._holder(worker_id)
            try:
                (intent, created), ids = work.create(tx, new, intent_id, lease)
            except BaseException:
                if deliverer and worker_id:
                    deliverer.unclaim(worker_id, intent_id)
                raise
            if deliverer and worker_id:
                if created:
                    self._delivered.append((worker_id, intent))
                else:  # an idempotent replay: the intent it answers with exists already
                    deliverer.unclaim(worker_id, intent_id)
            return (intent, created), ids

        return await self._write(op)

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
        steps: Sequence[StepInput] = (),
        by_agent: bool = False,
        ask_worker: bool = False,
    ) -> tuple[Intent, Event]:
        return await self._write(
            partial(
                work.transition,
                steps=steps,
                by_agent=by_agent,
                ask_worker=ask_worker,
                intent_id=intent_id,
                status=status,
                worker_id=worker_id,
                event_type=event_type,
                actor=actor,
                details=details,
                result=result,
                error=error,
            )
        )

    async def lease(
        self, address: str, worker_id: str, limit: int, reasons: dict[str, str]
    ) -> list[tuple[Intent, Event]]:
        return await self._write(
            partial(
                delivery.lease,
                address=address,
                holder=self._holder(worker_id),
                limit=limit,
                reasons=reasons,
            )
        )

    async def release(
        self,
        *,
        intent_ids: list[str] | None = None,
        worker_id: str | None = None,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> list[tuple[Intent, Event]]:
        return await self._write(
            partial(
                delivery.release,
                intent_ids=intent_ids,
                worker_id=worker_id,
                reason=reason,
                details=details,
                # One daemon per SQLite file: a restart ends every lease, whoever's it was.
                daemon_id=self.daemon_id if self.shared else None,
            ),
            queues=True,
        )

    async def retry(self, intent_id: str, actor: str | None) -> tuple[Intent, Event]:
        return await self._write(
            partial(delivery.retry, intent_id=intent_id, actor=actor), queues=True
        )

    async def record_step(
        self, intent_id: str, ordinal: int, key: str, result: Any, worker_id: str | None
    ) -> tuple[Step, list[Event]]:
        return await self._write(
            partial(
                work.record_step,
                intent_id=intent_id,
                ordinal=ordinal,
                key=key,
                result=result,
                worker_id=worker_id,
            )
        )

    async def report(
        self, reports: Sequence[WorkerReport], worker_id: str | None
    ) -> list[Intent | AxmeError | None]:
        def op(tx: Tx) -> tuple[list[Intent | AxmeError | None], list[str]]:
            answers, ids = work.report(tx, reports, worker_id)
            # Each completion frees its worker's slot: the next queued intent of its address
            # goes out in this same write, not in a lease write after it.
            if worker_id is not None and self._deliverer is not None:
                for answer in answers:
                    if isinstance(answer, Intent) and self._deliverer.free(
                        worker_id, answer.intent_id
                    ):
                        self._freed.append((worker_id, answer.intent_id))
                        first = delivery.oldest_queued(tx, answer.to_agent)
                        if first is not None:
                            pos, queued = first
                            self._deliver(tx, queued, pos)
            return answers, ids

        return await self._write(op)

    async def record_steps(
        self, intent_id: str, steps: Sequence[StepInput], worker_id: str | None
    ) -> list[Step]:
        return await self._write(
            partial(
                atomically,
                op=work.record_steps,
                intent_id=intent_id,
                steps=steps,
                worker_id=worker_id,
            )
        )

    async def progress(
        self, intent_id: str, message: str, data: dict[str, Any], worker_id: str | None
    ) -> list[Event]:
        return await self._write(
            partial(
                work.progress,
                intent_id=intent_id,
                message=message,
                data=data,
                worker_id=worker_id,
            )
        )

    async def record_compensation(
        self, intent_id: str, key: str, outcome: dict[str, Any], worker_id: str | None
    ) -> tuple[Intent, Effects]:
        return await self._write(
            partial(
                compensation.record,
                intent_id=intent_id,
                key=key,
                outcome=outcome,
                worker_id=worker_id,
            )
        )

    async def put_agents(
        self,
        source: str,
        digest: str | None,
        specs: list[dict[str, Any]],
        replace_source: bool,
        hooks: list[dict[str, Any]] | None = None,
    ) -> bool:
        sealer = self._opened_sealer
        return await self._write(
            partial(
                registry.put_agents,
                owner=self._owner,
                source=source,
                digest=digest,
                specs=[sealer.seal(spec, AGENT_FIELDS) for spec in specs],
                replace_source=replace_source,
                hooks=None if hooks is None else [sealer.seal(h, HOOK_FIELDS) for h in hooks],
            )
        )

    @property
    def _opened_sealer(self) -> Sealer:
        if self._sealer is None:
            raise RuntimeError("the store is not open")
        return self._sealer

    def _unsealed(
        self, records: Iterable[dict[str, Any]], fields: Sequence[str], what: str
    ) -> list[dict[str, Any]]:
        """`records` opened; one the key cannot open is left out, and said so in the log."""
        out = []
        for record in records:
            try:
                out.append(self._opened_sealer.unseal(record, fields))
            except SealedUnreadable as exc:
                name = f"{what} {record['address']}" if "address" in record else what
                log.error("%s is left out: %s", name, exc)
        return out

    async def begin_wait(
        self,
        intent_id: str,
        worker_id: str | None,
        ordinal: int,
        key: str,
        kind: str,
        arguments: dict[str, Any],
    ) -> tuple[dict[str, Any], Effects]:
        return await self._write(
            partial(
                begin.begin_wait,
                intent_id=intent_id,
                worker_id=worker_id,
                ordinal=ordinal,
                key=key,
                kind=kind,
                arguments=arguments,
            ),
            queues=True,
        )

    async def create_task_intent(
        self, new: NewIntent, intent_id: str
    ) -> tuple[Intent, bool, Effects]:
        return await self._write(partial(human.create_task_intent, new=new, intent_id=intent_id))

    async def create_workflow_intent(
        self,
        new: NewIntent,
        intent_id: str,
        plan: dict[str, Any],
        scenario_id: str | None,
        keys: Sequence[tuple[str, str, list[str]]] = (),
    ) -> tuple[Intent, bool, Effects]:
        return await self._write(
            partial(
                atomically,
                op=scenarios.create_workflow_intent,
                new=new,
                intent_id=intent_id,
                plan=plan,
                scenario_id=scenario_id,
                keys=list(keys),
            ),
            queues=True,
        )

    async def get_workflow(self, intent_id: str) -> dict[str, Any] | None:
        found = scenarios.workflow_of(self._reads, intent_id)
        return None if found is None else found.to_wire()

    async def decide(
        self,
        task_id: str,
        outcome: str,
        actor: str,
        comment: str | None,
        data: dict[str, Any],
    ) -> tuple[Task, Effects]:
        return await self._write(
            partial(
                human.decide,
                task_id=task_id,
                outcome=outcome,
                actor=actor,
                comment=comment,
                data=data,
            ),
            queues=True,
        )

    async def send_signal(self, intent_id: str, name: str, data: Any) -> tuple[bool, Effects]:
        return await self._write(
            partial(waits.send_signal, intent_id=intent_id, name=name, data=data), queues=True
        )

    async def child_finished(self, child: Intent) -> Effects:
        return await self._write(partial(waits.child_finished, child=child), queues=True)

    async def fire_timers(self, now: float) -> Effects:
        return await self._write(partial(timers.fire_timers, now=now), queues=True)

    async def next_timer(self, now: float) -> float | None:
        return timers.next_timer(self._reads, now)

    async def list_tasks(
        self,
        *,
        status: str | None = None,
        intent_id: str | None = None,
        prefix: str | None = None,
        limit: int = 200,
    ) -> list[Task]:
        where: list[str] = []
        args: list[Any] = []
        if status:
            where.append("t.status = ?")
            args.append(status)
        if intent_id:
            where.append("i.intent_id = ?")
            args.append(intent_id)
        if prefix:
            where.append("t.task_id >= ? AND t.task_id < ?")
            args += [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
        sql = (
            "SELECT t.task_id, i.intent_id, i.intent_type, i.to_agent, t.ordinal, t.spec, "
            "t.status, t.assignee, t.reminders, t.deadline_at, t.decision, t.created_at, "
            "t.decided_at FROM tasks t JOIN intents i ON i.pos = t.intent_pos"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY coalesce(t.deadline_at, 1e18), t.created_at LIMIT ?"
        args.append(limit)
        return [row_to_task(r) for r in self._read(sql, args)]

    async def delete_agent(self, address: str) -> bool:
        return await self._write(partial(registry.delete_agent, owner=self._owner, address=address))

    async def set_agent_removed(self, address: str, removed: bool) -> bool:
        return await self._write(
            partial(registry.set_agent_removed, owner=self._owner, address=address, removed=removed)
        )

    async def put_api_key(self, name: str, key_hash: str, scopes: list[str]) -> dict[str, Any]:
        return await self._write(
            partial(registry.put_api_key, name=name, key_hash=key_hash, scopes=scopes)
        )

    async def delete_api_key(self, name: str) -> bool:
        return await self._write(partial(registry.delete_api_key, name=name))

    async def inbox_reply(
        self, intent_id: str, owner: str | None, actor: str, message: str
    ) -> dict[str, Any]:
        return await self._write(
            partial(inbox.reply, intent_id=intent_id, owner=owner, actor=actor, message=message)
        )

    async def inbox_delegate(
        self, intent_id: str, owner: str | None, actor: str, delegate_to: str, note: str | None
    ) -> dict[str, Any]:
        return await self._write(
            partial(
                inbox.delegate,
                intent_id=intent_id,
                owner=owner,
                actor=actor,
                delegate_to=delegate_to,
                note=note,
            )
        )

    async def inbox_delete(
        self,
        intent_id: str,
        owner: str | None,
        actor: str,
        mode: str,
        message_ids: list[str] | None,
        limit: int | None,
    ) -> list[str]:
        return await self._write(
            partial(
                inbox.delete_messages,
                intent_id=intent_id,
                owner=owner,
                actor=actor,
                mode=mode,
                message_ids=message_ids,
                limit=limit,
            )
        )

    async def kill_agent(self, address: str, actor: str) -> dict[str, Any]:
        return await self._write(partial(registry.kill_agent, address=address, actor=actor))

    async def resume_agent(self, address: str) -> bool:
        return await self._write(partial(registry.resume_agent, address=address))

    # -- reads -----------------------------------------------------------------------

    async def get_intent(self, intent_id: str) -> Intent | None:
        row = self._reads.one("intent_by_id", intent_id=intent_id)
        return None if row is None else row_to_intent(row)

    async def get_intents(self, intent_ids: Iterable[str]) -> list[Intent]:
        ids = list(intent_ids)
        out: list[Intent] = []
        for start in range(0, len(ids), 500):  # below SQLite's bound-variable limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT * FROM intents WHERE intent_id IN ({marks})"
            out += [row_to_intent(row) for row in self._read(sql, chunk)]
        return out

    async def list_intents(self, filt: IntentFilter, limit: int, cursor: str | None) -> Page:
        where: list[str] = []
        args: list[Any] = []
        if filt.status is not None:
            where.append("status = ?")
            args.append(filt.status.value)
        if filt.to_agent is not None:
            where.append("to_agent = ?")
            args.append(filt.to_agent)
        if filt.intent_type is not None:
            where.append("intent_type = ?")
            args.append(filt.intent_type)
        if filt.id_prefix:
            p = filt.id_prefix
            where.append("intent_id >= ? AND intent_id < ?")
            args += [p, p[:-1] + chr(ord(p[-1]) + 1)]
        if filt.text:
            part = _escape_like(filt.text)
            where.append(
                "(intent_id LIKE ? ESCAPE '\\' OR intent_type LIKE ? ESCAPE '\\'"
                " OR to_agent LIKE ? ESCAPE '\\')"
            )
            args += [f"{part}%", f"%{part}%", f"%{part}%"]
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
                raise BadInput(f"invalid cursor {cursor!r}: pass the next_cursor of a page")
            where.append("pos < ?")
            args.append(int(cursor))
        sql = "SELECT * FROM intents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY pos DESC LIMIT ?"
        args.append(limit + 1)
        if filt.text:
            # A text match reads every row that does not match (no index serves "contains"):
            # 0.2-0.4 s at a million intents, so it runs apart, not on the event loop.
            rows = await asyncio.to_thread(self._read_apart, sql, args)
        else:
            rows = self._read(sql, args)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page([row_to_intent(r) for r in rows], str(rows[-1]["pos"]) if more else None)

    def _read_apart(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        """One slow read on a connection of its own, in a worker thread."""
        db = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            return dict_rows(db.execute(sql, args))
        finally:
            db.close()

    async def list_events(self, intent_id: str, since: int = 0, limit: int = 1000) -> list[Event]:
        rows = self._reads.all("events_since", intent_id=intent_id, since=since, limit=limit)
        return [row_to_event(intent_id, r) for r in rows]

    async def list_steps(self, intent_id: str) -> list[Step]:
        rows = self._reads.all("steps_of", intent_id=intent_id)
        return [row_to_step(r["ordinal"], r) for r in rows]

    async def leased_to(self, worker_id: str, after_delivery_seq: int) -> list[Intent]:
        rows = self._reads.all(
            "leased_to_since",
            worker_id=worker_id,
            after=after_delivery_seq,
            durable=self._durable_delivery_seq,
        )
        return [i for i in map(row_to_intent, rows) if not i.status.is_final]

    async def has_queued(self, address: str) -> bool:
        return self._reads.one("any_queued", address=address) is not None

    async def count_queued(self, address: str) -> int:
        row = self._reads.one("count_queued", address=address)
        return int(row["n"]) if row else 0

    async def list_projects(self) -> list[dict[str, Any]]:
        return [
            {
                "config_path": r["config_path"],
                "digest": r["digest"],
                "applied_at": r["applied_at"],
                "hooks": self._unsealed(
                    load(r["hooks"]) or [], HOOK_FIELDS, f"{r['config_path']}: a hook"
                ),
            }
            for r in self._reads.all("list_projects", owner=self._owner)
        ]

    async def list_agents(self) -> list[dict[str, Any]]:
        specs = [
            {
                **json.loads(r["spec"]),
                "source": r["source"],
                "created_at": r["created_at"],
                "updated_at": r["updated_at"],
            }
            for r in self._reads.all("list_agents", owner=self._owner)
        ]
        return self._unsealed(specs, AGENT_FIELDS, "agent")

    async def list_api_keys(self) -> list[dict[str, Any]]:
        return [
            {
                "name": r["name"],
                "key_hash": r["key_hash"],
                "scopes": json.loads(r["scopes"]),
                "created_at": r["created_at"],
            }
            for r in self._reads.all("list_api_keys")
        ]

    async def inbox_thread(self, intent_id: str) -> Thread | None:
        return inbox.read_thread(self._reads, intent_id)

    async def inbox_threads(self, owner: str | None, limit: int) -> list[Thread]:
        return inbox.read_threads(self._reads, owner, limit)

    async def inbox_changes(
        self, owner: str | None, cursor: int, limit: int
    ) -> list[tuple[int, Thread]]:
        return inbox.read_changes(self._reads, owner, cursor, limit)

    async def list_killed_agents(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._reads.all("list_killed_agents")]


def _escape_like(text: str) -> str:
    """`text` matched literally inside a LIKE pattern (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
