"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from axme_daemon.store.sqlite import SqliteStore


@pytest.fixture
async def store(axme_home: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store in this test's home, closed after."""
    store = SqliteStore(axme_home / "axme.db")
    await store.open()
    yield store
    await store.close()
