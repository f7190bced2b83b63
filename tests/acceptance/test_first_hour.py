"""Sharp edges a new user meets in the first hour: one rule for agent addresses, removing a
declared agent, and the small things (empty keys, statuses, messages, exit codes, help)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from axme_cli.errors import EXIT_CONFLICT
from tests.agents import add_agent, events, intent, send
from tests.daemon import REPO, Daemon, env_for, run_cli, wait_for

AGENTS = REPO / "tests" / "acceptance" / "agents"
ECHO = "intent.test.echo.v1"


def one_error_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


# -- 6. one rule for an agent's address -----------------------------------------------------------


def test_agents_add_and_axme_toml_take_the_same_addresses(cli_home: Path, tmp_path: Path) -> None:
    (tmp_path / "axme.toml").write_text('[agents."bad-address"]\ncommand = ["python"]\n')
    config = str(tmp_path / "axme.toml")
    declared = one_error_line(
        run_cli(cli_home, "--config", config, "send", "t.v1", "--to", "agent://a/b")
    )
    added = one_error_line(run_cli(cli_home, "agents", "add", "bad-address", "--", "python"))
    reason = (
        'not an agent address (expected agent://org/env/name); did you mean "agent://bad-address"?'
    )
    assert declared.endswith(f'agents."bad-address": {reason}'), declared
    assert added == f'error: "bad-address": {reason}', added
    assert not (cli_home / "run" / "axme.sock").exists(), "a refused add reached the daemon"


# -- 4. removing an agent that axme.toml declares ---------------------------------------------


def axme(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`axme ARGS` run in the project directory `cwd`, on a terminal wide enough to keep
    paths whole."""
    return run_cli(home, *args, cwd=cwd, env={"COLUMNS": "500"})


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return " ".join(result.stdout.split())  # words, whatever the terminal width wrapped


def test_a_removed_declared_agent_says_so_and_what_brings_it_back(
    cli_home: Path, tmp_path: Path
) -> None:
    address = "agent://t/dev/echo"
    config = tmp_path / "axme.toml"
    config.write_text(f'[agents."{address}"]\ncommand = ["python", "{AGENTS / "echo_agent.py"}"]\n')
    ok(axme(cli_home, "agents", "list", cwd=tmp_path))  # applies the file

    removed = ok(axme(cli_home, "agents", "remove", "echo", cwd=tmp_path))
    assert removed == (
        f"removed {address}; it is declared in {config}, so it stays removed until that file"
        f" changes or: axme agents restart {address}"
    )
    # Applying the same file again does not bring it back...
    intent = ok(axme(cli_home, "send", ECHO, "--to", address, cwd=tmp_path))
    listed = ok(axme(cli_home, "agents", "list", cwd=tmp_path))
    assert "t/dev/echo" not in listed, listed
    # ...and `show` says why it waits, truly: it is declared, and removed.
    shown = ok(axme(cli_home, "show", intent, cwd=tmp_path))
    assert f"agent {address} is declared in {config} but was removed" in shown, shown
    assert f"axme agents restart {address}" in shown
    assert "declare it in" not in shown

    restarted = ok(axme(cli_home, "agents", "restart", address, cwd=tmp_path))
    assert restarted == f"restarted {address} (RUNNING)"
    ok(axme(cli_home, "wait", intent, "--timeout", "30s", cwd=tmp_path))
    # A restart prints the state it settled in, not the STOPPED it passed through.
    assert ok(axme(cli_home, "agents", "restart", "echo", cwd=tmp_path)) == (
        f"restarted {address} (RUNNING)"
    )

    # Removed again, a change to the file brings it back.
    ok(axme(cli_home, "agents", "remove", address, cwd=tmp_path))
    config.write_text(config.read_text() + "concurrency = 2\n")
    assert "t/dev/echo" in ok(axme(cli_home, "agents", "list", cwd=tmp_path))


def test_an_agent_added_by_hand_is_just_removed(cli_home: Path, tmp_path: Path) -> None:
    address = "agent://t/dev/echo"
    script = str(AGENTS / "echo_agent.py")
    ok(axme(cli_home, "agents", "add", address, "--", "python", script, cwd=tmp_path))
    assert ok(axme(cli_home, "agents", "remove", "echo", cwd=tmp_path)) == f"removed {address}"
    intent = ok(axme(cli_home, "send", ECHO, "--to", address, cwd=tmp_path))
    shown = ok(axme(cli_home, "show", intent, cwd=tmp_path))
    assert f"no agent is registered at {address}" in shown


# -- 8. small things ------------------------------------------------------------------------


def test_an_empty_idempotency_key_is_refused(cli_home: Path) -> None:
    for wait in ([], ["--wait"]):  # the quick path of a plain send, and the full CLI
        for key in ("", " "):
            line = one_error_line(
                run_cli(cli_home, "send", ECHO, "--to", "agent://t/dev/echo", "-k", key, *wait)
            )
            assert line == (
                "error: --idempotency-key: must not be empty (leave it out to send without a key)"
            )
    assert not (cli_home / "run" / "axme.sock").exists(), "a refused send reached the daemon"


def test_daemon_start_in_the_foreground_fails_when_one_runs(daemon: Daemon) -> None:
    line = one_error_line(run_cli(daemon.home, "daemon", "start", "-f"), code=EXIT_CONFLICT)
    pid = daemon.health()["pid"]
    assert line.startswith(f"error: the axme daemon is already running (pid {pid}, socket "), line
    assert line.endswith("; stop it first: axme daemon stop"), line


def test_an_intent_is_in_progress_while_its_first_step_runs(daemon: Daemon, tmp_path: Path) -> None:
    address = "agent://t/dev/steps"
    log = tmp_path / "steps.log"
    with daemon.client() as client:
        add_agent(client, address, "steps_agent.py", tmp_path, env={"STEP_LOG": str(log)})
        intent_id = send(client, address, "intent.test.steps.v1", {"block_at": 1})  # hangs
        wait_for(lambda: log.exists() and '"event": "start"' in log.read_text(), what="step 1")
        wait_for(
            lambda: intent(client, intent_id)["status"] == "IN_PROGRESS",
            timeout=5,
            what="IN_PROGRESS while the first step runs",
        )
        timeline = [e["event_type"] for e in events(client, intent_id)]
        assert timeline[-2:] == ["intent.delivered", "intent.in_progress"], timeline


def test_the_signal_hint_names_the_signal_waited_for(daemon: Daemon, tmp_path: Path) -> None:
    address = "agent://t/dev/waiting"
    env = {"STEP_LOG": str(tmp_path / "steps.log")}
    with daemon.client() as client:
        add_agent(client, address, "waiting_agent.py", tmp_path, env=env)
        intent_id = send(client, address, "intent.test.signal.v1", {})
        wait_for(
            lambda: intent(client, intent_id)["waiting_reason"] == "WAITING_FOR_TOOL",
            timeout=20,
            what="the signal wait",
        )
        reason = intent(client, intent_id)["pending_reason"]
    assert reason == f"waiting for signal go (axme signal {intent_id[:8]} go)"
    shown = ok(run_cli(daemon.home, "show", intent_id))
    assert f"axme signal {intent_id[:8]} go" in shown


def complete(home: Path, tmp_path: Path, words: str) -> list[str]:
    """What bash's Tab offers after `words` (the last word is the one being completed)."""
    launcher = tmp_path / "axme"  # argv[0] == "axme": Typer reads _AXME_COMPLETE then
    launcher.write_text(
        f"#!{sys.executable}\nimport sys\nfrom axme_cli.main import main\nsys.exit(main())\n"
    )
    launcher.chmod(0o755)
    env = env_for(home)
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env.update(COMP_WORDS=words, COMP_CWORD=str(cword), _AXME_COMPLETE="complete_bash")
    result = subprocess.run(
        [str(launcher)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0 and result.stderr == "", result
    return result.stdout.split()


def test_tab_offers_statuses_and_intent_ids(cli_home: Path, tmp_path: Path) -> None:
    assert complete(cli_home, tmp_path, "axme list --status F") == ["FAILED"]
    assert complete(cli_home, tmp_path, "axme list -s C") == ["CREATED", "COMPLETED", "CANCELED"]
    # No daemon: nothing offered, none started.
    assert complete(cli_home, tmp_path, "axme show ") == []
    assert not (cli_home / "run" / "axme.sock").exists()

    sent = [ok(run_cli(cli_home, "send", ECHO, "--to", "agent://t/dev/nobody")) for _ in "ab"]
    assert sorted(complete(cli_home, tmp_path, "axme show ")) == sorted(sent)
    assert complete(cli_home, tmp_path, f"axme wait {sent[0][:6]}") == [sent[0]]
    assert complete(cli_home, tmp_path, "axme show zz") == []


def test_a_usage_error_is_one_line_like_every_other_error(cli_home: Path) -> None:
    cases = [
        (["send"], "error: axme send: missing argument 'INTENT_TYPE' (see: axme send --help)"),
        (["send", "t.v1"], "error: axme send: missing option '--to' (see: axme send --help)"),
        (["list", "--bogus"], "error: axme list: no such option: --bogus (see: axme list --help)"),
        (["frobnicate"], "error: axme: no such command 'frobnicate' (see: axme --help)"),
    ]
    for args, expected in cases:
        assert one_error_line(run_cli(cli_home, *args)) == expected
    assert "Usage: axme agents" in run_cli(cli_home, "agents").stderr  # a group alone: its help


def test_help_names_option_values_by_what_they_are(cli_home: Path) -> None:
    import re

    for command in (["send"], ["list"], ["agents", "add"], ["task", "submit"], ["keys", "create"]):
        shown = ok(run_cli(cli_home, *command, "--help"))
        options = shown.partition("Options:")[2]
        assert not re.search(r"<[a-z]", options), f"{command}: {options}"
    send = ok(run_cli(cli_home, "send", "--help"))
    assert "--to ADDRESS" in send and "-k, --idempotency-key KEY" in send
    assert "--env NAME[=VALUE]" in ok(run_cli(cli_home, "agents", "add", "--help"))


# -- 1. a command's program is the one of the axme that applied the file -------------------------


def test_activating_another_venv_then_restart_runs_its_program(
    cli_home: Path, tmp_path: Path
) -> None:
    """A program found on PATH (not `python`): after a venv that has its own is activated,
    `axme agents restart` applies the file again and the agent runs the venv's program."""
    address = "agent://t/dev/tool"
    project = tmp_path / "project"
    project.mkdir()
    (project / "axme.toml").write_text(f'[agents."{address}"]\ncommand = ["echo-agent"]\n')
    started = tmp_path / "started"  # each program appends its name when it starts
    bins = []
    for name in ("system", "venv"):
        bin_dir = tmp_path / name / "bin"
        bin_dir.mkdir(parents=True)
        tool = bin_dir / "echo-agent"
        agent = AGENTS / "echo_agent.py"
        tool.write_text(
            f"#!{sys.executable}\n"
            f"open({str(started)!r}, 'a').write({name!r} + '\\n')\n"
            f"exec(compile(open({str(agent)!r}).read(), {str(agent)!r}, 'exec'))\n"
        )
        tool.chmod(0o755)
        bins.append(bin_dir)
    system, venv = bins

    def axme_with(path: Path, *args: str) -> str:
        env = {"PATH": f"{path}{os.pathsep}{os.environ['PATH']}"}
        return ok(run_cli(cli_home, *args, cwd=project, env=env))

    def ran() -> list[str]:
        return started.read_text().split() if started.exists() else []

    axme_with(system, "agents", "list")  # applies the file: the daemon starts with this PATH
    wait_for(lambda: ran() == ["system"], what="the system's program")
    assert "(RUNNING)" in axme_with(venv, "agents", "restart", "tool")  # a venv activated
    wait_for(lambda: ran()[1:] and set(ran()[1:]) == {"venv"}, what="the venv's program")
