"""The PostgreSQL dialect of `lifecycle.tx.Tx`: the named queries of
`sql/postgresql/queries.sql` over one psycopg connection, rows as dicts.

In the writer's batch the connection is in pipeline mode (`pipeline` set): statements go
out without waiting, and a round trip happens only where a rule needs an answer: a read's
rows, a conditional write's row count. `write`, `run_many` and savepoints ride along with
the next one (the server runs them in order, and an error among them is raised there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from functools import cache
from typing import Any

import psycopg
from psycopg import sql as pgsql

from axme_daemon.lifecycle.tx import Row
from axme_daemon.store.queries import load_queries, savepoint

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def to_pyformat(sql: str) -> str:
    """`:name` parameters as psycopg's `%(name)s`."""
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


@cache
def _queries() -> dict[str, pgsql.SQL]:
    return {name: pgsql.SQL(to_pyformat(text)) for name, text in load_queries("postgresql").items()}


class PostgresTx:
    """Runs inside the writer's transaction; its `*_for_update` reads lock their rows."""

    def __init__(self, db: psycopg.Connection[dict[str, Any]]) -> None:
        self.db = db
        self._sql = _queries()
        #: The writer's pipeline while a batch runs; None: each statement waits for its answer.
        self.pipeline: psycopg.Pipeline | None = None

    def one(self, query: str, **params: Any) -> Row | None:
        return self.db.execute(self._sql[query], params).fetchone()

    def all(self, query: str, **params: Any) -> list[Row]:
        return list(self.db.execute(self._sql[query], params).fetchall())

    def run(self, query: str, **params: Any) -> int:
        cur = self.db.execute(self._sql[query], params)
        if self.pipeline is not None:
            self.pipeline.sync()  # the count, with what was sent before it
        return cur.rowcount

    def write(self, query: str, **params: Any) -> None:
        self.db.execute(self._sql[query], params)

    def insert(self, query: str, **params: Any) -> int | None:
        row = self.db.execute(self._sql[query], params).fetchone()
        return None if row is None else int(next(iter(row.values())))

    def run_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        with self.db.cursor() as cur:
            cur.executemany(self._sql[query], rows)

    def savepoint(self) -> AbstractContextManager[None]:
        return savepoint(self.db.execute)
