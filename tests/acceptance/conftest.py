"""Fixtures several acceptance modules share; the PostgreSQL tier's, for the tests that run
several daemons on one database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from axme_cli.paths import HomePaths
from tests.daemon import run_cli
from tests.integration.conftest import postgresql_server, postgresql_url

__all__ = ["api", "postgresql_server", "postgresql_url"]


@pytest.fixture
def api(cli_home: Path) -> Iterator[httpx.Client]:
    """The daemon `axme daemon start` runs on this home, and an HTTP client for it."""
    started = run_cli(cli_home, "daemon", "start")
    assert started.returncode == 0, started.stderr
    with httpx.Client(
        transport=httpx.HTTPTransport(uds=str(HomePaths(cli_home).socket)),
        base_url="http://axme",
        timeout=15.0,
    ) as client:
        yield client
