"""The SQLite dialect of `lifecycle.tx.Tx`: the named queries of `sql/sqlite/queries.sql`
over one connection, whose rows are dicts by column name."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from axme_daemon.lifecycle.tx import Row
from axme_daemon.store.queries import load_queries, savepoint

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def to_qmark(sql: str) -> tuple[str, tuple[str, ...]]:
    """`:name` parameters as `?`, and the names in their order: sqlite3 binds a tuple
    faster than it looks each name up in a dict."""
    return _PARAM.sub("?", sql), tuple(_PARAM.findall(sql))


def dict_rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """A cursor's rows as dicts by column name."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class SqliteTx:
    """Every write runs inside the writer's BEGIN IMMEDIATE: one writer at a time, so a
    `*_for_update` read holds without a lock clause.

    Rows come from SQLite as tuples and are made dicts here with each query's column names,
    read once: cheaper than a row factory's work per row, or `sqlite3.Row`'s lookups by
    name, which compare each column name in turn."""

    def __init__(self, db: sqlite3.Connection) -> None:
        #: The connection itself, for what only SQLite has (its own tests, its pragmas).
        self.db = db
        self._sql = {name: to_qmark(sql) for name, sql in load_queries("sqlite").items()}
        self._columns: dict[str, tuple[str, ...]] = {}

    def _names(self, query: str, cursor: sqlite3.Cursor) -> tuple[str, ...]:
        names = self._columns.get(query)
        if names is None:
            names = self._columns[query] = tuple(c[0] for c in cursor.description)
        return names

    def _execute(self, query: str, params: Mapping[str, Any]) -> sqlite3.Cursor:
        sql, names = self._sql[query]
        return self.db.execute(sql, [params[name] for name in names])

    def one(self, query: str, **params: Any) -> Row | None:
        cur = self._execute(query, params)
        row = cur.fetchone()
        return None if row is None else dict(zip(self._names(query, cur), row, strict=True))

    def all(self, query: str, **params: Any) -> list[Row]:
        cur = self._execute(query, params)
        names = self._names(query, cur)
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def run(self, query: str, **params: Any) -> int:
        cur = self._execute(query, params)
        changed = cur.rowcount
        cur.close()
        return changed

    def write(self, query: str, **params: Any) -> None:
        self._execute(query, params).close()

    def insert(self, query: str, **params: Any) -> int | None:
        cur = self._execute(query, params)
        key = cur.lastrowid if cur.rowcount else None
        cur.close()
        return key

    def run_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        sql, names = self._sql[query]
        self.db.executemany(sql, [[row[name] for name in names] for row in rows])

    def savepoint(self) -> AbstractContextManager[None]:
        return savepoint(self.db.execute)
