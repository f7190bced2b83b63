"""A dialect's named queries, from its `sql/<dialect>/queries.sql`.

Each query starts with a `-- name: <query_name>` line; comment lines after it say what it
is for; the statement runs to the next name. The policy layer asks for queries by name, so a
dialect changes its SQL without touching a rule.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

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
    path = resources.files("axme_daemon.store") / "sql" / dialect / "queries.sql"
    return parse_queries(path.read_text())
