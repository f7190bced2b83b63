"""A fresh schema (schema.sql) must equal the one the migrations build, step by step."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import aiosqlite

from axme_daemon.store.migrations import load_migrations, migrate


def _schema(path: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
    finally:
        db.close()
    # Comments and layout may differ; the structure may not.
    return [(t, n, " ".join(re.sub(r"--[^\n]*", "", s or "").split())) for t, n, s in rows]


def _versions(path: Path) -> list[int]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        db.close()


async def test_fresh_schema_equals_migrated(axme_home: Path) -> None:
    fresh, migrated = axme_home / "fresh.db", axme_home / "migrated.db"
    async with aiosqlite.connect(fresh, isolation_level=None) as db:
        await migrate(db, fresh_from_schema=True)
    async with aiosqlite.connect(migrated, isolation_level=None) as db:
        await migrate(db, fresh_from_schema=False)
    assert _schema(fresh) == _schema(migrated)
    assert any(name == "events" for _, name, _ in _schema(fresh))
    everything = [m.version for m in load_migrations()]
    assert _versions(fresh) == _versions(migrated) == everything


async def test_migrate_is_idempotent(axme_home: Path) -> None:
    path = axme_home / "db.sqlite"
    async with aiosqlite.connect(path, isolation_level=None) as db:
        first = await migrate(db)
        second = await migrate(db)
    assert first == [m.version for m in load_migrations()]
    assert second == []
