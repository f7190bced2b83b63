"""Statements over one PostgreSQL connection, straight through libpq (`psycopg.pq`).

Why not psycopg's cursor: it costs the daemon about 50 us of CPU per statement, and a
3-step intent sends about thirty (measured on this project's 2-core machine: a prepared
one-row SELECT in pipeline mode took 60 us through `Connection.execute` and `fetchone`,
9 us through `pq` and psycopg's own `Transformer`). Everything but the bookkeeping stays
psycopg's: the wire protocol (libpq), the non-blocking waits (`psycopg.generators`), type
adaptation both ways (`Transformer`, with the connection's adapters) and the error classes
(`errors.error_from_result`). This module only keeps the answers in the order they were
sent. Because it stands on psycopg below the cursor, pyproject pins psycopg below 3.4.

The connection stays in pipeline mode for the session's life: a statement is sent without
waiting (prepared once per text and parameter types), and the answers come in the order
sent. `rows(answer)` waits for one: inside a transaction (`begin`) it asks the server to
flush what it has (a flush request, which ends nothing); outside, it ends the implicit
transaction with a sync, as a statement in autocommit would. `sync()` waits for every
answer sent. An error aborts the statements after it until the next sync; waiting for any
of them raises that first error, as psycopg's pipeline does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors, pq
from psycopg.abc import PQGen
from psycopg.adapt import PyFormat, Transformer
from psycopg.generators import fetch_many, send
from psycopg.waiting import wait_async

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_TEXT = PyFormat.TEXT
#: How often an asynchronous wait looks up from the socket (psycopg's own checks).
_INTERVAL = 1.0


class Answer:
    """A statement sent; its result once read."""

    __slots__ = ("error", "names", "prepared", "result")

    def __init__(self, names: list[str] | None = None, prepared: Any = None) -> None:
        self.result: pq.abc.PGresult | None = None
        self.error: psycopg.Error | None = None
        #: Column names of a prepared statement's rows, filled on the first read of them.
        self.names = names
        #: A prepare's key: forgotten when the prepare did not happen.
        self.prepared = prepared

    @property
    def read(self) -> bool:
        return self.result is not None or self.error is not None


#: The answer to a sync, in the queue of answers expected.
_SYNC = Answer()


class Session:
    """One connection's statements, in pipeline mode; the connection is the session's
    alone from now on (psycopg's own `execute` would find it in pipeline mode)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._pg = conn.pgconn
        self._adapt = Transformer(conn)
        self._encoding = conn.info.encoding
        #: Prepared statements by text and parameter types: their names.
        self._prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        #: Column names by prepared statement (a prepared statement's columns stay put).
        self._names: dict[bytes, list[str]] = {}
        self._unread: deque[Answer] = deque()  # sent, in order, answers not read yet
        self._asked = True  # no statement sent since the server was last asked to flush
        self._failed: psycopg.Error | None = None  # the first error since the last sync
        self._closed_failed: psycopg.Error | None = None  # the stretch the last sync ended
        #: Inside BEGIN ... COMMIT: waits ask for a flush, not a sync.
        self.in_transaction = False
        self._pg.enter_pipeline_mode()

    # -- sending --------------------------------------------------------------------------

    def send(self, sql: bytes, params: Sequence[Any] = (), *, prepare: bool = True) -> Answer:
        """Send a statement (`$1`, `$2`... for `params`) without waiting for its answer.
        `prepare=False`: a statement put together for this one call (lists of ids), which
        would fill the server with prepared statements used once."""
        pg, adapt = self._pg, self._adapt
        values = adapt.dump_sequence(params, [_TEXT] * len(params)) if params else None
        types: tuple[int, ...] = (adapt.types or ()) if params else ()
        self._asked = False
        if not prepare:
            pg.send_query_params(sql, values, param_types=types or None)
            answer = Answer()
            self._unread.append(answer)
            return answer
        key = (sql, types)
        name = self._prepared.get(key)
        if name is None:
            name = self._prepared[key] = b"axme_%d" % len(self._prepared)
            pg.send_prepare(name, sql, param_types=types or None)
            self._unread.append(Answer(prepared=key))
        pg.send_query_prepared(name, values)
        answer = Answer(self._names.setdefault(name, []))
        self._unread.append(answer)
        return answer

    def begin(self) -> None:
        """BEGIN, sent with the next statement that waits."""
        self.send(b"BEGIN", prepare=False)
        self.in_transaction = True

    def commit(self) -> None:
        """COMMIT and wait for it: raises the first error of the transaction, if any (then
        nothing of it happened: call `recover`)."""
        self.send(b"COMMIT", prepare=False)
        self.sync()

    async def commit_async(self) -> None:
        """`commit`, the event loop running meanwhile (the server's wait for its disk)."""
        self.send(b"COMMIT", prepare=False)
        self._sync_sent()
        try:
            await wait_async(self._reading(_SYNC), self._pg.socket, interval=_INTERVAL)
        finally:
            failed = self._synced()
        if failed is not None:
            raise failed

    # -- answers ------------------------------------------------------------------------

    def rows(self, answer: Answer) -> list[dict[str, Any]]:
        """The rows of `answer`'s statement, by column name (waits for them)."""
        result = self.wait(answer)
        count = result.ntuples
        if not count:
            return []
        names = answer.names
        if not names:  # an unprepared statement's (None), or a prepared one's first read
            nfields = result.nfields
            found = [(result.fname(i) or b"").decode(self._encoding) for i in range(nfields)]
            if names is None:
                names = found
            else:
                names.extend(found)
        adapt = self._adapt
        adapt.set_pgresult(result)
        return adapt.load_rows(0, count, lambda values: dict(zip(names, values, strict=True)))

    def rowcount(self, answer: Answer) -> int:
        """How many rows `answer`'s statement changed (waits for it)."""
        return self.wait(answer).command_tuples or 0

    def wait(self, answer: Answer) -> pq.abc.PGresult:
        """Read answers up to `answer`'s; raise its error (or the error that aborted it)."""
        if not answer.read:
            if self.in_transaction:
                if not self._asked:
                    self._pg.send_flush_request()
                    self._asked = True
                self._read_until(answer)
            else:
                self.sync()
        if answer.error is not None:
            raise answer.error
        assert answer.result is not None
        return answer.result

    def sync(self, *, raising: bool = True) -> None:
        """Wait for every answer sent; raise the first error among them. A sync ends the
        implicit transaction (outside BEGIN) and an aborted stretch of the pipeline."""
        self._sync_sent()
        try:
            self._read_until(_SYNC)
        finally:
            failed = self._synced()
        if raising and failed is not None:
            raise failed

    def _sync_sent(self) -> None:
        self._pg.pipeline_sync()
        self._asked = True
        self._unread.append(_SYNC)

    def _synced(self) -> psycopg.Error | None:
        """A sync was read (or reading it failed): the first error of the stretch it ended."""
        if self._pg.transaction_status == pq.TransactionStatus.IDLE:
            self.in_transaction = False
        failed, self._closed_failed = self._closed_failed, None
        return failed

    def recover(self) -> None:
        """After an error: read what is left, and roll back the transaction if one is open."""
        self.sync(raising=False)  # also ends an aborted stretch: the ROLLBACK runs
        if self._pg.transaction_status != pq.TransactionStatus.IDLE:
            self.send(b"ROLLBACK", prepare=False)
            self.sync()
        self.in_transaction = False

    def _read_until(self, target: Answer) -> None:
        self.conn.wait(self._reading(target))

    def _reading(self, target: Answer) -> PQGen[None]:
        """Send what is buffered, then read answers up to `target`'s (psycopg's waits drive
        it: blocking in `_read_until`, on the event loop in `commit_async`)."""
        pg, unread = self._pg, self._unread
        yield from send(pg)
        while unread:
            results = yield from fetch_many(pg)
            answer = unread.popleft()
            self._take(answer, results)
            if answer is target:
                return

    def _take(self, answer: Answer, results: list[pq.abc.PGresult]) -> None:
        if answer is _SYNC:
            if not results or results[0].status != pq.ExecStatus.PIPELINE_SYNC:
                raise psycopg.InternalError("the server's answers are out of order")
            self._closed_failed, self._failed = self._failed, None
            return
        result = results[-1] if results else None
        status = None if result is None else result.status
        if status in _OK:
            answer.result = result
            return
        if status == pq.ExecStatus.FATAL_ERROR:
            assert result is not None
            answer.error = errors.error_from_result(result, encoding=self._encoding)
            if self._failed is None:
                self._failed = answer.error
        else:  # skipped: an earlier statement failed (or an answer no statement of ours has)
            answer.error = self._failed or psycopg.OperationalError(
                f"a statement was not run: {status!r}"
            )
        if answer.prepared is not None:  # the prepare did not happen: again next time
            name = self._prepared.pop(answer.prepared, None)
            if name is not None:
                self._names.pop(name, None)
