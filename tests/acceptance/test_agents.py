"""Supervised agents as a user meets them: axme.toml applied by the CLI, `axme agents ...`,
crash loops ending in FATAL, handlers that crash or misbehave, intents nobody serves, and an
agent written against the official AXME SDK. Real daemon, real agent processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents import AGENTS, add_agent, agent_status, events, intent, running_pids, send
from tests.agents import wait_final as _wait_final
from tests.daemon import Daemon, env_for, wait_for

PY = sys.executable
ECHO = "intent.test.echo.v1"


# -- helpers ---------------------------------------------------------------------------------


def cli(
    home: Path, *args: str, cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`axme ARGS` run in `cwd`, as a user's shell in that directory would run it."""
    return subprocess.run(
        [PY, "-m", "axme_cli", *args],
        env=env_for(home),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def words(text: str) -> str:
    """Text with every run of whitespace made one space: a table cell or field wrapped by the
    terminal width reads as one sentence again."""
    return " ".join(text.split())


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one `error:` line a failed command prints on stderr (and nothing else there)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def agents_json(home: Path, cwd: Path) -> list[dict[str, Any]]:
    out = ok(cli(home, "agents", "list", "--json", cwd=cwd)).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def registered(daemon: Daemon) -> list[str]:
    with daemon.client() as client:
        return [a["address"] for a in client.get("/v1/agents").json()["agents"]]


def wait_running(daemon: Daemon, address: str, *, other_than: int | None = None) -> int:
    """The pid of the agent's (single) replica once it is RUNNING (and not `other_than`)."""

    def pid() -> int | None:
        with daemon.client() as client:
            pids = running_pids(client, address)
        return pids[0] if pids and pids[0] != other_than else None

    return int(wait_for(pid, timeout=20, interval=0.05, what=f"{address} to be RUNNING"))


def wait_final(daemon: Daemon, intent_id: str, timeout: float = 30) -> dict[str, Any]:
    return _wait_final(daemon, [intent_id], timeout=timeout)[intent_id]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def agent_pids(daemon: Daemon) -> Iterator[Callable[[int], int]]:
    """Remember agent pids the test saw; after it, stop the daemon (which stops its agents)
    and SIGKILL any of them that is somehow still there, so no test leaves a process behind."""
    seen: dict[int, bytes] = {}

    def remember(pid: int) -> int:
        seen[pid] = _cmdline(pid)
        return pid

    try:
        yield remember
    finally:
        daemon.stop()
        for pid, cmdline in seen.items():
            if cmdline and alive(pid) and _cmdline(pid) == cmdline:
                os.kill(pid, signal.SIGKILL)


def toml_agent(address: str, command: list[str], **settings: Any) -> str:
    """An `[agents."ADDRESS"]` table; values in JSON syntax, which TOML shares for these."""
    lines = [f"[agents.{json.dumps(address)}]", f"command = {json.dumps(command)}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def make_project(root: Path) -> tuple[Path, Path]:
    """A project directory with a one-step agent at agents/x.py; returns (dir, axme.toml)."""
    project = root / "proj"
    (project / "agents").mkdir(parents=True)
    shutil.copy(AGENTS / "echo_agent.py", project / "agents" / "x.py")
    return project.resolve(), project.resolve() / "axme.toml"


# -- 1. a project's axme.toml, applied by whatever axme command runs there --------------------


def test_project_agents_are_applied_from_axme_toml(
    daemon: Daemon, tmp_path: Path, agent_pids: Callable[[int], int]
) -> None:
    home = daemon.home
    project, config = make_project(tmp_path)
    address = "agent://t/proj/x"
    config.write_text(toml_agent(address, [PY, "agents/x.py"]))

    sent = ok(
        cli(
            home,
            *("send", ECHO, "--to", address, "--payload", '{"n": 1}'),
            *("--wait", "--timeout", "30s", "--json"),
            cwd=project,
        )
    )
    done = json.loads(sent.stdout)
    assert done["status"] == "COMPLETED"
    assert done["result"] == {"echo": {"n": 1}, "attempt": 1, "has_secret": False}
    assert f"applied {config}" in sent.stderr
    first_pid = agent_pids(wait_running(daemon, address))

    # Same file: the daemon has it already, nothing is applied (or restarted) again.
    again = ok(
        cli(
            home,
            *("send", ECHO, "--to", address, "--payload", '{"n": 2}'),
            *("--wait", "--timeout", "30s", "--json"),
            cwd=project,
        )
    )
    assert json.loads(again.stdout)["result"]["echo"] == {"n": 2}
    assert "applied" not in again.stderr
    with daemon.client() as client:
        assert running_pids(client, address) == [first_pid]

    # An edit is applied by the next command run in the project, whatever it is.
    config.write_text(toml_agent(address, [PY, "agents/x.py"], concurrency=2))
    listed = ok(cli(home, "agents", "list", "--json", cwd=project))
    assert f"applied {config}" in listed.stderr
    [agent] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert agent["address"] == address
    assert agent["concurrency"] == 2
    agent_pids(wait_running(daemon, address, other_than=first_pid))  # restarted with the spec
    assert "applied" not in ok(cli(home, "agents", "list", cwd=project)).stderr

    # Taking the agent out of axme.toml takes it out of the daemon.
    with daemon.client() as client:
        pid = running_pids(client, address)[0]
    config.write_text("# no agents here any more\n")
    listed = ok(cli(home, "agents", "list", cwd=project))
    assert f"applied {config}" in listed.stderr
    assert "t/proj/x" not in listed.stdout
    assert agents_json(home, project) == []
    wait_for(lambda: not alive(pid), timeout=10, what="the removed agent's process to exit")


# -- 2. axme agents add | list | logs | restart | remove --------------------------------------


def test_agents_commands(daemon: Daemon, tmp_path: Path, agent_pids: Callable[[int], int]) -> None:
    home = daemon.home
    address = "agent://t/dev/echo"
    script = str(AGENTS / "echo_agent.py")

    added = ok(
        cli(
            home,
            "agents",
            "add",
            address,
            "--env",
            "SECRET=hunter2",
            "--",
            PY,
            script,
            cwd=tmp_path,
        )
    )
    assert f"added {address} (RUNNING)" in added.stdout  # add waits until it runs
    pid = agent_pids(wait_running(daemon, address))

    listed = ok(cli(home, "agents", "list", cwd=tmp_path)).stdout
    assert "t/dev/echo" in listed
    assert "RUNNING" in listed
    assert str(pid) in listed

    as_json = ok(cli(home, "agents", "list", "--json", cwd=tmp_path)).stdout
    [agent] = [json.loads(line) for line in as_json.splitlines()]
    assert agent["address"] == address
    assert agent["state"] == "RUNNING"
    assert [r["pid"] for r in agent["replicas"]] == [pid]
    assert [r["restarts"] for r in agent["replicas"]] == [0]
    assert agent["in_flight"] == 0
    assert agent["env_keys"] == ["SECRET"]
    assert agent["command"] == [PY, script]
    assert "env" not in agent

    # The process got its secret (it says so without printing it).
    with daemon.client() as client:
        intent_id = send(client, address, ECHO, {"hello": "world"})
    assert wait_final(daemon, intent_id)["result"]["has_secret"] is True

    logs = ok(cli(home, "agents", "logs", "echo", "-n", "20", cwd=tmp_path)).stdout
    assert f"echo agent starting (pid {pid})" in logs

    restarted = ok(cli(home, "agents", "restart", "echo", cwd=tmp_path))
    assert f"restarted {address}" in restarted.stdout
    new_pid = agent_pids(wait_running(daemon, address, other_than=pid))
    assert new_pid != pid
    assert not alive(pid)
    logs = ok(cli(home, "agents", "logs", "echo", "-n", "20", cwd=tmp_path)).stdout
    assert f"echo agent starting (pid {new_pid})" in logs

    # The secret's value is nowhere a user (or a log collector) could read it.
    with daemon.client() as client:
        log_path = Path(agent_status(client, address)["log_path"])
    shown = {
        "agents list --json": ok(cli(home, "agents", "list", "--json", cwd=tmp_path)).stdout,
        "agents list": ok(cli(home, "agents", "list", cwd=tmp_path)).stdout,
        "agents add": added.stdout + added.stderr,
        "the agent's log": log_path.read_text(),
        "the daemon log": daemon.log(),
    }
    for where, text in shown.items():
        assert text, f"{where} is empty"
        assert "hunter2" not in text, f"the secret shows in {where}"

    removed = ok(cli(home, "agents", "remove", "echo", cwd=tmp_path))
    assert f"removed {address}" in removed.stdout
    wait_for(lambda: not alive(new_pid), timeout=10, what="the removed agent's process to exit")
    assert agents_json(home, tmp_path) == []
    assert "hunter2" not in log_path.read_text() + daemon.log()

    # Unknown names: not found.
    for args in (("restart", "echo"), ("remove", "nosuch"), ("logs", "nosuch")):
        result = cli(home, "agents", *args, cwd=tmp_path)
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        assert args[1] in error_line(result)
    result = cli(home, "agents", "remove", "agent://t/dev/nosuch", cwd=tmp_path)
    assert result.returncode == 3, result.stderr

    # Bad input: exit 2, a message naming the problem, nothing registered.
    missing = cli(
        home, "agents", "add", "agent://t/dev/ghost", "--", "axme-no-such-program", cwd=tmp_path
    )
    assert missing.returncode == 2, missing.stderr
    assert "axme-no-such-program" in error_line(missing)
    missing_file = cli(
        home, "agents", "add", "agent://t/dev/ghost", "--", "./nowhere.py", cwd=tmp_path
    )
    assert missing_file.returncode == 2, missing_file.stderr
    assert "./nowhere.py" in error_line(missing_file)
    replicas = cli(
        home,
        "agents",
        "add",
        "agent://t/dev/ghost",
        "--replicas",
        "0",
        "--",
        PY,
        script,
        cwd=tmp_path,
    )
    assert replicas.returncode == 2, replicas.stderr
    assert "--replicas" in error_line(replicas)
    env = cli(
        home,
        "agents",
        "add",
        "agent://t/dev/ghost",
        "--env",
        "NOEQUALS",
        "--",
        PY,
        script,
        cwd=tmp_path,
    )
    assert env.returncode == 2, env.stderr
    assert "--env" in error_line(env)
    assert registered(daemon) == []


# -- 3. a broken axme.toml is refused by the CLI, before the daemon sees it --------------------


def test_bad_axme_toml_is_refused_and_changes_nothing(
    daemon: Daemon, tmp_path: Path, agent_pids: Callable[[int], int]
) -> None:
    home = daemon.home
    project, config = make_project(tmp_path)
    address = "agent://t/proj/x"
    good = toml_agent(address, [PY, "agents/x.py"], concurrency=2)
    config.write_text(good)
    assert f"applied {config}" in ok(cli(home, "agents", "list", cwd=project)).stderr
    agent_pids(wait_running(daemon, address))

    def registry() -> list[tuple[Any, ...]]:
        with daemon.client() as client:
            return [
                (
                    a["address"],
                    a["command"],
                    a["cwd"],
                    a["concurrency"],
                    a["state"],
                    [r["pid"] for r in a["replicas"]],
                )
                for a in client.get("/v1/agents").json()["agents"]
            ]

    before = registry()
    table = f"[agents.{json.dumps(address)}]\n"
    command = f"command = {json.dumps([PY, 'agents/x.py'])}\n"
    cases = {
        "unknown key": (table + command + "replica = 2\n", ["replica", 'did you mean "replicas"']),
        "wrong type": (table + command + 'concurrency = "two"\n', ["concurrency", '"two"']),
        "missing command": (table + "concurrency = 2\n", [".command", "required"]),
        "syntax error": (table + command + "concurrency = \n", ["not valid TOML", "line 3"]),
    }
    for case, (text, expected) in cases.items():
        config.write_text(text)
        # `send` needs the project: it fails. `agents list` does not: it warns and goes on.
        for args, needs in (
            (("send", ECHO, "--to", address), True),
            (("agents", "list", "--json"), False),
        ):
            result = cli(home, *args, cwd=project)
            if needs:
                assert result.returncode == 2, (case, args, result.stdout, result.stderr)
                assert result.stdout == "", (case, args)
                line = error_line(result)
            else:
                assert result.returncode == 0, (case, args, result.stderr)
                assert [a["address"] for a in map(json.loads, result.stdout.splitlines())] == [
                    address
                ]
                (line,) = result.stderr.splitlines()
                assert line.startswith("warning: ") and line.endswith(
                    "going on without it (--no-config or AXME_NO_CONFIG=1 skips it)"
                ), line
            assert "axme.toml" in line, (case, line)
            if case != "syntax error":
                assert f"agents.{json.dumps(address)}" in line, (case, line)
            for part in expected:
                assert part in line, (case, part, line)
            assert registry() == before, case

    with daemon.client() as client:
        assert client.get("/v1/intents").json()["intents"] == []  # nothing was sent either
    # The good file is still the one the daemon applied: putting it back applies nothing.
    config.write_text(good)
    assert "applied" not in ok(cli(home, "agents", "list", cwd=project)).stderr
    assert registry() == before


# -- 4. an agent that cannot start ends FATAL, and its intents say so ---------------------------


def test_crash_looping_agent_goes_fatal_and_intents_say_why(
    daemon: Daemon, tmp_path: Path, agent_pids: Callable[[int], int]
) -> None:
    home = daemon.home
    address = "agent://t/dev/doomed"
    spec = {
        "address": address,
        "command": [PY, "-c", "import sys; sys.exit(3)"],
        "cwd": str(tmp_path),
        "start_retries": 2,
        "start_seconds": 1,
    }
    with daemon.client() as client:
        response = client.post("/v1/agents", json=spec)
        assert response.status_code == 200, response.text

    def fatal() -> dict[str, Any] | None:
        [agent] = agents_json(home, tmp_path)
        return agent if agent["state"] == "FATAL" else None

    agent = wait_for(fatal, timeout=20, interval=0.1, what="the agent to be FATAL")
    [replica] = agent["replicas"]
    assert replica["pid"] is None
    assert replica["last_exit"]["returncode"] == 3

    listed = words(ok(cli(home, "agents", "list", cwd=tmp_path)).stdout)
    assert "t/dev/doomed" in listed
    assert "FATAL" in listed
    assert "exited with code 3" in listed

    intent_id = ok(cli(home, "send", ECHO, "--to", address, cwd=tmp_path)).stdout.strip()
    shown = words(ok(cli(home, "show", intent_id, cwd=tmp_path)).stdout)
    assert "SUBMITTED" in shown
    assert f"agent {address} is FATAL" in shown
    assert "exited with code 3" in shown
    assert f"axme agents restart {address}" in shown
    data = json.loads(ok(cli(home, "show", intent_id, "--json", cwd=tmp_path)).stdout)
    assert data["intent"]["status"] == "SUBMITTED"
    assert data["intent"]["delivery_attempt"] == 0
    assert "FATAL" in data["intent"]["pending_reason"]
    assert f"axme agents restart {address}" in data["intent"]["pending_reason"]


# -- 5. an agent that dies on a delivery: the intent FAILS; fix, restart, retry ------------------


def test_agent_crashing_on_delivery_fails_the_intent_until_fixed_and_retried(
    daemon: Daemon, tmp_path: Path, agent_pids: Callable[[int], int]
) -> None:
    home = daemon.home
    address = "agent://t/dev/crashy"
    workdir = tmp_path / "crashy"
    workdir.mkdir()
    (workdir / "mode").write_text("crash\n")
    ok(
        cli(
            home,
            *("agents", "add", address, "--max-delivery-attempts", "3", "--cwd", str(workdir)),
            *("--", PY, str(AGENTS / "crashy_agent.py")),
            cwd=tmp_path,
        )
    )
    agent_pids(wait_running(daemon, address))

    intent_id = ok(cli(home, "send", "intent.test.crashy.v1", "--to", address, cwd=tmp_path))
    intent_id = intent_id.stdout.strip()
    waited = cli(home, "wait", intent_id, "--timeout", "60s", cwd=tmp_path)
    assert waited.returncode == 6, (waited.stdout, waited.stderr)
    assert "FAILED" in waited.stdout

    data = json.loads(ok(cli(home, "show", intent_id, "--json", cwd=tmp_path)).stdout)
    assert data["intent"]["status"] == "FAILED"
    assert data["intent"]["delivery_attempt"] == 3
    timeline = data["events"]
    delivered = [e for e in timeline if e["event_type"] == "intent.delivered"]
    assert [e["details"]["delivery_attempt"] for e in delivered] == [1, 2, 3]
    [gave_up] = [e for e in timeline if e["event_type"] == "intent.delivery_failed"]
    assert gave_up["status"] == "FAILED"
    assert gave_up["details"]["delivery_attempt"] == 3
    assert "gave up after 3 delivery attempts" in gave_up["details"]["error"]["message"]
    assert "exited with code 1" in gave_up["details"]["reason"]
    assert "gave up after 3 delivery attempts" in data["intent"]["error"]["message"]

    # The fix: the agent reads its mode at start, so it takes a restart to pick it up.
    (workdir / "mode").write_text("ok\n")
    ok(cli(home, "agents", "restart", "crashy", cwd=tmp_path))
    retried = ok(cli(home, "retry", intent_id, cwd=tmp_path))
    assert "SUBMITTED" in retried.stdout
    finished = ok(cli(home, "wait", intent_id, "--timeout", "30s", "--json", cwd=tmp_path))
    done = json.loads(finished.stdout)
    assert done["status"] == "COMPLETED"
    assert done["result"] == {"fixed": True, "attempt": 1}

    again = cli(home, "retry", intent_id, cwd=tmp_path)
    assert again.returncode == 4, (again.stdout, again.stderr)
    assert "COMPLETED" in error_line(again)


# -- 6. handlers that go wrong -------------------------------------------------------------------


def test_handler_mistakes_fail_or_retry_as_documented(
    daemon: Daemon, tmp_path: Path, agent_pids: Callable[[int], int]
) -> None:
    address = "agent://t/dev/handlers"
    with daemon.client() as client:
        # Four at a time: each intent's fate is its own, even if another one wedges the agent.
        add_agent(client, address, "handlers_agent.py", tmp_path, concurrency=4)
        agent_pids(wait_running(daemon, address))
        ids = {
            kind: send(client, address, f"intent.test.{kind}.v1", {"row": 7})
            for kind in ("set", "nope", "flaky", "boom")
        }
        final = _wait_final(daemon, list(ids.values()), timeout=45)

        def deliveries(kind: str) -> list[int]:
            return [
                e["details"]["delivery_attempt"]
                for e in events(client, ids[kind])
                if e["event_type"] == "intent.delivered"
            ]

        # A step result JSON cannot hold: a bug in the handler, so not retried.
        not_json = final[ids["set"]]
        assert not_json["status"] == "FAILED"
        assert deliveries("set") == [1]
        assert not_json["error"]["type"] == "StepResultNotJSON"
        assert "JSON" in not_json["error"]["message"]
        assert "'collect'" in not_json["error"]["message"]
        assert "set" in not_json["error"]["message"]

        # A type the agent has no handler for.
        unknown = final[ids["nope"]]
        assert unknown["status"] == "FAILED"
        assert deliveries("nope") == [1]
        message = unknown["error"]["message"]
        assert "intent.test.nope.v1" in message
        for handled in ("intent.test.boom.v1", "intent.test.flaky.v1", "intent.test.set.v1"):
            assert handled in message

        # RetryableError: delivered again, and the second attempt completes it.
        flaky = final[ids["flaky"]]
        assert flaky["status"] == "COMPLETED"
        assert flaky["delivery_attempt"] == 2
        assert flaky["result"] == {"ok": True, "attempt": 2}
        assert deliveries("flaky") == [1, 2]
        [_, again] = [
            e for e in events(client, ids["flaky"]) if e["event_type"] == "intent.delivered"
        ]
        assert "the upstream is not ready yet" in again["details"]["reason"]

        # Any other exception fails the intent at once, with its type and message.
        boom = final[ids["boom"]]
        assert boom["status"] == "FAILED"
        assert boom["delivery_attempt"] == 1
        assert deliveries("boom") == [1]
        assert boom["error"]["type"] == "ValueError"
        assert boom["error"]["message"] == "bad row 7"
    waited = cli(daemon.home, "wait", ids["boom"], cwd=tmp_path)
    assert waited.returncode == 6, waited.stderr
    assert "bad row 7" in waited.stdout


# -- 7. an intent nobody serves waits, and says why ----------------------------------------------


def test_intent_for_an_unregistered_agent_waits_and_says_how_to_add_one(
    daemon: Daemon, tmp_path: Path, agent_pids: Callable[[int], int]
) -> None:
    home = daemon.home
    nobody = "agent://t/dev/nobody"
    with daemon.client() as client:
        add_agent(client, "agent://t/dev/echo", "echo_agent.py", tmp_path)
    agent_pids(wait_running(daemon, "agent://t/dev/echo"))

    waiting = ok(cli(home, "send", ECHO, "--to", nobody, cwd=tmp_path)).stdout.strip()
    # Something else goes all the way through meanwhile...
    ok(
        cli(
            home,
            *("send", ECHO, "--to", "agent://t/dev/echo", "--payload", '{"n": 1}'),
            *("--wait", "--timeout", "30s"),
            cwd=tmp_path,
        )
    )
    # ...and the intent for nobody is still waiting, saying for what.
    data = json.loads(ok(cli(home, "show", waiting, "--json", cwd=tmp_path)).stdout)
    assert data["intent"]["status"] == "SUBMITTED"
    assert data["intent"]["delivery_attempt"] == 0
    assert [e["event_type"] for e in data["events"]] == ["intent.created", "intent.submitted"]
    shown = words(ok(cli(home, "show", waiting, cwd=tmp_path)).stdout)
    assert "SUBMITTED" in shown
    assert f"no agent is registered at {nobody}" in shown
    assert f"axme agents add {nobody}" in shown


# -- 8. an agent written with the official AXME SDK ------------------------------------------


def test_axme_sdk_agent_is_supervised_and_redelivered_after_sigkill(
    daemon: Daemon, tmp_path: Path, agent_pids: Callable[[int], int]
) -> None:
    address = "agent://t/dev/sdk"
    with daemon.client() as client:
        add_agent(client, address, "axme_sdk_agent.py", tmp_path)
        pid = agent_pids(wait_running(daemon, address))
        log_path = Path(agent_status(client, address)["log_path"])

        first = send(client, address, ECHO, {"n": 1})
        done = wait_final(daemon, first)
        assert done["status"] == "COMPLETED", done
        assert done["result"] == {"echo": {"n": 1}}

        second = send(client, address, ECHO, {"hang": True})
        wait_for(
            lambda: log_path.exists() and f"hanging on {second}" in log_path.read_text(),
            timeout=20,
            what="the agent to hang in its first delivery",
        )
        assert intent(client, second)["delivery_attempt"] == 1
        os.kill(pid, signal.SIGKILL)
        done = wait_final(daemon, second)
        assert done["status"] == "COMPLETED", done
        assert done["delivery_attempt"] == 2
        assert done["result"] == {"echo": {"hang": True}}
        delivered = [e for e in events(client, second) if e["event_type"] == "intent.delivered"]
        assert [e["details"]["delivery_attempt"] for e in delivered] == [1, 2]
        assert "killed by SIGKILL" in delivered[1]["details"]["reason"]
        agent_pids(wait_running(daemon, address, other_than=pid))

    # The TCP listener the SDK agent used does not answer without a key it handed out.
    tcp = daemon.health()["tcp"]
    assert tcp and tcp.startswith("http://127.0.0.1:")
    for headers, message in (
        ({}, "an API key is required (x-api-key header)"),
        ({"x-api-key": os.urandom(16).hex()}, "unknown API key"),
    ):
        response = httpx.get(f"{tcp}/health", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json() == {
            "error": {"code": "invalid_platform_api_key", "message": message, "details": {}},
            "detail": message,
        }
