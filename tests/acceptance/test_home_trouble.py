"""Homes that are not what the daemon expects: a copied home, a directory where the socket
goes. Each gets one clear line, and nothing outside the home is touched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from axme_cli.errors import EXIT_UNREACHABLE
from axme_cli.paths import HomePaths
from tests.daemon import Daemon, env_for, run_cli


def test_stop_in_a_copy_of_a_live_home_leaves_the_original_daemon_alone(
    daemon: Daemon, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(daemon.home), str(copy)], check=True)  # as a user would
    assert HomePaths(copy).pidfile.read_text().strip() == str(daemon.proc.pid)  # type: ignore[union-attr]

    stopped = run_cli(copy, "daemon", "stop")

    assert stopped.returncode == 0, stopped.stderr
    line = stopped.stdout.strip()
    assert line.startswith("not running:") and "nothing was signalled" in line
    assert "\n" not in line
    assert daemon.proc.poll() is None  # type: ignore[union-attr]
    assert daemon.health()["ok"]
    as_json = json.loads(run_cli(copy, "daemon", "stop", "--json").stdout)
    assert as_json["was_running"] is False and "not the daemon of" in as_json["not_ours"]


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_directory_at_the_socket_path_is_one_clear_line(axme_home: Path) -> None:
    paths = HomePaths(axme_home)
    paths.socket.mkdir(parents=True)
    (paths.socket / "keep.txt").write_text("mine")

    started = run_cli(axme_home, "daemon", "start")
    assert started.returncode == EXIT_UNREACHABLE
    line = _one_line(started)
    assert f"{paths.socket} is a directory" in line and "remove it" in line

    listed = run_cli(axme_home, "list")  # a command that starts the daemon on first use
    assert listed.returncode == EXIT_UNREACHABLE
    assert f"{paths.socket} is a directory" in _one_line(listed)

    direct = subprocess.run(
        [sys.executable, "-m", "axme_daemon", "--home", str(axme_home)],
        env=env_for(axme_home),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert direct.returncode == 4
    assert f"{paths.socket} is a directory" in _one_line(direct)
    assert (paths.socket / "keep.txt").read_text() == "mine"  # nothing of the user's deleted


def test_a_file_where_the_home_needs_a_directory_is_one_clear_line(axme_home: Path) -> None:
    paths = HomePaths(axme_home)
    paths.run_dir.write_text("not a directory")
    started = run_cli(axme_home, "daemon", "start")
    assert started.returncode == EXIT_UNREACHABLE
    assert f"cannot use {paths.run_dir}: it is not a directory" in _one_line(started)

    under_a_file = axme_home / "run" / "home"  # the home's parent is a file
    sent = run_cli(under_a_file, "list")
    assert sent.returncode == EXIT_UNREACHABLE
    assert "cannot use" in _one_line(sent)
