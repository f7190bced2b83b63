"""The PostgreSQL dialect of `lifecycle.tx.Tx`: the named queries of
`sql/postgresql/queries.sql` over one connection's `Session` (`postgres_session.py`), rows
as dicts.

In the writer's batch (the session inside BEGIN) statements go out without waiting, and a
round trip happens only where a rule needs an answer: a read's rows, a conditional write's
row count. `write` and `run_many` ride along with the next one (the server runs them in
order, and an error among them is raised there). Outside a batch (the reader), each
statement is its own transaction, waited for.

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
- an intent's insert: its pos comes from a block the writer took from the sequence before
  (`next_positions`, asked with an earlier COMMIT), not from the insert's answer, so a
  create without an idempotency key waits for nothing before its COMMIT. Within a daemon
  positions still grow with each create; across daemons they interleave by up to a block,
  as concurrent inserts' positions already do against their commit order.
- savepoints: `savepoint()` sends none at first. A block that raises an `AxmeError` after
  it wrote raises `UndoBatch` instead: the batch rolls back and runs its writes one at a
  time (`_run_batch`), and a write that refuses alone runs once more, with savepoints, so
  that only its refused block is undone. Blocks that refuse before writing (most
  refusals: the rules check, then write) cost nothing.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import cache
from typing import Any, NamedTuple

from axme_cli.errors import AxmeError
from axme_daemon.lifecycle.tx import Row
from axme_daemon.store.postgres_session import Answer, Session
from axme_daemon.store.queries import load_queries, savepoint

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Statement(NamedTuple):
    """A named query as the server takes it: `$1`, `$2`... and the names they stand for."""

    sql: bytes
    names: tuple[str, ...]

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


def numbered(sql: str) -> Statement:
    """`:name` parameters as `$1`, `$2`... (one number per name, however often it comes)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return Statement(_PARAM.sub(number, sql).encode(), tuple(names))


#: The events the rules append, in one statement: their rows as one JSON text (psycopg
#: adapts a list of Python values per array in Python, several times slower per event).
_INSERT_EVENTS = (
    b"INSERT INTO events (intent_pos, seq, event_type, status, at, actor, details)"
    b" SELECT intent_pos, seq, event_type, status, at, actor, details"
    b" FROM json_populate_recordset(NULL::events, $1::json)"
)


#: Intent positions taken from the sequence at a time (`insert_intent`).
POSITIONS = 64
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


@cache
def _queries() -> dict[str, Statement]:
    return {name: numbered(text) for name, text in load_queries("postgresql").items()}


@cache
def _unwaited() -> dict[str, Statement]:
    """The queries sent without waiting for their answer, wrapped so that the server fails
    them when it is not the one assumed (see the module's doc)."""
    body = {name: text.rstrip().rstrip(";") for name, text in load_queries("postgresql").items()}
    changed = "WITH changed AS ({} RETURNING 1) SELECT axme_changed_one(count(*)) FROM changed"
    found = "SELECT axme_found_none(count(*)) FROM ({}) AS found"
    return {
        **{name: numbered(changed.format(body[name])) for name in _MUST_CHANGE_ONE},
        **{name: numbered(found.format(body[name])) for name in _ASSUMED_NONE},
    }


class PostgresTx:
    """Runs inside the writer's transaction; its `*_for_update` reads lock their rows.
    Outside one (the reader's connection), each statement is its own transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._sql = _queries()
        #: Whether savepoints are left out (see the module's doc).
        self.optimistic = False
        self._events: list[Mapping[str, Any]] = []  # appended, not sent yet
        self._writes = 0  # writes asked for in this transaction (sent or kept)
        #: Reads (and their address) whose last real look found nothing (module's doc).
        self.empty: set[tuple[str, str | None]] = set()
        #: Positions taken from the sequence for the next intents this writer inserts.
        self.positions: deque[int] = deque()

    @property
    def batching(self) -> bool:
        """Inside the writer's batch: statements go out without waiting (module's doc)."""
        return self.session.in_transaction

    def execute(
        self, sql: bytes, params: Sequence[Any] = (), *, prepare: bool = True
    ) -> list[dict[str, Any]]:
        """A statement of the caller's own (`$1`, `$2`...): its rows, waited for."""
        self.flush()
        return self.session.rows(self.session.send(sql, params, prepare=prepare))

    def flush(self) -> None:
        """Send the events kept so far (before any other statement, and the COMMIT)."""
        if self._events:
            rows, self._events = self._events, []
            self.session.send(_INSERT_EVENTS, [json.dumps(rows)])

    def discard(self) -> None:
        """The transaction rolled back: forget what it kept."""
        self._events.clear()

    def _send(self, query: str, params: Mapping[str, Any]) -> Answer:
        statement = self._sql[query]
        return self.session.send(statement.sql, statement.args(params))

    def _first(self, query: str, params: Mapping[str, Any]) -> Row | None:
        rows = self.session.rows(self._send(query, params))
        return rows[0] if rows else None

    def one(self, query: str, **params: Any) -> Row | None:
        self.flush()
        if query in _ASSUMED_NONE and self.batching:
            kind = (query, params.get("address"))
            if self.optimistic and kind in self.empty:
                unwaited = _unwaited()[query]
                self.session.send(unwaited.sql, unwaited.args(params))
                return None  # or the server fails the batch (see the module's doc)
            row = self._first(query, params)
            if row is None:
                self.empty.add(kind)
            else:
                self.empty.discard(kind)
            return row
        return self._first(query, params)

    def all(self, query: str, **params: Any) -> list[Row]:
        self.flush()
        return list(self.session.rows(self._send(query, params)))

    def run(self, query: str, **params: Any) -> int:
        self.flush()
        self._writes += 1
        if self.optimistic and self.batching and query in _MUST_CHANGE_ONE:
            unwaited = _unwaited()[query]
            self.session.send(unwaited.sql, unwaited.args(params))
            return 1  # or the server fails the batch (see the module's doc)
        return self.session.rowcount(self._send(query, params))

    def write(self, query: str, **params: Any) -> None:
        self._writes += 1
        if query == "insert_event" and self.batching:
            self._events.append(params)
            return
        self.flush()
        self._sent(self._send(query, params))

    def insert(self, query: str, **params: Any) -> int | None:
        self.flush()
        self._writes += 1
        if query == "insert_intent":
            return self._insert_intent(params)
        row = self._first(query, params)
        return None if row is None else int(next(iter(row.values())))

    def _insert_intent(self, params: Mapping[str, Any]) -> int | None:
        """An intent at a pos taken beforehand (module's doc): without an idempotency key
        nothing can make it insert nothing, so in a batch it is not waited for."""
        if not self.positions:
            self.positions.extend(int(r["n"]) for r in self.all("next_positions", count=POSITIONS))
        pos = self.positions.popleft()
        answer = self._send("insert_intent", {**params, "pos": pos})
        if params.get("idempotency_key") is None and self.batching:
            return pos  # its error, if any, comes with the next answer waited for
        rows = self.session.rows(answer)
        return int(rows[0]["pos"]) if rows else None

    async def commit(self) -> None:
        """COMMIT the batch, waited for on the event loop; positions for the next batches'
        inserts come back with it when few are left (no round trip of their own)."""
        self.flush()
        refill = None
        if len(self.positions) < POSITIONS // 2:
            refill = self._send("next_positions", {"count": POSITIONS})
        await self.session.commit_async()
        if refill is not None:
            self.positions.extend(int(r["n"]) for r in self.session.rows(refill))

    def run_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self._writes += 1
        if query == "insert_event" and self.batching:
            self._events.extend(rows)
            return
        self.flush()
        answers = [self._send(query, row) for row in rows]
        if answers:
            self._sent(answers[-1])

    def _sent(self, answer: Answer) -> None:
        """A write sent: in a batch its error comes with the next answer waited for;
        alone, it is its own transaction, waited for now."""
        if not self.batching:
            self.session.wait(answer)

    def savepoint(self) -> AbstractContextManager[None]:
        if self.optimistic:
            return self._no_savepoint()
        self.flush()  # the events kept so far are not the block's to undo; later ones are
        return savepoint(self._statement, undone=self._events.clear)

    def _statement(self, sql: str) -> None:
        self.session.send(sql.encode(), prepare=False)

    @contextmanager
    def _no_savepoint(self) -> Iterator[None]:
        before = self._writes
        try:
            yield
        except AxmeError as exc:
            if self._writes == before:
                raise  # it refused before writing: nothing to undo
            raise UndoBatch(exc) from exc
