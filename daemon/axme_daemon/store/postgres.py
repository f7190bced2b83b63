"""PostgreSQL backend: the same lifecycle rules, group commit and push path as SQLite
(`sqlite.py`), over a server's transactions.

A batch is one READ COMMITTED transaction on the writer connection; its COMMIT returns
once the server made it durable (`synchronous_commit`), so its callers are answered then,
with no sync of the daemon's own. The rules lock what they change (`*_for_update`
queries) and write conditionally (`lifecycle/tx.py`), so other writers on the same
database stay correct. The driver is psycopg 3's synchronous connection: the rules are
plain functions over a `Tx`, run on the event loop's thread like SQLite's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from axme_cli.errors import AxmeError, StoreUnavailable
from axme_daemon.intents import now_iso
from axme_daemon.store.base import StoreStats
from axme_daemon.store.migrations import load_migrations, load_schema
from axme_daemon.store.postgres_tx import PostgresTx
from axme_daemon.store.sealing import Sealer
from axme_daemon.store.sqlite import SqliteStore, _Batch

log = logging.getLogger(__name__)

_MIGRATIONS = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""
_LOCK = 0x61786D65  # one daemon at a time brings the schema up to date


def migrate(db: psycopg.Connection[dict[str, Any]]) -> list[int]:
    """Bring the database up to date, as `migrations.migrate` does SQLite's; one daemon at
    a time (an advisory lock), each migration in its own transaction."""
    migrations = load_migrations("postgresql")
    applied: list[int] = []
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        db.execute(_MIGRATIONS)
        done = {r["version"] for r in db.execute("SELECT version FROM schema_migrations")}
        if not done:  # a fresh database: the schema in one go, every migration recorded
            db.execute(load_schema("postgresql"))  # several statements: no parameters
            for m in migrations:
                db.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                    (m.version, m.name, now_iso()),
                )
            return [m.version for m in migrations]
    for m in migrations:
        if m.version in done:
            continue
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            if db.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (m.version,)
            ).fetchone():
                continue  # another daemon applied it meanwhile
            db.execute(m.sql)
            db.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                (m.version, m.name, now_iso()),
            )
        applied.append(m.version)
    return applied


class PostgresStore(SqliteStore):
    error_types = (psycopg.Error,)

    def __init__(self, url: str, *, max_batch: int = 512, key_file: Path) -> None:
        super().__init__(Path("postgresql"), max_batch=max_batch, key_file=key_file)
        self.url = url
        self._pw: psycopg.Connection[dict[str, Any]] | None = None
        self._pr: psycopg.Connection[dict[str, Any]] | None = None

    async def open(self) -> None:
        try:
            self._pw = psycopg.connect(self.url, autocommit=True, row_factory=dict_row)
            self._pr = psycopg.connect(self.url, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            why = " ".join(str(exc).split())  # libpq's message spans lines: the CLI shows one
            raise StoreUnavailable(f"cannot reach the PostgreSQL store: {why}") from exc
        if applied := migrate(self._pw):
            log.info("schema migrated", extra={"action": "migrate", "versions": applied})
        self._sealer = Sealer(self._key_file)
        self._wtx = PostgresTx(self._pw)
        self._rtx = reads = PostgresTx(self._pr)
        row = reads.one("last_delivery_seq")
        self._delivery_seq = int(row["n"]) if row else 0
        self._durable_delivery_seq = self._delivery_seq
        self._writer = asyncio.create_task(self._write_loop(), name="postgres-writer")

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
            self._writer = None
        for db in (self._pr, self._pw):
            if db is not None:
                db.close()
        self._pr = self._pw = None
        self._rtx = self._wtx = None

    def stats(self) -> StoreStats:
        return StoreStats(commits=self._commits, writes=self._writes, syncs=self._commits)

    def problem(self) -> str | None:
        return None

    def translate_error(self, exc: Exception) -> AxmeError | None:
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailable(f"the PostgreSQL store failed: {exc}")
        return None

    def _committed(self, run: _Batch) -> None:
        """The COMMIT returned: the server has it durably."""
        self._durable_delivery_seq = run.delivery_seq
        self._settle(run)

    def _begin(self) -> None:
        self._exec("BEGIN")

    def _exec(self, statement: str) -> None:
        assert self._pw is not None
        self._pw.execute(statement.encode())

    def _rollback(self) -> None:
        db = self._pw
        if db is not None and db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                db.execute(b"ROLLBACK")
            except psycopg.Error:
                log.exception("rollback failed")

    def _read(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        assert self._pr is not None
        query = sql.replace("%", "%%").replace("?", "%s")
        return list(self._pr.execute(query.encode(), args).fetchall())

    def _read_apart(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        return self._read(sql, args)
