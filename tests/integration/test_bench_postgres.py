"""`axme bench --store postgresql://...`: the PG workload (W1 and W1-seq with a daemon on
PostgreSQL) runs beside SQLite's, with the ratio of each figure, and leaves nothing running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.acceptance.test_bench import processes_mentioning, run_bench, tmpdir_short

pytestmark = pytest.mark.acceptance  # real daemon processes
__all__ = ["tmpdir_short"]  # the fixture, for pytest


def test_the_pg_workload_sets_postgresql_beside_sqlite(
    axme_home: Path, tmpdir_short: Path, postgresql_url: str
) -> None:
    only = "W1,W1-seq,PG"
    result = run_bench(
        axme_home, tmpdir_short, "--tiny", "--json", "--only", only, "--store", postgresql_url
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    pg = report["workloads"]["PG"]
    assert set(pg) == {
        "3-step intents (1 daemon)",
        "3-step latency (1 daemon)",
        "3-step commits (1 daemon)",
        "seq latency (1 daemon)",
        "step record lag (1 daemon)",
    }
    for name, row in pg.items():
        assert row["median"] > 0 and row["ratio_to_sqlite"] > 0, (name, row)
    assert pg["3-step latency (1 daemon)"]["n"] == 20  # --tiny: 20 intents a run
    assert pg["seq latency (1 daemon)"]["n"] == 5
    sqlite = report["workloads"]["W1"]["3-step intents"]["median"]
    ratio = pg["3-step intents (1 daemon)"]["median"] / sqlite
    assert abs(pg["3-step intents (1 daemon)"]["ratio_to_sqlite"] - ratio) < 0.01
    assert report["checks"]["PG several daemons"].startswith("not measured")
    assert report["checks"]["PG store"] == postgresql_url  # no password here to hide
    assert list(tmpdir_short.iterdir()) == []
    assert not processes_mentioning(report["home"]), "a daemon or agent of the bench is left"

    again = run_bench(axme_home, tmpdir_short, "--tiny", "--only", "PG", "--store", postgresql_url)
    assert again.returncode == 4
    assert "already holds intents" in again.stderr
    assert list(tmpdir_short.iterdir()) == []


def test_pg_needs_a_postgresql_store(axme_home: Path, tmpdir_short: Path) -> None:
    for args, says in (
        (("--only", "PG"), "PG needs --store"),
        (("--store", "sqlite:///x.db"), "--store: expected a postgresql://"),
    ):
        result = run_bench(axme_home, tmpdir_short, *args)
        assert result.returncode == 2, result.stderr
        assert says in result.stderr
    assert list(tmpdir_short.iterdir()) == []
