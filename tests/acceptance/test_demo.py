"""`axme demo` as a user (or CI) runs it: the agent is killed mid-step, the intent completes with
only the interrupted step run twice, and the demo leaves nothing behind but the intent."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli import daemonctl
from axme_cli.demo import ADDRESS, INTENT_TYPE, PIPELINE_AGENT
from axme_cli.paths import HomePaths
from tests.daemon import Daemon, env_for, run_cli, wait_for

EXPECTED_RUNS = {"extract": 1, "transform": 2, "load": 1}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"axme {' '.join(result.args[3:])} exited {result.returncode}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result


def agent_processes(home: Path) -> list[int]:
    """Pids of demo agents run for `home` (the supervisor gives each one AXME_HOME)."""
    script = str(PIPELINE_AGENT).encode()
    marker = f"AXME_HOME={home}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if script in cmdline and marker in environ.split(b"\0"):
            found.append(int(proc.name))
    return found


def assert_left_behind_only_the_intent(home: Path, intent_id: str, status: str) -> None:
    """No agent process, and (checked on a daemon started just for this) no demo agent
    registered, while the intent is kept."""
    assert not agent_processes(home)
    daemon = Daemon(home).start()
    try:
        with daemon.client() as client:
            assert client.get("/v1/agents").json()["agents"] == []
            intent = client.get(f"/v1/intents/{intent_id}").json()["intent"]
            assert intent["status"] == status
            assert intent["intent_type"] == INTENT_TYPE
    finally:
        daemon.stop()


def test_the_demo_tells_the_story_and_cleans_up(cli_home: Path) -> None:
    result = ok(run_cli(cli_home, "demo"))
    out = result.stdout
    assert "\x1b[" not in out, "no terminal: plain lines, no colours or cursor moves"
    killed = re.search(r"killing the agent \(pid (\d+)\) in the middle of 'transform'", out)
    restarted = re.search(
        r"supervisor restarted it \(pid (\d+)\); intent redelivered \(attempt 2\)", out
    )
    assert killed and restarted, out
    assert killed[1] != restarted[1]
    assert "'extract' replayed from the record, not re-run" in out
    assert "intent.completed COMPLETED" in out  # the timeline, event by event
    for step, runs in EXPECTED_RUNS.items():
        assert re.search(rf"^{step}\s+{runs}\s", out, re.M), out
    shown = re.search(rf"axme show ({UUID})", out)
    assert shown, out
    # The story comes in order.
    positions = [
        out.index(text)
        for text in ("sent intent", "killing the agent", "restarted it", "replayed", "COMPLETED")
    ]
    assert positions == sorted(positions)

    assert daemonctl.probe(HomePaths(cli_home)) is None, "the demo started the daemon: stop it"
    assert_left_behind_only_the_intent(cli_home, shown[1], "COMPLETED")


def test_the_demo_as_json(cli_home: Path) -> None:
    result = ok(run_cli(cli_home, "demo", "--json"))
    summary = json.loads(result.stdout)  # one document, nothing else on stdout
    assert summary["status"] == "COMPLETED"
    assert summary["step_runs"] == EXPECTED_RUNS
    assert summary["result"]["loaded_rows"] == 1200
    assert summary["result"]["attempt"] == 2
    assert 0 < summary["kill_to_redelivery_seconds"] < 10
    assert summary["killed_pid"] != summary["restarted_pid"]
    assert summary["ok"] is True
    assert daemonctl.probe(HomePaths(cli_home)) is None
    assert_left_behind_only_the_intent(cli_home, summary["intent_id"], "COMPLETED")


def test_a_daemon_that_was_running_keeps_running(daemon: Daemon, axme_home: Path) -> None:
    before = daemon.health()["pid"]
    summary = json.loads(ok(run_cli(axme_home, "demo", "--json")).stdout)
    assert summary["step_runs"] == EXPECTED_RUNS
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.health()["pid"] == before
    with daemon.client() as client:
        assert client.get("/v1/agents").json()["agents"] == []
        assert _intent(client, summary["intent_id"])["status"] == "COMPLETED"
    assert not agent_processes(axme_home)


def _intent(client: httpx.Client, intent_id: str) -> dict[str, Any]:
    return client.get(f"/v1/intents/{intent_id}").json()["intent"]  # type: ignore[no-any-return]


def test_a_timeout_cleans_up_and_exits_9(cli_home: Path) -> None:
    # Too short for the agent to get going (it counts as started after a second).
    result = run_cli(cli_home, "demo", "--timeout", "0.5s")
    assert result.returncode == 9, result.stdout + result.stderr
    assert "axme demo did not finish within 0.5s" in result.stderr
    assert daemonctl.probe(HomePaths(cli_home)) is None
    assert not agent_processes(cli_home)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_cleans_up(cli_home: Path, sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "axme_cli", "demo"],
        env={**env_for(cli_home), "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "sent intent" in line:
                break
        sent = re.search(r"sent intent (\w+)", "".join(seen))
        assert sent, "".join(seen)
        wait_for(lambda: agent_processes(cli_home), timeout=10, what="the demo agent")
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler prints where each thread is
            _, err = proc.communicate()
            raise AssertionError(f"the demo hung after {sig.name}:\n{err}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, err
    assert "interrupted; canceled intent" in err and "removed the agent" in err
    assert daemonctl.probe(HomePaths(cli_home)) is None
    assert not agent_processes(cli_home)
    daemon = Daemon(cli_home).start()
    try:
        with daemon.client() as client:
            assert client.get("/v1/agents").json()["agents"] == []
            intents = client.get("/v1/intents", params={"to_agent": ADDRESS}).json()["intents"]
            assert [i["status"] for i in intents] == ["CANCELED"]
            assert intents[0]["intent_id"].startswith(sent[1])
    finally:
        daemon.stop()
