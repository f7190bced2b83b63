"""Versioned SQL migrations, recorded in `schema_migrations`.

A fresh database gets `schema.sql` in one go and every migration recorded as applied; an
existing one gets the migrations it has not seen, each in its own transaction.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from axme_daemon.intents import now_iso

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _sql_dir(dialect: str) -> resources.abc.Traversable:
    return resources.files("axme_daemon.store") / "sql" / dialect


def load_migrations(dialect: str = "sqlite") -> list[Migration]:
    found = []
    for entry in (_sql_dir(dialect) / "migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m[1]), m[2], entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    if [mig.version for mig in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations are not numbered 0001..N without gaps")
    return found


def load_schema(dialect: str = "sqlite") -> str:
    return (_sql_dir(dialect) / "schema.sql").read_text()


_CREATE_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


def migrate(db: sqlite3.Connection, *, fresh_from_schema: bool = True) -> list[int]:
    """Bring `db` (in autocommit mode) up to date; return the versions applied now."""
    migrations = load_migrations()
    db.execute(_CREATE_TABLE)
    cur = db.execute("SELECT version FROM schema_migrations")
    done = {r[0] for r in cur.fetchall()}
    cur = db.execute("SELECT count(*) FROM sqlite_master WHERE name='intents'")
    row = cur.fetchone()
    fresh = not done and row is not None and row[0] == 0
    if fresh and fresh_from_schema:
        steps = [(load_schema(), migrations)]
    else:
        steps = [(m.sql, [m]) for m in migrations if m.version not in done]
    for sql, recorded in steps:
        marks = "".join(
            f"INSERT INTO schema_migrations VALUES ({m.version}, '{m.name}', '{now_iso()}');\n"
            for m in recorded
        )
        try:
            db.executescript(f"BEGIN IMMEDIATE;\n{sql}\n{marks}COMMIT;")
        except Exception:
            if db.in_transaction:
                db.rollback()
            raise
    return [m.version for _, recorded in steps for m in recorded]
