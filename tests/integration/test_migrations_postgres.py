"""PostgreSQL's schema.sql must equal what its migrations build step by step, as SQLite's."""

from __future__ import annotations

from typing import Any

import pytest

from axme_daemon.store.migrations import load_migrations

psycopg = pytest.importorskip("psycopg")
dict_row = pytest.importorskip("psycopg.rows").dict_row

_SHAPE = """
SELECT 'column' AS kind, table_name AS owner, column_name AS name,
       data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') AS detail
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text, conname, pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'function', proname, proname, pg_get_functiondef(oid)
  FROM pg_proc WHERE pronamespace = 'public'::regnamespace
ORDER BY 1, 2, 3
"""


def _shape(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return [tuple(r) for r in db.execute(_SHAPE) if "schema_migrations" not in r[1]]


def test_fresh_schema_equals_the_migrations_applied_in_turn(postgresql_url: str) -> None:
    from axme_daemon.store.postgres import migrate

    with psycopg.connect(postgresql_url, autocommit=True, row_factory=dict_row) as db:
        applied = migrate(db)  # a fresh database: schema.sql, every migration recorded
        assert applied == [m.version for m in load_migrations("postgresql")]
        assert migrate(db) == []
    fresh = _shape(postgresql_url)
    with psycopg.connect(postgresql_url, autocommit=True) as db:
        db.execute("DROP SCHEMA public CASCADE")
        db.execute("CREATE SCHEMA public")
        for m in load_migrations("postgresql"):
            db.execute(m.sql)
    assert _shape(postgresql_url) == fresh


def test_an_older_database_gets_only_the_migrations_it_lacks(postgresql_url: str) -> None:
    from axme_daemon.store.postgres import migrate

    first, *later = load_migrations("postgresql")
    with psycopg.connect(postgresql_url, autocommit=True, row_factory=dict_row) as db:
        db.execute(first.sql)
        db.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        db.execute("INSERT INTO schema_migrations VALUES (1, 'initial', 'then')")
        assert migrate(db) == [m.version for m in later]
        versions = [
            r["version"] for r in db.execute("SELECT version FROM schema_migrations ORDER BY 1")
        ]
    assert versions == [1, *(m.version for m in later)]
