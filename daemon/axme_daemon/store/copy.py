"""`axme store copy --to postgresql://...`: a home's SQLite store into a PostgreSQL
database, all of it or none of it.

The home's lock is held throughout, so its daemon can neither run nor start meanwhile. The
source is first brought up to date as a starting daemon would (migrations, plain secrets
sealed); then, in ONE transaction on the target: the schema (when the database is new), a
refusal if any table already holds rows, every table's rows as they are (ids, sequence
numbers, timestamps, leases, timers), the identity sequences moved past the copied ids, and
each table counted on both sides. Only when every count agrees is it committed: a failure
anywhere leaves the target as it was.

Sealed secrets (agents' `env`, hooks' secrets: `sealing.py`) are copied sealed. The key
stays in the home's `secrets.key`: a daemon serving the database opens them with the key in
its own home, so each such home needs a copy of that file.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axme_cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    AxmeError,
)
from axme_cli.paths import HomePaths
from axme_daemon.store import shown_url

if TYPE_CHECKING:
    import psycopg

#: Tables other rows point at come first (foreign keys); the rest in name order.
_FIRST = ("intents",)
#: Each database records its own migrations; daemons register themselves where they run.
_NOT_COPIED = frozenset({"schema_migrations", "daemons"})
#: Rows between two progress lines: a small home prints none.
PROGRESS_ROWS = 50_000

Progress = Callable[[int, int, str], None]


class CopyRefused(Exception):
    """Why nothing was copied, in one line, and the exit code that says so."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Copied:
    source: Path
    target: str  # password hidden
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # table: (source, target)
    sealed: int = 0
    key_file: Path | None = None
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(source for source, _ in self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "target": self.target,
            "tables": {t: {"source": s, "target": d} for t, (s, d) in self.counts.items()},
            "rows": self.rows,
            "sealed_secrets": self.sealed,
            "key_file": str(self.key_file),
            "seconds": round(self.seconds, 2),
        }


def copy_home(paths: HomePaths, source: Path, url: str, progress: Progress) -> Copied:
    """Copy `source` (the home's SQLite store) into the database at `url`; raise
    `CopyRefused` with nothing changed on the target."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise CopyRefused(
            f"--to: expected a postgresql://USER:PASSWORD@HOST/DB URL, got {shown_url(url)!r}",
            EXIT_BAD_INPUT,
        )
    if not paths.home.is_dir():
        raise CopyRefused(f"no axme home at {paths.home} (set --home or AXME_HOME)", EXIT_NOT_FOUND)
    if not source.is_file():
        raise CopyRefused(f"no store at {source}: nothing to copy", EXIT_NOT_FOUND)
    try:
        import psycopg
    except ImportError:
        raise CopyRefused(
            "PostgreSQL support is not installed: pip install 'axme-cli[postgres]'", EXIT_ERROR
        ) from None
    from axme_daemon.server import AlreadyRunning, HomeUnusable, acquire_lock

    began = time.monotonic()
    target = _connect(url)  # first: an unreachable server leaves even the home untouched
    try:
        try:
            lock = acquire_lock(paths)
        except HomeUnusable as exc:
            raise CopyRefused(str(exc), EXIT_ERROR) from None
        except AlreadyRunning:
            raise CopyRefused(
                f"the daemon of {paths.home} is running: stop it first (axme daemon stop)",
                EXIT_CONFLICT,
            ) from None
        try:
            _bring_up_to_date(source, paths.secrets_key)
            copied = _copy(source, target, progress)
        except psycopg.Error as exc:
            raise CopyRefused(
                f"the PostgreSQL server refused the copy ({_one_line(exc)}); nothing was copied",
                EXIT_ERROR,
            ) from exc
        finally:
            os.close(lock)
    finally:
        target.close()
    copied.source, copied.target = source, shown_url(url)
    copied.key_file, copied.seconds = paths.secrets_key, time.monotonic() - began
    return copied


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())  # libpq's messages span lines


def _connect(url: str) -> psycopg.Connection[Any]:
    import psycopg
    from psycopg.rows import dict_row

    try:  # rows as dicts, as `postgres.migrate` reads them
        return psycopg.connect(url, autocommit=True, connect_timeout=10, row_factory=dict_row)
    except psycopg.Error as exc:
        raise CopyRefused(
            f"cannot reach the PostgreSQL server at {shown_url(url)}: {_one_line(exc)}",
            EXIT_UNREACHABLE,
        ) from exc


def _bring_up_to_date(source: Path, key_file: Path) -> None:
    """Open and close the store as a starting daemon does: an older home's schema is
    migrated and its plain secrets sealed, so that the copy holds what a daemon would."""
    from axme_daemon.store.sealing import BadKeyFile
    from axme_daemon.store.sqlite import SqliteStore

    async def open_close() -> None:
        store = SqliteStore(source, key_file=key_file)
        await store.open()
        await store.close()

    try:
        asyncio.run(open_close())
    except AxmeError as exc:  # damaged, unreadable
        raise CopyRefused(f"{exc.message}; nothing was copied", EXIT_ERROR) from exc
    except BadKeyFile as exc:
        raise CopyRefused(f"{exc}; nothing was copied", EXIT_ERROR) from exc


def _tables(db: sqlite3.Connection) -> list[str]:
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        if r[0] not in _NOT_COPIED
    ]
    return sorted(names, key=lambda t: (t not in _FIRST, t))


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]


def _copy(source: Path, target: psycopg.Connection[Any], progress: Progress) -> Copied:
    from psycopg import sql

    from axme_daemon.store.postgres import migrate

    copied = Copied(source, "")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    try:
        src.execute("BEGIN")  # one snapshot of the source for the counts and the rows
        tables = _tables(src)
        counts = {t: int(src.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}
        copied.sealed = _sealed(src)
        total, done = sum(counts.values()), 0
        with target.transaction():
            target.execute("SET LOCAL lock_timeout = '10s'")
            migrate(target)  # a new database gets the schema inside this transaction
            target_columns = _target_columns(target)
            _check_target(target, tables, counts, target_columns, src)
            for table in tables:
                columns = _columns(src, table)
                statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
                )
                listed = ", ".join(f'"{c}"' for c in columns)
                with target.cursor() as cur, cur.copy(statement) as rows:
                    for row in src.execute(f'SELECT {listed} FROM "{table}"'):
                        rows.write_row(row)
                        done += 1
                        if done % PROGRESS_ROWS == 0:
                            progress(done, total, table)
            _move_sequences(target)
            for table in tables:
                copied.counts[table] = (counts[table], _count(target, table))
            differ = [f"{t} {s} -> {d}" for t, (s, d) in copied.counts.items() if s != d]
            if differ:  # raising here rolls the whole transaction back
                raise CopyRefused(
                    f"the counts differ after copying ({', '.join(differ)}); nothing was copied",
                    EXIT_ERROR,
                )
    finally:
        src.close()
    return copied


def _target_columns(target: psycopg.Connection[Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in target.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    ):
        found.setdefault(row["table_name"], set()).add(row["column_name"])
    return found


def _check_target(
    target: psycopg.Connection[Any],
    tables: list[str],
    counts: dict[str, int],
    target_columns: dict[str, set[str]],
    src: sqlite3.Connection,
) -> None:
    """Refuse a target that already holds rows, or that lacks a place for the source's."""
    from psycopg import sql

    for table in tables:
        missing = set(_columns(src, table)) - target_columns.get(table, set())
        if missing:
            raise CopyRefused(
                f"the target's table {table} lacks {', '.join(sorted(missing))}: is it an"
                " axme database of another version? nothing was copied",
                EXIT_ERROR,
            )
    held = []
    for table in tables:
        target.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.Identifier(table)))
        if n := _count(target, table):
            held.append(f"{n} {table}")
    if held:
        raise CopyRefused(
            f"the target already holds {', '.join(held)}: copy into a new, empty database"
            " (createdb); nothing was copied",
            EXIT_CONFLICT,
        )


def _count(target: psycopg.Connection[Any], table: str) -> int:
    from psycopg import sql

    row = target.execute(
        sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))
    ).fetchone()
    return int(row["n"]) if row else -1


def _move_sequences(target: psycopg.Connection[Any]) -> None:
    """Each identity column's next value after the copied ids, so that new rows on the
    target do not collide with them."""
    from psycopg import sql

    identities = target.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    for row in identities:
        table, column = row["table_name"], row["column_name"]
        target.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence({t}, {c}), coalesce(max({col}), 0) + 1,"
                " false) FROM {table}"
            ).format(
                t=sql.Literal(table),
                c=sql.Literal(column),
                col=sql.Identifier(column),
                table=sql.Identifier(table),
            )
        )
    # Delivery cursors come from a sequence of their own (shared by every daemon): past the
    # copied ones, or a worker's cursor would go back.
    target.execute(
        "SELECT setval('delivery_seq', greatest((SELECT max(delivery_seq) FROM intents), 1))"
    )


def _sealed(src: sqlite3.Connection) -> int:
    """How many sealed secrets the store holds (agents' env, hooks' secrets and URLs)."""
    n = 0
    for (spec,) in src.execute("SELECT spec FROM agents"):
        n += sum(k.endswith("_sealed") for k in json.loads(spec))
    for (hooks,) in src.execute("SELECT hooks FROM projects"):
        n += sum(k.endswith("_sealed") for hook in json.loads(hooks or "[]") for k in hook)
    return n
