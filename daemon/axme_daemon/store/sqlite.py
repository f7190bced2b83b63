"""SQLite backend: WAL, fsync on every commit, and group commit for throughput.

All writes go through one writer task. Requests that arrive while a transaction is being
committed queue up and share the next one, so N concurrent creates cost about one fsync per
batch instead of one each, without weakening durability: a caller's future resolves only
after the COMMIT that holds its change returned. Reads use a second connection, which WAL
lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from axme_cli.errors import AxmeError, BadInput, IdempotencyConflict, NotFound
from axme_cli.protocol import STATUS_EVENT, IntentStatus
from axme_daemon.intents import Event, Intent, NewIntent, check_transition, now_iso
from axme_daemon.store.base import CommitListener, IntentFilter, Page, Store, StoreStats
from axme_daemon.store.migrations import migrate

log = logging.getLogger(__name__)

T = TypeVar("T")
#: A write: runs inside the batch transaction, returns its result and the intents it touched.
#: By convention an op raises `AxmeError` only before it writes anything.
WriteOp = Callable[[aiosqlite.Connection], Awaitable[tuple[T, Iterable[str]]]]
_Item = tuple[WriteOp[Any], "asyncio.Future[Any]"]

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",  # fsync the WAL on every commit: acknowledged means durable
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)

_INTENT_COLUMNS = (
    "pos, intent_id, intent_type, to_agent, from_agent, reply_to, correlation_id, payload, "
    "human_task, status, waiting_reason, result, error, idempotency_key, delivery_attempt, "
    "max_delivery_attempts, deadline_at, last_seq, created_at, updated_at"
)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _row_to_intent(row: aiosqlite.Row) -> Intent:
    return Intent(
        intent_id=row[1],
        intent_type=row[2],
        to_agent=row[3],
        from_agent=row[4],
        reply_to=row[5],
        correlation_id=row[6],
        payload=json.loads(row[7]),
        human_task=_load(row[8]),
        status=IntentStatus(row[9]),
        waiting_reason=row[10],
        result=_load(row[11]),
        error=_load(row[12]),
        idempotency_key=row[13],
        delivery_attempt=row[14],
        max_delivery_attempts=row[15],
        deadline_at=row[16],
        last_seq=row[17],
        created_at=row[18],
        updated_at=row[19],
    )


async def _connect(path: Path) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    for pragma in _PRAGMAS:
        await db.execute(pragma)
    return db


class SqliteStore(Store):
    def __init__(self, path: Path, *, max_batch: int = 512) -> None:
        self.path = path
        self._max_batch = max_batch
        self._wdb: aiosqlite.Connection | None = None
        self._rdb: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._listeners: list[CommitListener] = []
        self._commits = 0
        self._writes = 0

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wdb = await _connect(self.path)
        applied = await migrate(self._wdb)
        if applied:
            log.info("schema migrated", extra={"action": "migrate", "versions": applied})
        self._rdb = await _connect(self.path)
        self._writer = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    async def close(self) -> None:
        """Finish every write already queued, then close the connections."""
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
            self._writer = None
        for db in (self._rdb, self._wdb):
            if db is not None:
                await db.close()
        self._rdb = self._wdb = None

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    def stats(self) -> StoreStats:
        return StoreStats(commits=self._commits, writes=self._writes)

    # -- group commit ----------------------------------------------------------------

    async def _write(self, op: WriteOp[T]) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, fut))
        # Shielded: once queued, the write happens even if the caller goes away, and the
        # caller must not be told "failed" for something that may commit.
        return await asyncio.shield(fut)

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
            await self._run_batch(batch)
            if closing:
                return

    async def _run_batch(self, batch: list[_Item]) -> None:
        assert self._wdb is not None
        db = self._wdb
        outcomes: list[tuple[bool, Any]] = []
        touched: set[str] = set()
        try:
            await db.execute("BEGIN IMMEDIATE")
            for op, _ in batch:
                try:
                    result, ids = await op(db)
                except AxmeError as exc:
                    outcomes.append((False, exc))
                else:
                    outcomes.append((True, result))
                    touched.update(ids)
            await db.execute("COMMIT")
        except Exception as exc:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            if len(batch) > 1:
                # One op broke the shared transaction: retry each alone so that only the
                # faulty one fails.
                log.warning("batch of %d failed (%s); retrying one by one", len(batch), exc)
                for item in batch:
                    await self._run_batch([item])
                return
            log.exception("write failed", extra={"action": "write"})
            outcomes = [(False, exc)]
        else:
            self._commits += 1
            self._writes += sum(1 for ok, _ in outcomes if ok)
        for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        if touched:
            for listener in self._listeners:
                listener(touched)

    # -- writes ----------------------------------------------------------------------

    async def create_intent(self, new: NewIntent, intent_id: str) -> tuple[Intent, bool]:
        async def op(db: aiosqlite.Connection) -> tuple[tuple[Intent, bool], list[str]]:
            if new.idempotency_key is not None:
                async with db.execute(
                    f"SELECT {_INTENT_COLUMNS}, request_hash FROM intents "
                    "WHERE idempotency_key = ?",
                    (new.idempotency_key,),
                ) as cur:
                    row = await cur.fetchone()
                if row is not None:
                    if row[20] != new.request_hash:
                        raise IdempotencyConflict(
                            "Idempotency-Key was already used with a different request body",
                            details={"intent_id": row[1]},
                        )
                    return (_row_to_intent(row), False), []
            now = now_iso()
            cur = await db.execute(
                "INSERT INTO intents (intent_id, intent_type, to_agent, from_agent, reply_to, "
                "correlation_id, payload, human_task, status, idempotency_key, request_hash, "
                "max_delivery_attempts, deadline_at, last_seq, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 2, ?, ?)",
                (
                    intent_id,
                    new.intent_type,
                    new.to_agent,
                    new.from_agent,
                    new.reply_to,
                    new.correlation_id,
                    _dump(new.payload),
                    _dump(new.human_task),
                    IntentStatus.SUBMITTED.value,
                    new.idempotency_key,
                    new.request_hash,
                    new.max_delivery_attempts,
                    new.deadline_at,
                    now,
                    now,
                ),
            )
            pos = cur.lastrowid
            await cur.close()
            await db.executemany(
                "INSERT INTO events (intent_pos, seq, event_type, status, at) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (pos, 1, STATUS_EVENT[IntentStatus.CREATED], IntentStatus.CREATED.value, now),
                    (pos, 2, STATUS_EVENT[IntentStatus.SUBMITTED], "SUBMITTED", now),
                ],
            )
            intent = Intent(
                intent_id=intent_id,
                intent_type=new.intent_type,
                to_agent=new.to_agent,
                from_agent=new.from_agent,
                reply_to=new.reply_to,
                correlation_id=new.correlation_id,
                payload=new.payload,
                human_task=new.human_task,
                status=IntentStatus.SUBMITTED,
                idempotency_key=new.idempotency_key,
                max_delivery_attempts=new.max_delivery_attempts,
                deadline_at=new.deadline_at,
                last_seq=2,
                created_at=now,
                updated_at=now,
            )
            return (intent, True), [intent_id]

        return await self._write(op)

    async def transition(
        self,
        intent_id: str,
        status: IntentStatus,
        *,
        event_type: str | None = None,
        actor: str | None = None,
        details: dict[str, Any] | None = None,
        result: Any = None,
        error: Any = None,
    ) -> tuple[Intent, Event]:
        async def op(db: aiosqlite.Connection) -> tuple[tuple[Intent, Event], list[str]]:
            async with db.execute(
                f"SELECT {_INTENT_COLUMNS} FROM intents WHERE intent_id = ?", (intent_id,)
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no intent {intent_id}")
            current = _row_to_intent(row)
            check_transition(current.status, status)
            seq = current.last_seq + 1
            now = now_iso()
            await db.execute(
                "UPDATE intents SET status = ?, last_seq = ?, updated_at = ?, "
                "result = coalesce(?, result), error = coalesce(?, error), "
                "waiting_reason = NULL WHERE pos = ?",
                (status.value, seq, now, _dump(result), _dump(error), row[0]),
            )
            await db.execute(
                "INSERT INTO events (intent_pos, seq, event_type, status, at, actor, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    row[0],
                    seq,
                    event_type or STATUS_EVENT[status],
                    status.value,
                    now,
                    actor,
                    _dump(details or None),
                ),
            )
            updated = replace(
                current,
                status=status,
                last_seq=seq,
                updated_at=now,
                result=current.result if result is None else result,
                error=current.error if error is None else error,
                waiting_reason=None,
            )
            event = Event(
                intent_id,
                seq,
                event_type or STATUS_EVENT[status],
                status,
                now,
                actor,
                details or None,
            )
            return (updated, event), [intent_id]

        return await self._write(op)

    # -- reads -----------------------------------------------------------------------

    async def get_intent(self, intent_id: str) -> Intent | None:
        assert self._rdb is not None
        async with self._rdb.execute(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE intent_id = ?", (intent_id,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _row_to_intent(row)

    async def list_intents(self, filt: IntentFilter, limit: int, cursor: str | None) -> Page:
        assert self._rdb is not None
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
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
                raise BadInput(f"invalid cursor {cursor!r}: pass the next_cursor of a page")
            where.append("pos < ?")
            args.append(int(cursor))
        sql = f"SELECT {_INTENT_COLUMNS} FROM intents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY pos DESC LIMIT ?"
        args.append(limit + 1)
        async with self._rdb.execute(sql, args) as cur:
            rows = list(await cur.fetchall())
        more = len(rows) > limit
        rows = rows[:limit]
        return Page([_row_to_intent(r) for r in rows], str(rows[-1][0]) if more else None)

    async def list_events(self, intent_id: str, since: int = 0, limit: int = 1000) -> list[Event]:
        assert self._rdb is not None
        async with self._rdb.execute(
            "SELECT e.seq, e.event_type, e.status, e.at, e.actor, e.details "
            "FROM events e JOIN intents i ON i.pos = e.intent_pos "
            "WHERE i.intent_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?",
            (intent_id, since, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [
            Event(intent_id, r[0], r[1], IntentStatus(r[2]), r[3], r[4], _load(r[5])) for r in rows
        ]
