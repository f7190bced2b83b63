"""Pick a store backend by URL; optional drivers are imported only when asked for."""

from __future__ import annotations

from pathlib import Path

from axme_daemon.store.base import IntentFilter, Page, Store, StoreStats, WorkerReport

__all__ = ["IntentFilter", "Page", "Store", "StoreStats", "WorkerReport", "open_store"]


def open_store(url: str, *, key_file: Path | None = None) -> Store:
    """`sqlite:///path/to/axme.db` (or a bare path) → SQLite; `postgresql://...` →
    PostgreSQL (the `postgres` extra); `key_file` seals their secrets."""
    if url.startswith(("postgresql://", "postgres://")):
        from axme_daemon.store.postgres import PostgresStore

        return PostgresStore(url, key_file=key_file or Path.home() / ".axme" / "secrets.key")
    if url.startswith("sqlite:///"):
        url = url.removeprefix("sqlite:///")  # sqlite:////abs/path, sqlite:///rel/path
    elif "://" in url:
        raise ValueError(
            f"unsupported store URL {url!r}: expected sqlite:///PATH or postgresql://..."
        )
    from axme_daemon.store.sqlite import SqliteStore

    return SqliteStore(Path(url), key_file=key_file)
