"""The seam between the lifecycle rules and a backend: one transaction, queries by name.

A rule reads what it is about to change with a `*_for_update` query and writes it with a
conditional update that names the state it read (`... AND last_seq = :expected_seq`,
`... AND status = 'PENDING'`), checking the row count. That holds whether the backend has
one writer (SQLite's BEGIN IMMEDIATE, where `FOR UPDATE` is a no-op) or many (PostgreSQL
at READ COMMITTED, where the read locks the row): of two writers acting on one read, one
changes the row and the other sees that it did not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from axme_cli.errors import Conflict

#: A row, read by column name.
Row = Mapping[str, Any]


class Tx(Protocol):
    """One open write transaction of a backend (or its read connection, for reads)."""

    def one(self, query: str, **params: Any) -> Row | None:
        """The first row of the named query, or None."""

    def all(self, query: str, **params: Any) -> list[Row]: ...

    def run(self, query: str, **params: Any) -> int:
        """Run a named write; how many rows it changed."""

    def write(self, query: str, **params: Any) -> None:
        """Run a named write whose row count the rule does not need: a backend may send it
        with the next statement that needs an answer (its error, if any, comes then)."""

    def insert(self, query: str, **params: Any) -> int | None:
        """Run a named insert; the new row's integer key, or None when it inserted nothing
        (a unique key it holds was taken: the query says `ON CONFLICT ... DO NOTHING`)."""

    def run_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def savepoint(self) -> AbstractContextManager[None]:
        """Writes inside are undone together when the block raises an `AxmeError`."""


class StaleWrite(Conflict):
    """A conditional write found its row changed since it was read: another writer won."""
