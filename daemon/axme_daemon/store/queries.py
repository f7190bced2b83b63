"""A dialect's named queries: `sql/queries.sql`, with those its `sql/<dialect>/queries.sql`
says its own way in their place.

Each query starts with a `-- name: <query_name>` line; comment lines after it say what it
is for; the statement runs to the next name. The rules ask for queries by name, so a
dialect changes its SQL without touching a rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources

from axme_cli.errors import AxmeError

_NAME = re.compile(r"^-- name: ([a-z0-9_]+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if not line.startswith("--")]
        sql = "\n".join(lines).strip().rstrip(";").strip()
        if name in queries:
            raise RuntimeError(f"query {name!r} is defined twice")
        if not sql:
            raise RuntimeError(f"query {name!r} has no statement")
        queries[name] = sql
    return queries


@cache
def load_queries(dialect: str) -> dict[str, str]:
    sql = resources.files("axme_daemon.store") / "sql"
    queries = parse_queries((sql / "queries.sql").read_text())
    own = sql / dialect / "queries.sql"
    if own.is_file():
        replaced = parse_queries(own.read_text())
        if unknown := set(replaced) - set(queries):
            raise RuntimeError(f"{dialect} replaces queries that do not exist: {sorted(unknown)}")
        queries.update(replaced)
    return queries


@contextmanager
def savepoint(
    execute: Callable[[str], object], undone: Callable[[], object] = lambda: None
) -> Iterator[None]:
    """Writes inside undone together when the block raises an `AxmeError` (`undone`: what
    the backend forgets with them, e.g. writes it kept to send later)."""
    execute("SAVEPOINT composite")
    try:
        yield
    except AxmeError:
        undone()
        execute("ROLLBACK TO SAVEPOINT composite")
        raise
    finally:
        execute("RELEASE SAVEPOINT composite")
