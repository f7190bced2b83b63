"""The PostgreSQL dialect of `lifecycle.tx.Tx`: the named queries of
`sql/postgresql/queries.sql` over one psycopg connection, rows as dicts.

In the writer's batch the connection is in pipeline mode (`pipeline` set): statements go
out without waiting, and a round trip happens only where a rule needs an answer: a read's
rows, a conditional write's row count. `write` and `run_many` ride along with the next one
(the server runs them in order, and an error among them is raised there).

Each statement costs CPU in the driver and on the server whatever it does, so the writer
sends fewer of them than the rules ask for:

- events: in a batch, the rows the rules append are kept until the next statement (or the
  COMMIT) and go as one `INSERT ... SELECT FROM json_populate_recordset(...)`, in order;
- answers known in advance: a conditional write whose every caller refuses unless it
  changed one row (`update_intent`: "nobody changed the intent since I read it") goes out
  without waiting for its count, and so do reads that mostly find nothing: the looks at
  an address's queue that a create with a free slot takes ("is anything older waiting?",
  `any_queued`) and a freed slot takes ("what is next?", `next_queued`), and an agent's
  outcome's look for a workflow its intent runs (`workflow_of`), each assumed empty while
  the last real look of its kind (at that address) found nothing. Each is wrapped so that
  the server fails the statement when the answer is not the one assumed (SQLSTATE
  `AXST0`, migration 0007): the batch then rolls back and runs again as below, reading
  the answer this time (and nothing more is assumed until real looks find nothing again).
  Under `FOR UPDATE` the update always changes its row, and a queue or a kind of intent
  seen empty mostly stays so, so the round trips saved are seldom paid back.
- savepoints: `savepoint()` sends none at first. A block that raises an `AxmeError` after
  it wrote raises `UndoBatch` instead: the batch rolls back and runs its writes one at a
  time (`_run_batch`), and a write that refuses alone runs once more, with savepoints, so
  that only its refused block is undone. Blocks that refuse before writing (most
  refusals: the rules check, then write) cost nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import cache
from typing import Any

import psycopg
from psycopg import sql as pgsql

from axme_cli.errors import AxmeError
from axme_daemon.lifecycle.tx import Row
from axme_daemon.store.queries import load_queries, savepoint

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
#: The events the rules append, in one statement: their rows as one JSON text (psycopg
#: adapts a list of Python values per array in Python, several times slower per event).
_INSERT_EVENTS = pgsql.SQL(
    "INSERT INTO events (intent_pos, seq, event_type, status, at, actor, details)"
    " SELECT intent_pos, seq, event_type, status, at, actor, details"
    " FROM json_populate_recordset(NULL::events, %(rows)s::json)"
)


#: Conditional writes every caller refuses unless they changed exactly one row.
_MUST_CHANGE_ONE = ("update_intent", "update_intent_outcome")
#: Reads that mostly find nothing, assumed to (`axme_found_none` checks it).
_ASSUMED_NONE = ("any_queued", "next_queued", "workflow_of")
#: The SQLSTATE of an answer that was not the one assumed (`axme_changed_one`, ...).
CHANGED_NONE = "AXST0"


class UndoBatch(Exception):
    """A block of writes refused after it wrote, with no savepoint sent to undo just it:
    the batch rolls back and runs again (one write at a time, then with savepoints)."""

    def __init__(self, error: AxmeError) -> None:
        super().__init__(error.message)
        self.error = error


def to_pyformat(sql: str) -> str:
    """`:name` parameters as psycopg's `%(name)s`."""
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


@cache
def _queries() -> dict[str, pgsql.SQL]:
    return {name: pgsql.SQL(to_pyformat(text)) for name, text in load_queries("postgresql").items()}


@cache
def _unwaited() -> dict[str, pgsql.SQL]:
    """The queries sent without waiting for their answer, wrapped so that the server fails
    them when it is not the one assumed (see the module's doc)."""
    body = {
        name: to_pyformat(text).rstrip().rstrip(";")
        for name, text in load_queries("postgresql").items()
    }
    changed = "WITH changed AS ({} RETURNING 1) SELECT axme_changed_one(count(*)) FROM changed"
    found = "SELECT axme_found_none(count(*)) FROM ({}) AS found"
    return {
        **{name: pgsql.SQL(changed.format(body[name])) for name in _MUST_CHANGE_ONE},
        **{name: pgsql.SQL(found.format(body[name])) for name in _ASSUMED_NONE},
    }


class PostgresTx:
    """Runs inside the writer's transaction; its `*_for_update` reads lock their rows."""

    def __init__(self, db: psycopg.Connection[dict[str, Any]]) -> None:
        self.db = db
        self._sql = _queries()
        #: The writer's pipeline while a batch runs; None: each statement waits for its answer.
        self.pipeline: psycopg.Pipeline | None = None
        #: Whether savepoints are left out (see the module's doc).
        self.optimistic = False
        self._events: list[Mapping[str, Any]] = []  # appended, not sent yet
        self._writes = 0  # writes asked for in this transaction (sent or kept)
        #: Reads (and their address) whose last real look found nothing (module's doc).
        self.empty: set[tuple[str, str | None]] = set()

    def flush(self) -> None:
        """Send the events kept so far (before any other statement, and the COMMIT)."""
        if self._events:
            rows, self._events = self._events, []
            self.db.execute(_INSERT_EVENTS, {"rows": json.dumps(rows)})

    def discard(self) -> None:
        """The transaction rolled back: forget what it kept."""
        self._events.clear()

    def one(self, query: str, **params: Any) -> Row | None:
        self.flush()
        if query in _ASSUMED_NONE and self.pipeline is not None:
            kind = (query, params.get("address"))
            if self.optimistic and kind in self.empty:
                self.db.execute(_unwaited()[query], params)
                return None  # or the server fails the batch (see the module's doc)
            row = self.db.execute(self._sql[query], params).fetchone()
            if row is None:
                self.empty.add(kind)
            else:
                self.empty.discard(kind)
            return row
        return self.db.execute(self._sql[query], params).fetchone()

    def all(self, query: str, **params: Any) -> list[Row]:
        self.flush()
        return list(self.db.execute(self._sql[query], params).fetchall())

    def run(self, query: str, **params: Any) -> int:
        self.flush()
        self._writes += 1
        if self.optimistic and self.pipeline is not None and query in _MUST_CHANGE_ONE:
            self.db.execute(_unwaited()[query], params)
            return 1  # or the server fails the batch (see the module's doc)
        cur = self.db.execute(self._sql[query], params)
        if self.pipeline is not None:
            self.pipeline.sync()  # the count, with what was sent before it
        return cur.rowcount

    def write(self, query: str, **params: Any) -> None:
        self._writes += 1
        if query == "insert_event" and self.pipeline is not None:
            self._events.append(params)
            return
        self.flush()
        self.db.execute(self._sql[query], params)

    def insert(self, query: str, **params: Any) -> int | None:
        self.flush()
        self._writes += 1
        row = self.db.execute(self._sql[query], params).fetchone()
        return None if row is None else int(next(iter(row.values())))

    def run_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self._writes += 1
        if query == "insert_event" and self.pipeline is not None:
            self._events.extend(rows)
            return
        self.flush()
        with self.db.cursor() as cur:
            cur.executemany(self._sql[query], rows)

    def savepoint(self) -> AbstractContextManager[None]:
        if self.optimistic:
            return self._no_savepoint()
        self.flush()  # the events kept so far are not the block's to undo; later ones are
        return savepoint(self.db.execute, undone=self._events.clear)

    @contextmanager
    def _no_savepoint(self) -> Iterator[None]:
        before = self._writes
        try:
            yield
        except AxmeError as exc:
            if self._writes == before:
                raise  # it refused before writing: nothing to undo
            raise UndoBatch(exc) from exc
