"""Fixtures shared by the integration tests."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from axme_daemon.store import Store, open_store
from axme_daemon.store.sqlite import SqliteStore
from tests import postgres

#: The backends the store contract runs against, each by the fixture that gives a URL of
#: a fresh store of its own: `<backend>_url`. Adding a backend to the contract is a line here
#: (and that fixture).
STORE_BACKENDS = ["sqlite", "postgresql"]


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


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[tuple[Path, int, str]]:
    """One throwaway PostgreSQL server for the session (`tests/postgres.py`)."""
    gap = postgres.missing(require=postgres.REQUIRED)
    if gap is not None:
        fail, why = gap
        (pytest.fail if fail else pytest.skip)(why)
    with postgres.server() as found:
        yield found


_databases = itertools.count()


@pytest.fixture
def postgresql_url(postgresql_server: tuple[Path, int, str]) -> str:
    """A fresh database of its own on the session's server."""
    import psycopg

    sock, port, user = postgresql_server
    name = f"contract_{next(_databases)}"
    with psycopg.connect(
        host=str(sock), port=port, user=user, dbname="postgres", autocommit=True
    ) as db:
        db.execute(f"CREATE DATABASE {name}".encode())
    return f"postgresql://{user}@/{name}?host={quote(str(sock), safe='')}&port={port}"


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh store, once per backend."""
    url = request.getfixturevalue(f"{request.param}_url")
    assert isinstance(url, str)
    return url


@pytest.fixture
async def backend_store(store_url: str, axme_home: Path) -> AsyncIterator[Store]:
    """An open store of each backend in turn, closed after: the contract's subject."""
    store = open_store(store_url, key_file=axme_home / "secrets.key")
    await store.open()
    yield store
    await store.close()
