"""Fixtures several acceptance modules share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from axme_cli.paths import HomePaths
from tests.daemon import run_cli


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
