"""A fresh schema (schema.sql) must equal the one the migrations build, step by step."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from axme_daemon.store.migrations import load_migrations, migrate


def _schema(path: Path) -> dict[str, object]:
    """Tables, columns, indexes and foreign keys as SQLite reports them (not the DDL text,
    which ALTER TABLE rewrites differently)."""
    db = sqlite3.connect(path)
    try:
        shape: dict[str, object] = {}
        objects = db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        for kind, name, table, sql in objects:
            if kind == "table":
                shape[f"table {name}"] = {
                    "columns": db.execute(f"PRAGMA table_info({name})").fetchall(),
                    "foreign_keys": db.execute(f"PRAGMA foreign_key_list({name})").fetchall(),
                    "without_rowid": "WITHOUT ROWID" in (sql or "").upper(),
                }
            elif kind == "index":
                where = (sql or "").upper().partition(" WHERE ")[2]
                shape[f"index {name}"] = {
                    "table": table,
                    "columns": db.execute(f"PRAGMA index_xinfo({name})").fetchall(),
                    "where": " ".join(where.split()),
                }
        return shape
    finally:
        db.close()


def _versions(path: Path) -> list[int]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        db.close()


def test_fresh_schema_equals_migrated(axme_home: Path) -> None:
    fresh, migrated = axme_home / "fresh.db", axme_home / "migrated.db"
    with closing(sqlite3.connect(fresh, isolation_level=None)) as db:
        migrate(db, fresh_from_schema=True)
    with closing(sqlite3.connect(migrated, isolation_level=None)) as db:
        migrate(db, fresh_from_schema=False)
    assert _schema(fresh) == _schema(migrated)
    assert "table events" in _schema(fresh) and "table steps" in _schema(fresh)
    everything = [m.version for m in load_migrations()]
    assert _versions(fresh) == _versions(migrated) == everything


def test_migrate_is_idempotent(axme_home: Path) -> None:
    path = axme_home / "db.sqlite"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        first = migrate(db)
        second = migrate(db)
    assert first == [m.version for m in load_migrations()]
    assert second == []


def test_what_every_intent_write_looks_up_is_indexed(tmp_path: Path) -> None:
    """Statements run for every intent, or every ending one, read an index, not a table."""
    path = tmp_path / "plan.db"
    with closing(sqlite3.connect(path)) as db:
        migrate(db)
        for statement in (
            "DELETE FROM timers WHERE intent_pos = 1",
            "DELETE FROM waits WHERE intent_pos = 1",
            "UPDATE tasks SET status = 'CLOSED' WHERE intent_pos = 1 AND status = 'PENDING'",
            "SELECT 1 FROM intents WHERE to_agent = 'a' AND status = 'SUBMITTED' LIMIT 1",
            "SELECT count(*) FROM steps WHERE intent_pos = 1",
            # Every time timers fire: those armed after now, as after a clock step back.
            "UPDATE timers SET fire_at = fire_at - (armed_at - 1), armed_at = 1 WHERE armed_at > 1",
            "SELECT task_id FROM timers WHERE armed_at > 1 AND kind = 'deadline'",
        ):
            plan = " ".join(str(r[-1]) for r in db.execute(f"EXPLAIN QUERY PLAN {statement}"))
            assert "USING" in plan and not plan.startswith("SCAN"), (statement, plan)
