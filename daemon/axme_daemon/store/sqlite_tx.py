"""The SQLite dialect of `lifecycle.tx.Tx`: the named queries of `sql/sqlite/queries.sql`
over one connection, whose rows are dicts by column name."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

from axme_daemon.lifecycle.tx import Row
from axme_daemon.store.queries import load_queries, savepoint


def dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    """A row as a dict: cheaper to read field by field than `sqlite3.Row`, whose lookups
    by name compare each column name in turn."""
    return dict(zip([column[0] for column in cursor.description], row, strict=True))


class SqliteTx:
    """Every write runs inside the writer's BEGIN IMMEDIATE: one writer at a time, so a
    `*_for_update` read holds without a lock clause."""

    def __init__(self, db: sqlite3.Connection) -> None:
        db.row_factory = dict_row
        #: The connection itself, for what only SQLite has (its own tests, its pragmas).
        self.db = db
        self._sql = load_queries("sqlite")

    def one(self, query: str, **params: Any) -> Row | None:
        return cast(Row | None, self.db.execute(self._sql[query], params).fetchone())

    def all(self, query: str, **params: Any) -> list[Row]:
        return cast(list[Row], self.db.execute(self._sql[query], params).fetchall())

    def run(self, query: str, **params: Any) -> int:
        cur = self.db.execute(self._sql[query], params)
        changed = cur.rowcount
        cur.close()
        return changed

    def insert(self, query: str, **params: Any) -> int:
        cur = self.db.execute(self._sql[query], params)
        key = cur.lastrowid
        cur.close()
        assert key is not None
        return key

    def run_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.db.executemany(self._sql[query], rows)

    def savepoint(self) -> AbstractContextManager[None]:
        return savepoint(self.db.execute)
