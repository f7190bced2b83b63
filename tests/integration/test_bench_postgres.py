"""`axme bench --store postgresql://...`: the PG workload (W1 and W1-seq with a daemon on
PostgreSQL) runs beside SQLite's, with the ratio of each figure; W1 with two daemons on the
database beside one, and W2 with a daemon SIGKILLed; and it leaves nothing running."""

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
    beside_sqlite = {
        "3-step intents (1 daemon)",
        "3-step latency (1 daemon)",
        "3-step commits (1 daemon)",
        "seq latency (1 daemon)",
        "step record lag (1 daemon)",
    }
    several = {
        f"3-step {what} ({who}, 4 clients)"
        for what in ("intents", "latency")
        for who in ("1 daemon", "2 daemons")
    } | {"daemon kill to redelivery", "daemon kill to completed"}
    assert set(pg) == beside_sqlite | several
    for name in beside_sqlite:
        assert pg[name]["median"] > 0 and pg[name]["ratio_to_sqlite"] > 0, (name, pg[name])
    for name in several:
        assert pg[name]["median"] > 0 and "ratio_to_sqlite" not in pg[name], (name, pg[name])
    assert pg["3-step latency (2 daemons, 4 clients)"]["n"] == 20  # every intent COMPLETED
    checks = report["checks"]
    assert checks["PG daemons sharing"] == {"live": 2, "registered": 2}
    assert checks["PG 2 daemons / 1 daemon"] > 0
    # A daemon killed: every intent it held came back, and the survivor completed all of
    # them (the bench stops otherwise), after the grace its heartbeat had to lapse by.
    total, held = map(int, checks["PG W2 intents / in flight on the killed daemon"].split(" / "))
    assert total == 8 and 1 <= held <= total  # one daemon's room (concurrency 8)
    assert pg["daemon kill to completed"]["n"] == pg["daemon kill to redelivery"]["n"] == held
    grace = checks["PG lease grace (s)"]
    assert grace * 1000 * 0.5 < pg["daemon kill to redelivery"]["min"]
    assert pg["daemon kill to redelivery"]["max"] <= pg["daemon kill to completed"]["max"]
    assert checks["PG W2 step 1 re-runs"] == 0
    assert isinstance(checks["PG W2 max kill to completed within lease grace + 1 s"], bool)
    assert pg["3-step latency (1 daemon)"]["n"] == 20  # --tiny: 20 intents a run
    assert pg["seq latency (1 daemon)"]["n"] == 5
    sqlite = report["workloads"]["W1"]["3-step intents"]["median"]
    ratio = pg["3-step intents (1 daemon)"]["median"] / sqlite
    assert abs(pg["3-step intents (1 daemon)"]["ratio_to_sqlite"] - ratio) < 0.01
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
