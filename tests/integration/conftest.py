"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from axme_daemon.store import Store, open_store
from axme_daemon.store.sqlite import SqliteStore

#: The backends the store contract runs against, each by the fixture that gives a URL of
#: a fresh store of its own: `<backend>_url`. Adding a backend to the contract is a line here
#: (and that fixture).
STORE_BACKENDS = ["sqlite"]


@pytest.fixture
async def store(axme_home: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store in this test's home, closed after."""
    store = SqliteStore(axme_home / "axme.db")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def sqlite_url(axme_home: Path) -> str:
    return f"sqlite:///{axme_home / 'contract.db'}"


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh store, once per backend."""
    url = request.getfixturevalue(f"{request.param}_url")
    assert isinstance(url, str)
    return url


@pytest.fixture
async def backend_store(store_url: str) -> AsyncIterator[Store]:
    """An open store of each backend in turn, closed after: the contract's subject."""
    store = open_store(store_url)
    await store.open()
    yield store
    await store.close()
