"""The PostgreSQL tier skips on a developer's machine without PostgreSQL, saying how to run
it, and fails under `AXME_TEST_REQUIRE_POSTGRES=1` (CI) rather than silently not running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import postgres


def test_without_binaries_it_skips_with_one_line_saying_how_to_enable_it(
    tmp_path: Path,
) -> None:
    gap = postgres.missing(tmp_path / "nowhere", require=False)
    assert gap is not None
    fail, why = gap
    assert not fail
    assert "\n" not in why
    assert "apt-get install postgresql-15" in why and "AXME_PG_BIN" in why
    assert postgres.REQUIRE in why


def test_without_binaries_ci_fails(tmp_path: Path) -> None:
    gap = postgres.missing(tmp_path, require=True)
    assert gap is not None and gap[0]


def test_with_binaries_it_runs_either_way(tmp_path: Path) -> None:
    for name in ("initdb", "pg_ctl"):
        (tmp_path / name).write_text("")
    assert postgres.missing(tmp_path, require=True) is None
    assert postgres.missing(tmp_path, require=False) is None


@pytest.mark.parametrize(("value", "wanted"), [("1", True), ("0", False), ("", False)])
def test_the_variable_asks_for_it(
    monkeypatch: pytest.MonkeyPatch, value: str, wanted: bool
) -> None:
    monkeypatch.setenv(postgres.REQUIRE, value)
    assert postgres.required() is wanted


def test_unset_it_is_not_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(postgres.REQUIRE, raising=False)
    assert not postgres.required()


def _tier_without_binaries(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """One PostgreSQL contract test, run by pytest with the binaries pointed at nothing."""
    environ = {k: v for k, v in os.environ.items() if k != postgres.REQUIRE}
    environ.update(AXME_PG_BIN=str(tmp_path / "nowhere"), **env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_store_contract.py",
            "tests/integration/test_lifecycle_races.py",
            "-k",
            "postgresql",
            "--maxfail=1",
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )


def test_the_fixture_skips_the_tier_with_one_line(tmp_path: Path) -> None:
    run = _tier_without_binaries(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(lines) == 1, run.stdout
    assert "apt-get install postgresql-15" in lines[0] and postgres.REQUIRE in lines[0]


def test_the_fixture_fails_the_tier_when_required(tmp_path: Path) -> None:
    run = _tier_without_binaries(tmp_path, **{postgres.REQUIRE: "1"})
    assert run.returncode != 0
    assert "the PostgreSQL tier needs" in run.stdout
