"""Every test gets its own short AXME_HOME and no inherited AXME_* settings."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import postgres
from tests.daemon import Daemon, stop_home_daemon


@pytest.fixture(autouse=True)
def axme_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("AXME_"):
            monkeypatch.delenv(name)
    # Unix socket paths are limited to ~104 bytes: keep the home short, not under tmp_path.
    home = Path(tempfile.mkdtemp(prefix="axme-", dir="/tmp"))
    monkeypatch.setenv("AXME_HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def daemon(axme_home: Path) -> Iterator[Daemon]:
    """A running daemon on this test's home; stopped (and its log shown on failure) after."""
    d = Daemon(axme_home).start()
    yield d
    d.stop()


@pytest.fixture
def cli_home(axme_home: Path) -> Iterator[Path]:
    """A home for CLI tests; any daemon the CLI starts there is stopped afterwards."""
    yield axme_home
    stop_home_daemon(axme_home)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and postgres.TIER in longrepr[2]:
        # One place for every skip of the tier, so `-ra` says it once: "SKIPPED [n] ..."
        report.longrepr = (postgres.__file__, 0, longrepr[2])
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        home = funcargs.get("axme_home")
        if isinstance(funcargs.get("daemon"), Daemon):  # may be a module's, on its own home
            home = funcargs["daemon"].home
        if home is not None:
            log = Path(home) / "logs" / "daemon.log"
            if log.exists():
                report.sections.append(("daemon log", log.read_text(errors="replace")[-4000:]))
    return report


#: Fixtures that start a real daemon process (directly, or through the CLI that starts one).
DAEMON_FIXTURES = frozenset({"daemon", "cli_home"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `acceptance` every test that starts real daemon processes: all of
    tests/acceptance, and elsewhere those using a daemon fixture (`-m "not acceptance"` runs
    the fast tiers)."""
    acceptance = Path(__file__).parent / "acceptance"
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.path.is_relative_to(acceptance) or fixtures & DAEMON_FIXTURES:
            item.add_marker(pytest.mark.acceptance)
