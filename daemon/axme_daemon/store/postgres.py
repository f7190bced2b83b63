"""PostgreSQL backend: the same lifecycle rules, group commit and push path as SQLite
(`sqlite.py`), over a server's transactions, shared by several daemons.

A batch is one READ COMMITTED transaction on the writer connection; its COMMIT returns
once the server made it durable (`synchronous_commit`), so its callers are answered then,
with no sync of the daemon's own. The rules lock what they change (`*_for_update`
queries) and write conditionally (`lifecycle/tx.py`), so other daemons' writers on the
same database stay correct. The driver is psycopg 3, below its cursor (`postgres_session.py`,
measured: a sixth of the CPU per statement): the rules are plain functions over a `Tx`, run
on the event loop's thread like SQLite's. (A writer thread
of its own, waiting for the server while the loop serves requests, was measured: a fifth
fewer 3-step intents/s and more of the daemon's CPU per intent, spent handing the
interpreter lock back and forth.) So a batch sends few statements and waits for few
answers (`postgres_tx.py`).

Connections: the writer; a reader for the short indexed reads on the loop's thread; a
listener (`LISTEN axme`); and a connection of its own, in a thread, for each slow read
(a text search), so that it holds neither the reader nor the loop. A batch that changed
intents sends one `NOTIFY axme` (delivered with its COMMIT) saying which, which addresses
it queued work for, and whether it armed timers: the other daemons wake their streams,
agent workers and timer loops from it.

A NOTIFY serializes commits on the server (measured: a fifth to a third fewer creates/s from
one daemon), so a daemon sends them only while another live daemon shares the database: it
looks at every heartbeat (about a second). A daemon that just started is told of nothing for
up to that second by the others: one heartbeat after it registered, its streams and timers
look again, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from axme_cli.errors import AxmeError, StoreUnavailable
from axme_daemon.intents import Event, Intent, now_iso
from axme_daemon.lifecycle.tx import Tx
from axme_daemon.store.base import RemoteChange, StoreStats
from axme_daemon.store.migrations import load_migrations, load_schema
from axme_daemon.store.postgres_keepalive import Keepalive
from axme_daemon.store.postgres_session import Session
from axme_daemon.store.postgres_tx import CHANGED_NONE, PostgresTx, UndoBatch, numbered
from axme_daemon.store.sealing import Sealer
from axme_daemon.store.sqlite import SqliteStore, _Batch

log = logging.getLogger(__name__)

_MIGRATIONS = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""
_LOCK = 0x61786D65  # one daemon at a time brings the schema up to date


def migrate(db: psycopg.Connection[dict[str, Any]]) -> list[int]:
    """Bring the database up to date, as `migrations.migrate` does SQLite's; one daemon at
    a time (an advisory lock), each migration in its own transaction."""
    migrations = load_migrations("postgresql")
    applied: list[int] = []
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        db.execute(_MIGRATIONS)
        done = {r["version"] for r in db.execute("SELECT version FROM schema_migrations")}
        if not done:  # a fresh database: the schema in one go, every migration recorded
            db.execute(load_schema("postgresql"))  # several statements: no parameters
            for m in migrations:
                db.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                    (m.version, m.name, now_iso()),
                )
            return [m.version for m in migrations]
    for m in migrations:
        if m.version in done:
            continue
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            if db.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (m.version,)
            ).fetchone():
                continue  # another daemon applied it meanwhile
            db.execute(m.sql)
            db.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                (m.version, m.name, now_iso()),
            )
        applied.append(m.version)
    return applied


CHANNEL = "axme"
#: How long after a daemon registers every other daemon has looked for peers (a heartbeat
#: comes at most every second), and so tells it of its commits.
_PEERS_KNOW = 1.5
#: Delivery cursors taken from the database's sequence at once.
_SEQS = 64
#: Intent ids per notification: a NOTIFY payload must stay below 8000 bytes.
_IDS_PER_NOTIFY = 150
#: Writes that arm or move timers: a notification says so, and other daemons look again.
_TIMER_WRITES = frozenset({"insert_timer", "bring_timers_forward", "move_task_deadline"})
#: One round trip: which of the batch's intents wait in a queue now, and the news with them.
#: Addresses too many for a payload (under 8000 bytes) are sent as null: "any".
_NOTIFY = numbered("""SELECT pg_notify(:channel, CASE WHEN length(news) < 7900 THEN news
    ELSE json_build_object('i', :ids::text[], 'a', NULL, 't', :timers::boolean)::text
    END) FROM (SELECT json_build_object(
        'i', :ids::text[],
        'a', (SELECT coalesce(json_agg(DISTINCT to_agent), '[]') FROM intents
              WHERE intent_id = ANY(:ids::text[]) AND status = 'SUBMITTED'
              AND human_task IS NULL),
        't', :timers::boolean)::text AS news) AS told""")


class _WatchedTx(PostgresTx):
    """The writer's Tx, noticing whether the batch armed or moved timers."""

    timers = False

    def run(self, query: str, **params: Any) -> int:
        self.timers = self.timers or query in _TIMER_WRITES
        return super().run(query, **params)

    def write(self, query: str, **params: Any) -> None:
        self.timers = self.timers or query in _TIMER_WRITES
        super().write(query, **params)

    def run_many(self, query: str, rows: Sequence[Any]) -> None:
        self.timers = self.timers or query in _TIMER_WRITES
        super().run_many(query, rows)


class PostgresStore(SqliteStore):
    error_types = (psycopg.Error,)
    shared = True

    def __init__(self, url: str, *, max_batch: int = 512, key_file: Path) -> None:
        super().__init__(Path("postgresql"), max_batch=max_batch, key_file=key_file)
        self.url = url
        self._pw: psycopg.Connection[dict[str, Any]] | None = None
        self._pr: psycopg.Connection[dict[str, Any]] | None = None
        self._listening: asyncio.Task[None] | None = None
        #: Whether another live daemon shares the database (then commits are told of).
        self._peers = False
        self._told_at: float | None = None  # when every other daemon knows of this one
        self.keepalive: Keepalive | None = None
        self._seqs: deque[int] = deque()  # delivery cursors taken from the sequence, unused

    async def open(self) -> None:
        try:
            self._pw = psycopg.connect(self.url, autocommit=True, row_factory=dict_row)
            self._pr = psycopg.connect(self.url, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            why = " ".join(str(exc).split())  # libpq's message spans lines: the CLI shows one
            raise StoreUnavailable(f"cannot reach the PostgreSQL store: {why}") from exc
        if applied := migrate(self._pw):
            log.info("schema migrated", extra={"action": "migrate", "versions": applied})
        self._sealer = Sealer(self._key_file)
        self._wtx = _WatchedTx(Session(self._pw))
        self._rtx = reads = PostgresTx(Session(self._pr))
        row = reads.one("last_delivery_seq")
        self._delivery_seq = int(row["n"]) if row else 0
        self._durable_delivery_seq = self._delivery_seq
        # Listening before the first write: nothing another daemon commits from now is missed.
        try:
            listener = await self._listen()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot listen on the PostgreSQL store: {exc}") from exc
        self._listening = asyncio.create_task(
            self._listen_forever(listener), name="postgres-listener"
        )
        await self._look_for_peers()
        self._writer = asyncio.create_task(self._write_loop(), name="postgres-writer")

    async def _look_for_peers(self) -> None:
        me = self.daemon_id
        self._peers = any(d["live"] and d["daemon_id"] != me for d in await self.list_daemons())

    async def register_daemon(self) -> None:
        await super().register_daemon()
        self._told_at = asyncio.get_running_loop().time() + _PEERS_KNOW
        if self.keepalive is None and self.daemon is not None:
            grace = self.daemon.lease_grace
            self.keepalive = Keepalive(
                self.url, self.daemon, every=min(1.0, grace / 4), stall=max(3 * grace, 10.0)
            )
            self.keepalive.start()

    async def heartbeat(self) -> list[tuple[Intent, Event]]:
        if self.keepalive is not None:
            self.keepalive.loop_beat()
        released = await super().heartbeat()
        await self._look_for_peers()
        if self._told_at is not None and asyncio.get_running_loop().time() >= self._told_at:
            self._told_at = None  # every other daemon has looked for peers since: look again
            self._heard(None, None, True)
        return released

    async def unregister_daemon(self) -> None:
        if self.keepalive is not None:  # or it would beat for a row that is gone
            self.keepalive.stop()
        await super().unregister_daemon()

    async def close(self) -> None:
        if self.keepalive is not None:
            self.keepalive.stop()
            self.keepalive = None
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
            self._writer = None
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None
        for db in (self._pr, self._pw):
            if db is not None:
                db.close()
        self._pr = self._pw = None
        self._rtx = self._wtx = None

    def stats(self) -> StoreStats:
        return StoreStats(commits=self._commits, writes=self._writes, syncs=self._commits)

    def problem(self) -> str | None:
        return self._writer_failed

    def _conflict(self, exc: Exception) -> bool:
        return isinstance(
            exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure
        )

    def translate_error(self, exc: Exception) -> AxmeError | None:
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailable(f"the PostgreSQL store failed: {exc}")
        return None

    # -- news from other daemons ------------------------------------------------------

    def _before_commit(self, tx: Tx, ids: set[str]) -> None:
        """Tell the other daemons, with this COMMIT, what the batch changed."""
        assert isinstance(tx, _WatchedTx) and self._pw is not None
        timers, tx.timers = tx.timers, False
        if not self._peers or (not ids and not timers):
            return
        listed = sorted(ids)
        chunks = [listed[n : n + _IDS_PER_NOTIFY] for n in range(0, len(listed), _IDS_PER_NOTIFY)]
        for chunk in chunks or [[]]:
            tx.session.send(
                _NOTIFY.sql, _NOTIFY.args({"channel": CHANNEL, "ids": chunk, "timers": timers})
            )

    async def _listen(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        await conn.execute(f"LISTEN {CHANNEL}".encode())
        return conn

    async def _listen_forever(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Hear other daemons' commits; after a lost connection, listen again and tell the
        listeners anything may have changed meanwhile."""
        while True:
            try:
                async with conn:
                    async for note in conn.notifies():
                        if self._pw is not None and note.pid == self._pw.info.backend_pid:
                            continue  # this daemon's own commit: told already
                        self._hear(note.payload)
            except psycopg.Error as exc:
                log.warning("listening for other daemons' commits failed (%s); again", exc)
            while True:
                await asyncio.sleep(0.2)
                try:
                    conn = await self._listen()
                    break
                except psycopg.Error as exc:
                    log.warning("cannot listen for other daemons' commits (%s)", exc)
            self._heard(None, None, True)  # what it missed meanwhile: anything

    def _hear(self, payload: str) -> None:
        try:
            news = json.loads(payload)
            ids = [str(i) for i in news.get("i", ())]
            said = news.get("a", ())
            queued = None if said is None else frozenset(str(a) for a in said)
            timers = bool(news.get("t", False))
        except (ValueError, TypeError, AttributeError):
            log.warning("a notification that is not one of ours: %.200r", payload)
            return
        self._heard(ids, queued, timers)

    def _heard(self, ids: list[str] | None, addresses: frozenset[str] | None, timers: bool) -> None:
        if ids:
            for listener in self._listeners:
                listener(ids)
        if addresses is None or addresses or timers or ids:
            change = RemoteChange(addresses, timers, None if ids is None else frozenset(ids))
            for remote in self._remote:
                try:
                    remote(change)
                except Exception:
                    log.exception("a listener of other daemons' commits failed")

    def _next_delivery_seq(self) -> int:
        """From the database's sequence: unique across daemons, and increasing for each
        worker, whose deliveries all come from its own daemon's one writer, in commit
        order (its stream resumes from the last it was sent). Taken `_SEQS` at a time,
        kept in this process only: a round trip per block, not per delivery; the values a
        daemon never hands out are gaps, which no stream minds."""
        if not self._seqs:
            assert self._wtx is not None
            self._seqs.extend(int(r["n"]) for r in self._wtx.all("next_delivery_seqs", count=_SEQS))
        self._delivery_seq = max(self._delivery_seq, self._seqs.popleft())
        return self._delivery_seq

    def _committed(self, run: _Batch) -> None:
        """The COMMIT returned: the server has it durably."""
        self._durable_delivery_seq = run.delivery_seq
        self._settle(run)

    def _refused(self, exc: Exception) -> bool:
        return isinstance(exc, UndoBatch) or (
            isinstance(exc, psycopg.Error) and exc.sqlstate == CHANGED_NONE
        )

    def _begin(self, *, savepoints: bool) -> None:
        """BEGIN goes out with the batch's first statement that needs an answer, and
        COMMIT with nothing after it (`postgres_tx.py`). Savepoints only when a write
        refused after writing without them (see `postgres_tx`)."""
        assert isinstance(self._wtx, PostgresTx)
        self._wtx.optimistic = not savepoints
        self._wtx.session.begin()

    async def _commit(self) -> None:
        """COMMIT: one round trip, which returns once the server has the batch durably (or
        raises what any statement of the batch raised). The loop serves requests while the
        server writes its log; nothing else uses the writer's connection meanwhile."""
        assert isinstance(self._wtx, PostgresTx)
        await self._wtx.commit()

    def _rollback(self) -> None:
        tx = self._wtx
        if not isinstance(tx, PostgresTx):
            return
        tx.discard()
        tx.empty.clear()  # an assumption may have failed it: look again first
        try:
            tx.session.recover()
        except psycopg.Error:
            log.exception("rollback failed")

    def _read(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        assert isinstance(self._rtx, PostgresTx)
        return self._rtx.execute(_numbered_marks(sql), args, prepare=False)

    def _read_apart(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        """A slow read on a connection of its own (this runs in a thread): on the reader it
        would hold the reader's lock, and with it the event loop's next read and every
        write behind that, until it ends."""
        with psycopg.connect(self.url, autocommit=True) as db:
            return PostgresTx(Session(db)).execute(_numbered_marks(sql), args, prepare=False)


def _numbered_marks(sql: str) -> bytes:
    """A read put together with `?` for each parameter, numbered as the server takes them."""
    numbers = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql).encode()
