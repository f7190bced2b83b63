"""`axme daemon start | stop | status | list | logs` on a real home, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

from axme_cli.errors import EXIT_BAD_INPUT, EXIT_UNREACHABLE
from axme_cli.paths import HomePaths
from tests.daemon import Daemon, env_for, run_cli, wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _status_pid(home: Path) -> int:
    result = run_cli(home, "daemon", "status", "--json")
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["pid"])


def test_start_status_stop(cli_home: Path) -> None:
    started = run_cli(cli_home, "daemon", "start")
    assert started.returncode == 0, started.stderr
    assert "started: pid" in started.stdout and "axme.sock" in started.stdout
    pid = _status_pid(cli_home)
    assert _alive(pid)

    paths = HomePaths(cli_home)
    assert stat.S_IMODE(paths.run_dir.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(paths.socket.stat().st_mode)
    assert stat.S_IMODE(paths.socket.stat().st_mode) == 0o600

    status = run_cli(cli_home, "daemon", "status")
    assert status.returncode == 0
    assert f"pid {pid}" in status.stdout

    again = run_cli(cli_home, "daemon", "start")
    assert again.returncode == 0
    assert f"already running: pid {pid}" in again.stdout
    assert _status_pid(cli_home) == pid

    stopped = run_cli(cli_home, "daemon", "stop")
    assert stopped.returncode == 0
    assert f"stopped pid {pid}" in stopped.stdout
    wait_for(lambda: not _alive(pid), what="the daemon to exit")
    assert not paths.socket.exists() and not paths.pidfile.exists()
    gone = run_cli(cli_home, "daemon", "status")
    assert gone.returncode == EXIT_UNREACHABLE
    assert "not running" in gone.stdout
    assert run_cli(cli_home, "daemon", "stop").stdout.strip() == "not running"


def test_concurrent_starts_make_one_daemon(cli_home: Path) -> None:
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(run_cli(cli_home, "daemon", "start")))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    pids = {line.split("pid ")[1].split(",")[0] for r in results for line in r.stdout.splitlines()}
    assert len(pids) == 1, results
    assert sum("started: pid" in r.stdout for r in results) == 1


def test_a_second_daemon_process_on_the_same_home_refuses(daemon: Daemon) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "axme_daemon", "--home", str(daemon.home)],
        env=env_for(daemon.home),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 3
    assert "already running" in second.stderr
    assert daemon.health()["pid"] == daemon.proc.pid  # type: ignore[union-attr]


def test_restart_after_sigkill_recovers_stale_socket_and_pidfile(cli_home: Path) -> None:
    crashed = Daemon(cli_home).start()
    with crashed.client() as client:
        body = {"intent_type": "intent.a.v1", "to_agent": "agent://a/b"}
        intent_id = client.post("/v1/intents", json=body).json()["intent_id"]
    crashed.kill()
    paths = HomePaths(cli_home)
    assert paths.socket.exists() and paths.pidfile.exists(), "SIGKILL leaves both behind"

    status = run_cli(cli_home, "daemon", "status")
    assert status.returncode == EXIT_UNREACHABLE
    shown = run_cli(cli_home, "show", intent_id[:8], "--json")  # auto-starts a new daemon
    assert shown.returncode == 0, shown.stderr
    assert "started the axme daemon" in shown.stderr
    assert _status_pid(cli_home) != crashed.proc.pid  # type: ignore[union-attr]


def test_stop_escalates_to_sigkill_when_the_daemon_does_not_exit(cli_home: Path) -> None:
    assert run_cli(cli_home, "daemon", "start").returncode == 0
    pid = _status_pid(cli_home)
    os.kill(pid, signal.SIGSTOP)  # a hung daemon: SIGTERM stays pending
    try:
        stopped = run_cli(cli_home, "daemon", "stop", "--timeout", "1")
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert stopped.returncode == 0, stopped.stderr
    assert f"killed pid {pid}" in stopped.stdout
    wait_for(lambda: not _alive(pid), what="the daemon to be killed")


def test_foreground_runs_in_place_and_stops_on_sigterm(axme_home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "axme_cli", "daemon", "start", "--foreground"],
        env=env_for(axme_home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: run_cli(axme_home, "daemon", "status").returncode == 0,
            timeout=20,
            what="the foreground daemon",
        )
        # exec: the daemon is the very process we started.
        assert _status_pid(axme_home) == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert proc.stderr is not None
        assert "axme daemon serving" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_logs_prints_and_follows(cli_home: Path) -> None:
    none_yet = run_cli(cli_home, "daemon", "logs")
    assert none_yet.returncode == 2 and "no daemon log" in none_yet.stderr
    assert run_cli(cli_home, "daemon", "start").returncode == 0
    logs = run_cli(cli_home, "daemon", "logs", "-n", "5")
    assert logs.returncode == 0 and "axme daemon serving" in logs.stdout
    as_json = run_cli(cli_home, "daemon", "logs", "-n", "5", "--json")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(records) == len(logs.stdout.splitlines())
    serving = [r for r in records if r.get("message") == "axme daemon serving"]
    assert serving and serving[0]["level"] == "INFO" and serving[0]["logger"] == "axme_daemon"
    follower = subprocess.Popen(
        [sys.executable, "-m", "axme_cli", "daemon", "logs", "-f", "-n", "1"],
        env=env_for(cli_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(follower.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        # Its last line out says it reads the log: only then can it see the stop (a process
        # that starts slowly would open the log after the stop line and wait for more).
        wait_for(lambda: seen, timeout=20, what="the follower to print the last line")
        assert run_cli(cli_home, "daemon", "stop").returncode == 0
        wait_for(lambda: any("daemon stopped" in line for line in seen), what="the stop line")
    finally:
        follower.terminate()
        follower.wait(10)
        reader.join(10)
        if follower.stdout:
            follower.stdout.close()


def test_daemon_list_on_sqlite_shows_the_one_daemon_and_what_its_workers_hold(
    daemon: Daemon,
) -> None:
    home = daemon.home
    address = "agent://test/list/worker"
    with daemon.client() as client:  # an agent's worker listens, and holds one delivery
        sent = client.post("/v1/intents", json={"intent_type": "t.v1", "to_agent": address})
        assert sent.status_code == 200, sent.text
        stream = f"/v1/agents/{address[8:]}/intents/stream"
        held = client.get(stream, params={"wait_seconds": 0}, headers={"X-Axme-Worker": "w1"})
        assert sent.json()["intent_id"] in held.text
    listed = run_cli(home, "daemon", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["daemon_id"] == (home / "daemon.id").read_text().strip()
    assert row["this"] is True and row["live"] is True and row["pid"] == daemon.proc.pid
    assert row["home"] == str(home) and row["started_at"].endswith("Z")
    assert row["heartbeat_at"] is None and row["heartbeat_age"] is None  # one daemon: none
    assert row["leases"] == 1 and row["listening"] == [address]

    text = run_cli(home, "daemon", "list")
    assert text.returncode == 0, text.stderr
    header, line = text.stdout.splitlines()
    assert header.split() == [
        "DAEMON", "HOST", "PID", "STARTED", "HEARTBEAT", "STATE", "LEASES", "LISTENING"
    ]  # fmt: skip
    assert line.split() == [
        row["daemon_id"], "(this)", row["host"], str(row["pid"]), line.split()[4], "-",
        "live", "1", "test/list/worker",
    ]  # fmt: skip
    assert "1 live of 1 registered on this store" in text.stderr

    for bad, says in (
        (["list", "now"], "unexpected extra argument"),
        (["list", "--live"], "no such option: --live"),
    ):
        refused = run_cli(home, "daemon", *bad)
        assert refused.returncode == EXIT_BAD_INPUT
        assert refused.stdout == ""
        assert len(refused.stderr.strip().splitlines()) == 1 and says in refused.stderr
    helped = run_cli(home, "daemon", "list", "--help")
    assert helped.returncode == 0
    for teaches in ("--store postgresql://", "lease grace", "LISTENING", "--json", "jq"):
        assert teaches in " ".join(helped.stdout.split()), teaches
