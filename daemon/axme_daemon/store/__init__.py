"""Pick a store backend by URL; optional drivers are imported only when asked for."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from axme_daemon.store.base import IntentFilter, Page, Store, StoreStats, WorkerReport

__all__ = [
    "IntentFilter",
    "Page",
    "Store",
    "StoreStats",
    "WorkerReport",
    "check_store_url",
    "open_store",
    "shown_url",
]

_POSTGRES = ("postgresql://", "postgres://")


def check_store_url(url: str) -> None:
    """Raise ValueError, naming the URL, for a scheme no backend serves."""
    if "://" in url and not url.startswith(("sqlite:///", *_POSTGRES)):
        raise ValueError(
            f"unsupported store URL {shown_url(url)!r}: expected sqlite:///PATH or postgresql://..."
        )


def shown_url(url: str) -> str:
    """The URL with any password replaced by `***`: it goes to status output and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(url: str, *, key_file: Path | None = None) -> Store:
    """`sqlite:///path/to/axme.db` (or a bare path) → SQLite; `postgresql://...` →
    PostgreSQL (the `postgres` extra); `key_file` seals their secrets."""
    check_store_url(url)
    if url.startswith(_POSTGRES):
        from axme_daemon.store.postgres import PostgresStore

        return PostgresStore(url, key_file=key_file or Path.home() / ".axme" / "secrets.key")
    if url.startswith("sqlite:///"):
        url = url.removeprefix("sqlite:///")  # sqlite:////abs/path, sqlite:///rel/path
    from axme_daemon.store.sqlite import SqliteStore

    return SqliteStore(Path(url), key_file=key_file)
