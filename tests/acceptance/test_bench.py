"""`axme bench` as a user runs it: a throwaway daemon and agent, figures as JSON, and nothing
left behind (no daemon, no agent process, no temp home)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import env_for


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    """The bench's TMPDIR: short, since the socket lives under it (~104 bytes at most)."""
    path = Path(tempfile.mkdtemp(prefix="axb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose command line or environment mentions `text`."""
    found = []
    needle = text.encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if needle in cmdline or needle in environ:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def run_bench(axme_home: Path, tmpdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**env_for(axme_home), "TMPDIR": str(tmpdir)}
    return subprocess.run(
        [sys.executable, "-m", "axme_cli", "bench", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bench_json_reports_positive_figures_and_cleans_up(
    axme_home: Path, tmpdir_short: Path
) -> None:
    result = run_bench(
        axme_home,
        tmpdir_short,
        *("--quick", "--json", "--only", "W0,W1-seq", "--concurrency", "3", "--busy", "1"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["settings"]["concurrency"] == 3
    assert report["settings"]["busy"] == 1

    workloads = report["workloads"]
    assert set(workloads) == {"W0", "W1-seq"}
    assert set(workloads["W0"]) == {"1-row commits", "100-row commits"}
    assert set(workloads["W1-seq"]) == {"latency", "step record lag"}
    # A record leaves 10 ms after its step when plain code follows: never sooner.
    assert workloads["W1-seq"]["step record lag"]["min"] >= 9.0
    for metrics in workloads.values():
        for row in metrics.values():
            for key in ("median", "p99", "min", "max", "n"):
                assert row[key] > 0, (key, row)
            assert row["min"] <= row["median"] <= row["max"]
    assert workloads["W0"]["1-row commits"]["ratio_to_w0"] == 1.0
    assert workloads["W1-seq"]["latency"]["n"] == 30  # --quick

    home = Path(report["home"])
    assert home.parent == tmpdir_short
    assert not home.exists()
    assert list(tmpdir_short.iterdir()) == []
    assert not processes_mentioning(str(home)), "a daemon, agent or spin loop of the bench is left"
    assert not (axme_home / "run").exists(), "the bench must not touch the user's home"


def test_bench_table_covers_every_workload(axme_home: Path, tmpdir_short: Path) -> None:
    result = run_bench(axme_home, tmpdir_short, "--tiny")
    assert result.returncode == 0, result.stdout + result.stderr
    for figure in (
        "1-row commits",
        "3-step intents",
        "creates (32 clients)",
        "kill to pickup",
        "decision to done",
        "kill to completed @500",
        "axme send",
        *("axme list", "axme show", "axme inbox", "axme wait (done)", "axme agents list"),
        "axme --help",
    ):
        assert figure in result.stdout
    assert "removed" in result.stdout
    assert list(tmpdir_short.iterdir()) == []


def test_hundreds_of_steps_replay_after_a_kill_near_the_end(
    axme_home: Path, tmpdir_short: Path
) -> None:
    result = run_bench(axme_home, tmpdir_short, "--tiny", "--json", "--only", "W5")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    w5 = report["workloads"]["W5"]
    assert w5["kill to completed @500"]["note"] == "SIGKILL at step 499 to COMPLETED, 498 replayed"
    for size in (50, 500):
        assert 0 < w5[f"replay per step @{size}"]["median"] < 1000, w5  # microseconds
    assert report["checks"]["W5 replay per step, largest/smallest"] > 0
    assert not processes_mentioning(report["home"]), "a daemon or agent of the bench is left"


def test_unknown_workload_is_bad_input(axme_home: Path, tmpdir_short: Path) -> None:
    result = run_bench(axme_home, tmpdir_short, "--only", "W9")
    assert result.returncode == 2
    assert "W9" in result.stderr
    assert list(tmpdir_short.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "many", "2000"])
def test_a_bad_concurrency_is_bad_input(axme_home: Path, tmpdir_short: Path, value: str) -> None:
    result = run_bench(axme_home, tmpdir_short, "--concurrency", value)
    assert result.returncode == 2
    assert "--concurrency" in result.stderr
    assert list(tmpdir_short.iterdir()) == []


def test_growth_fills_a_store_and_measures_it(axme_home: Path, tmpdir_short: Path) -> None:
    result = run_bench(axme_home, tmpdir_short, "--json", "--only", "W4", "--scale", "300")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    w4 = report["workloads"]["W4"]
    for figure in ("list first page", "inbox", "show", "create", "daemon RSS", "store size"):
        assert w4[f"{figure} @300"]["median"] > 0, figure
    assert set(report["checks"]["W4 largest/smallest median"]) >= {"inbox", "show"}
    assert not processes_mentioning(report["home"]), "a daemon of the bench is left"


def test_growth_needs_a_scale(axme_home: Path, tmpdir_short: Path) -> None:
    result = run_bench(axme_home, tmpdir_short, "--only", "W4")
    assert result.returncode == 2
    assert "--scale" in result.stderr


def test_tui_workload_times_keys_with_a_filled_store(axme_home: Path, tmpdir_short: Path) -> None:
    result = run_bench(axme_home, tmpdir_short, "--tiny", "--json", "--only", "TUI")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    tui = report["workloads"]["TUI"]
    for figure in ("move down the inbox", "switch to intents", "open an intent"):
        assert tui[figure]["n"] == 2 and tui[figure]["median"] > 0, figure
    assert tui["event loop busy (lag)"]["n"] > 0
    assert "20 pending tasks" in tui["open an intent"]["note"]
    assert not processes_mentioning(report["home"]), "a daemon of the bench is left"
