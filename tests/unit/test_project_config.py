"""`axme.toml`: discovery, validation messages that point at the problem, and secrets kept out."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from axme_cli.errors import EXIT_BAD_INPUT, BadInput
from axme_cli.project import (
    AgentConfig,
    ConfigError,
    ProjectConfig,
    agent_from_args,
    find_config,
    load_config,
)

SECRET = "hunter2-Sup3rSecret-7f3a"
ADDR = "agent://myorg/production/data-pipeline"
HEAD = f'[agents."{ADDR}"]\n'
KEY = f'agents."{ADDR}"'


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir with a `python` on a PATH of our own, so lookups do not depend on the host."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "node"):
        _executable(bin_dir / name)
    monkeypatch.setenv("PATH", str(bin_dir))
    proj = tmp_path / "proj"
    (proj / "agents").mkdir(parents=True)
    (proj / "agents" / "pipeline.py").write_text("print('hi')\n")
    return proj


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def _write(project: Path, text: str) -> Path:
    path = project / "axme.toml"
    path.write_text(text)
    return path


def _error(project: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(_write(project, text))
    message = info.value.message
    assert "axme.toml" in message
    assert "\n" not in message  # the CLI prints errors as one line
    return message


# -- discovery ------------------------------------------------------------------------------------


def test_find_config_from_a_nested_subdirectory(project: Path) -> None:
    config = _write(project, "")
    nested = project / "agents" / "deep" / "er"
    nested.mkdir(parents=True)
    assert find_config(nested) == config
    assert find_config(project) == config
    assert find_config(project / "agents" / "pipeline.py") == config  # a file starts at its dir


def test_find_config_prefers_the_nearest(project: Path) -> None:
    _write(project, "")
    inner = _write(project / "agents", "")
    assert find_config(project / "agents") == inner


def test_find_config_none_found(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (tmp_path / "a" / "axme.toml").mkdir()  # a directory of that name is not a config file
    assert find_config(nested) is None


# -- valid files ----------------------------------------------------------------------------------

FULL = f"""\
[agents."{ADDR}"]
command = ["python", "agents/pipeline.py"]   # argv list
replicas = 2
concurrency = 4
max_delivery_attempts = 5
env = {{ API_TOKEN = "{SECRET}" }}
cwd = "."
start_seconds = 2
start_retries = 7
stop_grace_seconds = 0.5

[agents."agent://myorg/production/mailer"]
command = "node agents/mailer.js --queue 'high priority'"
cwd = "agents"
"""


def test_full_file_round_trips_to_wire(project: Path) -> None:
    config = load_config(_write(project, FULL))
    assert isinstance(config, ProjectConfig)
    assert config.path == project / "axme.toml"
    assert config.project_dir == project
    assert config.to_wire() == {
        "config_path": str(project / "axme.toml"),
        "project_dir": str(project),
        "digest": config.digest,
        "agents": [
            {
                "address": ADDR,
                "command": ["python", "agents/pipeline.py"],
                "cwd": str(project),
                "env": {"API_TOKEN": SECRET},
                "replicas": 2,
                "concurrency": 4,
                "max_delivery_attempts": 5,
                "start_seconds": 2.0,
                "start_retries": 7,
                "stop_grace_seconds": 0.5,
                "executable": sys.executable,  # `python` is axme's own
            },
            {
                "address": "agent://myorg/production/mailer",
                "command": ["node", "agents/mailer.js", "--queue", "high priority"],
                "cwd": str(project / "agents"),
                "env": {},
                "replicas": 1,
                "concurrency": 1,
                "max_delivery_attempts": 3,
                "start_seconds": 1.0,
                "start_retries": 3,
                "stop_grace_seconds": 5.0,
                "executable": str(project.parent / "bin" / "node"),  # found on the user's PATH
            },
        ],
        "hooks": [],
    }
    first = config.agents[0]
    assert first.command == ("python", "agents/pipeline.py")  # a tuple, the wire has a list
    assert isinstance(first.start_seconds, float)
    assert hash(first)  # frozen and hashable despite the env dict


def test_string_command_is_split_like_a_shell(project: Path) -> None:
    config = load_config(_write(project, HEAD + "command = 'python -u \"my script.py\" --x=1'\n"))
    assert config.agents[0].command == ("python", "-u", "my script.py", "--x=1")


@pytest.mark.parametrize("text", ["", "[agents]\n", "# only a comment\n"])
def test_no_agents_is_valid(project: Path, text: str) -> None:
    assert load_config(_write(project, text)).agents == ()


def test_relative_path_program_resolves_against_the_agents_cwd(project: Path) -> None:
    _executable(project / "agents" / "run.sh")
    text = HEAD + 'command = ["agents/run.sh"]\n'
    text += '[agents."agent://x/y"]\ncommand = ["./run.sh"]\ncwd = "agents"\n'
    text += f'[agents."agent://x/abs"]\ncommand = ["{project}/agents/run.sh"]\n'
    agents = load_config(_write(project, text)).agents
    assert [a.command[0] for a in agents] == [
        "agents/run.sh",
        "./run.sh",
        f"{project}/agents/run.sh",
    ]
    assert agents[1].cwd == str(project / "agents")


def test_cwd_outside_the_project_and_from_env_path(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    _executable(other / "tool")
    text = HEAD + f'command = ["tool"]\ncwd = "../elsewhere"\nenv = {{ PATH = "{other}" }}\n'
    (agent,) = load_config(_write(project, text)).agents
    assert agent.cwd == str(other)  # normalized, absolute
    assert agent.command == ("tool",)  # found on the agent's own PATH, not ours


def test_load_given_a_relative_path(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(project, HEAD + 'command = ["python"]\n')
    monkeypatch.chdir(project / "agents")
    config = load_config(Path("../axme.toml"))
    assert config.path == project / "axme.toml"
    assert config.agents[0].cwd == str(project)


# -- bad files: each message names the file, the place and what was expected ---------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD + 'command = ["python"]\nreplicas = "two"\n',
            f'{KEY}.replicas: expected a positive integer, got "two"',
        ),
        (HEAD + 'command = ["python"]\nreplicas = 0\n', f"{KEY}.replicas: expected a positive"),
        (HEAD + 'command = ["python"]\nreplicas = 65\n', f"{KEY}.replicas: must be at most 64"),
        (
            HEAD + 'command = ["python"]\nconcurrency = 1025\n',
            f"{KEY}.concurrency: must be at most 1024, got 1025",
        ),
        (
            HEAD + 'command = ["python"]\nmax_delivery_attempts = 101\n',
            f"{KEY}.max_delivery_attempts: must be at most 100",
        ),
        (
            HEAD + 'command = ["python"]\nstart_retries = 1.5\n',
            f"{KEY}.start_retries: expected a positive integer, got 1.5",
        ),
        (
            HEAD + 'command = ["python"]\nstart_seconds = 0\n',
            f"{KEY}.start_seconds: expected a positive number of seconds, got 0",
        ),
        (
            HEAD + 'command = ["python"]\nstop_grace_seconds = "5s"\n',
            f'{KEY}.stop_grace_seconds: expected a positive number of seconds, got "5s"',
        ),
        (
            HEAD + 'command = ["python"]\nstop_grace_seconds = inf\n',
            f"{KEY}.stop_grace_seconds: expected a positive number of seconds, got inf",
        ),
        (
            HEAD + 'command = ["python"]\nreplica = 2\n',
            f'{KEY}: unknown key "replica" (did you mean "replicas"? allowed: command, '
            "concurrency, cwd, env, max_delivery_attempts, replicas, start_retries, "
            "start_seconds, stop_grace_seconds)",
        ),
        (
            f'[agent."{ADDR}"]\ncommand = ["python"]\n',
            'axme.toml: unknown top-level key "agent" (did you mean "agents"? allowed: agents,'
            " hooks)",
        ),
        (
            '[agents.pipeline]\ncommand = ["python"]\n',
            'axme.toml: agents."pipeline": not an agent address (expected agent://org/env/name)',
        ),
        (
            'agents = ["agent://x/y"]\n',
            "axme.toml: agents: expected a table of agents",
        ),
        ('[agents]\n"agent://x/y" = "python"\n', 'agents."agent://x/y": expected a table'),
        (HEAD + "replicas = 2\n", f'{KEY}.command: required (a list like ["python", '),
        (HEAD + "command = []\n", f"{KEY}.command: must not be empty"),
        (HEAD + 'command = ""\n', f"{KEY}.command: must not be empty"),
        (HEAD + "command = 3\n", f"{KEY}.command: expected a list of strings"),
        (HEAD + 'command = ["python", 3]\n', f"{KEY}.command[1]: expected a non-empty string"),
        (HEAD + 'command = ["python", ""]\n', f"{KEY}.command[1]: expected a non-empty string"),
        (
            HEAD + 'command = "python \'unclosed"\n',
            f'{KEY}.command: cannot split "python \'unclosed" into words (no closing quotation)',
        ),
        (
            HEAD + 'command = ["nonexistent-binary", "x"]\n',
            f'{KEY}.command: "nonexistent-binary" not found (not on PATH and not a file'
            " relative to {project})",
        ),
        (
            HEAD + 'command = ["agents/missing.sh"]\n',
            f'{KEY}.command: "agents/missing.sh" not found (no such file relative to {{project}})',
        ),
        (HEAD + 'command = ["./agents"]\n', f'{KEY}.command: "./agents" is not a file'),
        (
            HEAD + 'command = ["agents/pipeline.py"]\n',
            f'{KEY}.command: "agents/pipeline.py" is not executable',
        ),
        (
            HEAD + 'command = ["pipeline.py"]\ncwd = "agents"\n',
            f'{KEY}.command: "pipeline.py" not found on PATH (to run the file in'
            ' {project}/agents, write "./pipeline.py")',
        ),
        (
            HEAD + 'command = ["python"]\ncwd = "nope"\n',
            f"{KEY}.cwd: no such directory: {{project}}/nope",
        ),
        (
            HEAD + 'command = ["python"]\ncwd = "agents/pipeline.py"\n',
            f"{KEY}.cwd: not a directory: {{project}}/agents/pipeline.py",
        ),
        (HEAD + 'command = ["python"]\ncwd = 1\n', f"{KEY}.cwd: expected a directory path, got 1"),
        (
            HEAD + 'command = ["python"]\nenv = { TOKEN = 1 }\n',
            f"{KEY}.env.TOKEN: expected a string",
        ),
        (
            HEAD + 'command = ["python"]\nenv = { "A=B" = "x" }\n',
            f'{KEY}.env."A=B": not a valid environment variable name',
        ),
        (
            HEAD + 'command = ["python"]\nenv = ["A=B"]\n',
            f"{KEY}.env: expected a table of strings",
        ),
        (
            '[agents."agent://x/y"]\ncommand = ["python"]\nreplicas = 1\nreplicas = 2\n',
            "not valid TOML: Cannot overwrite a value (at line 4, column 13)",
        ),
        (
            '# agents\n\n[agents."agent://x/y"]\ncommand ["python"]\n',
            "axme.toml: not valid TOML: Expected '=' after a key in a key/value pair "
            "(at line 4, column 9)",
        ),
    ],
)
def test_bad_files_say_where_and_what(project: Path, text: str, expected: str) -> None:
    assert expected.format(project=project) in _error(project, text)


def test_bools_are_not_integers(project: Path) -> None:
    for key in ("replicas", "concurrency", "max_delivery_attempts", "start_retries"):
        message = _error(project, HEAD + f'command = ["python"]\n{key} = true\n')
        assert f"{KEY}.{key}: expected a positive integer, got true" in message
    message = _error(project, HEAD + 'command = ["python"]\nstart_seconds = true\n')
    assert "start_seconds: expected a positive number of seconds, got true" in message


def test_the_first_bad_agent_is_named(project: Path) -> None:
    text = '[agents."agent://x/good"]\ncommand = ["python"]\n'
    text += '[agents."agent://x/bad"]\ncommand = ["python"]\nreplicas = -1\n'
    assert 'agents."agent://x/bad".replicas:' in _error(project, text)


def test_not_utf8_names_the_line(project: Path) -> None:
    path = project / "axme.toml"
    path.write_bytes(b'[agents."agent://x/y"]\ncommand = ["py\xfftest"]\n')
    with pytest.raises(ConfigError, match=r"axme.toml: not valid TOML: not UTF-8 .*line 2"):
        load_config(path)


def test_missing_file(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"axme\.toml: cannot read"):
        load_config(project / "axme.toml")


def test_config_error_is_bad_input_and_shows_the_path_given(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(project, HEAD + 'command = ["python"]\nreplicas = 0\n')
    with pytest.raises(BadInput) as info:
        load_config(project / "axme.toml")
    assert isinstance(info.value, ConfigError)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert info.value.message.startswith(f"{project}/axme.toml: ")
    monkeypatch.chdir(project)  # under the cwd the path is shown relative to it
    for given in (Path("axme.toml"), project / "axme.toml"):
        with pytest.raises(ConfigError) as info:
            load_config(given)
        assert info.value.message.startswith(f"axme.toml: {KEY}.replicas: ")


# -- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        HEAD + f'command = ["python"]\nreplicas = "two"\nenv = {{ API_TOKEN = "{SECRET}" }}\n',
        HEAD + f'command = ["nonexistent-binary"]\nenv = {{ API_TOKEN = "{SECRET}" }}\n',
        HEAD + f'command = ["python"]\nenv = "API_TOKEN={SECRET}"\n',
        HEAD + f'command = ["python"]\nenv = ["{SECRET}"]\n',
        HEAD + f'command = ["python"]\nenv = {{ API_TOKEN = ["{SECRET}"] }}\n',
        HEAD + f'command = ["python"]\nenv = {{ API_TOKEN = {{ value = "{SECRET}" }} }}\n',
        HEAD + f'command = ["python"]\nenv = {{ API_TOKEN = "{SECRET}\\u0000" }}\n',
        HEAD + f'command = ["python"]\nenv = {{ API_TOKEN = "{SECRET}" \n',
        HEAD + f'command = ["python"]\nenv = {{ API_TOKEN = "{SECRET}" }}\nenvv = 1\n',
        HEAD + f'command = ["python"]\nenv.API_TOKEN = "{SECRET}"\nenv.API_TOKEN = "x"\n',
    ],
)
def test_env_values_never_appear_in_errors(project: Path, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(project, text))
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert SECRET not in str(info.value.details)


def test_env_values_never_appear_in_reprs(project: Path) -> None:
    config = load_config(_write(project, FULL))
    agent = config.agents[0]
    for shown in (repr(config), str(config), repr(agent), str(agent), repr(config.agents)):
        assert SECRET not in shown
    assert "API_TOKEN" in repr(agent)  # the names are not secret; they help debugging
    assert agent.env == {"API_TOKEN": SECRET}  # hidden from reprs, not lost
    assert agent.to_wire()["env"] == {"API_TOKEN": SECRET}


# -- digest ---------------------------------------------------------------------------------------


def test_digest_changes_with_the_bytes_and_only_then(project: Path) -> None:
    path = _write(project, HEAD + 'command = ["python"]\n')
    first = load_config(path).digest
    assert len(first) == 64 and int(first, 16) >= 0
    os.utime(path, (1, 1))  # touching it is not a change
    assert load_config(path).digest == first
    _write(project, HEAD + 'command = ["python"]\n# a comment is a change\n')
    second = load_config(path).digest
    assert second != first
    _write(project, HEAD + 'command = ["python"]\n')
    assert load_config(path).digest == first


# -- the command line -----------------------------------------------------------------------------


def test_agent_from_args(project: Path) -> None:
    agent = agent_from_args(
        ADDR,
        ["python", "agents/pipeline.py", "--verbose"],
        project,
        replicas=2,
        concurrency=8,
        env={"API_TOKEN": SECRET},
        stop_grace_seconds=3,
    )
    assert agent == AgentConfig(
        address=ADDR,
        command=("python", "agents/pipeline.py", "--verbose"),
        cwd=str(project),
        env={"API_TOKEN": SECRET},
        replicas=2,
        concurrency=8,
        stop_grace_seconds=3.0,
        executable=sys.executable,
    )
    assert SECRET not in repr(agent)
    defaults = agent_from_args(ADDR, ("python",), project, replicas=None)
    assert (defaults.replicas, defaults.max_delivery_attempts, defaults.start_retries) == (1, 3, 3)


def test_agent_from_args_relative_cwd(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    _executable(project / "agents" / "run.sh")
    agent = agent_from_args("agent://x/y", ["./run.sh"], Path("agents"))
    assert agent.cwd == str(project / "agents")


@pytest.mark.parametrize(
    ("address", "argv", "options", "expected"),
    [
        ("pipeline", ["python"], {}, '"pipeline": not an agent address (expected agent://'),
        (ADDR, ["python"], {"replicas": 0}, "--replicas: expected a positive integer, got 0"),
        (ADDR, ["python"], {"replicas": True}, "--replicas: expected a positive integer, got true"),
        (ADDR, ["python"], {"concurrency": 5000}, "--concurrency: must be at most 1024"),
        (
            ADDR,
            ["python"],
            {"max_delivery_attempts": -2},
            "--max-delivery-attempts: expected a positive integer, got -2",
        ),
        (ADDR, ["python"], {"start_seconds": -1.0}, "--start-seconds: expected a positive number"),
        (ADDR, ["python"], {"env": {"TOKEN": 3}}, "--env TOKEN: expected a string"),
        (ADDR, [], {}, "command: required (give it after --"),
        (ADDR, ["python", ""], {}, "command[1]: expected a non-empty string"),
        (
            ADDR,
            ["foo"],
            {},
            'command: "foo" not found (not on PATH and not a file relative to {project})',
        ),
        (
            ADDR,
            ["agents/nope.sh"],
            {},
            'command: "agents/nope.sh" not found (no such file relative to {project})',
        ),
    ],
)
def test_agent_from_args_bad(
    project: Path, address: str, argv: list[str], options: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        agent_from_args(address, argv, project, **options)  # type: ignore[arg-type]
    assert info.value.message.startswith(expected.format(project=project))
    assert "axme.toml" not in info.value.message


def test_agent_from_args_missing_cwd(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--cwd: no such directory: .*/proj/gone$"):
        agent_from_args(ADDR, ["python"], project / "gone")


def test_agent_from_args_never_shows_env_values(project: Path) -> None:
    for env in ({"TOKEN": SECRET, "BAD=NAME": "x"}, {"TOKEN": SECRET + "\0"}):
        with pytest.raises(ConfigError) as info:
            agent_from_args(ADDR, ["python"], project, env=env, replicas=0)
        assert SECRET not in str(info.value)


# -- what a command runs: resolved where the user runs axme ---------------------------------------


def test_python_is_the_interpreter_axme_runs_under(project: Path) -> None:
    # The PATH's `python` (the fixture's) is not the one axme runs under.
    config = load_config(_write(project, HEAD + 'command = ["python", "agents/pipeline.py"]\n'))
    assert config.agents[0].executable == sys.executable
    assert config.agents[0].command == ("python", "agents/pipeline.py")  # shown as written


def test_python_on_the_agents_own_path_is_looked_up_there(project: Path) -> None:
    own = project / "own-bin"
    own.mkdir()
    _executable(own / "python")
    text = HEAD + f'command = ["python"]\nenv = {{ PATH = "{own}" }}\n'
    assert load_config(_write(project, text)).agents[0].executable == str(own / "python")


def test_a_program_is_resolved_on_the_callers_path_and_the_digest_follows_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(project, HEAD + 'command = ["node", "agents/mailer.js"]\n')
    before = load_config(path)
    assert before.agents[0].executable == os.path.join(os.environ["PATH"], "node")

    venv_bin = project / ".venv" / "bin"  # a venv activated: its bin first on PATH
    venv_bin.mkdir(parents=True)
    _executable(venv_bin / "node")
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}{os.environ['PATH']}")
    after = load_config(path)
    assert after.agents[0].executable == str(venv_bin / "node")
    assert after.digest != before.digest  # so the daemon applies the same file again
    assert load_config(path).digest == after.digest


def test_a_relative_program_is_resolved_against_the_agents_cwd(project: Path) -> None:
    _executable(project / "agents" / "run.sh")
    config = load_config(_write(project, HEAD + 'command = ["./run.sh"]\ncwd = "agents"\n'))
    assert config.agents[0].executable == str(project / "agents" / "run.sh")
