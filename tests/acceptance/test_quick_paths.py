"""The launcher's quick commands against a real daemon: what they print and exit with is what
the Typer app prints and exits with, and they stay within their import budget."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import axme_cli.commands
from tests.daemon import Daemon, env_for, run_cli, wait_for

pytestmark = pytest.mark.acceptance

#: The Typer app, as `axme` would run it without the launcher.
TYPER = "import sys; sys.argv[0] = 'axme'; from axme_cli.main import main; main()"
#: The launcher, recording every module loaded by the time the process exits.
LAUNCHER = """
import atexit, json, sys
record = sys.argv.pop(1)
atexit.register(lambda: open(record, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "axme"
from axme_cli.launch import main
main()
"""
#: Ages (`4s`, `2m`) and uptimes move on between two runs, and with an age's width (`9s`,
#: `10s`) the padding of its table column.
MOVING = re.compile(r' *\b\d+[smhd]\b *|"uptime_seconds":[0-9.]+')


@pytest.fixture
def intents(daemon: Daemon) -> dict[str, str]:
    """A completed intent and one waiting for a person, with an agent registered."""
    home = daemon.home

    def cli(*args: str) -> str:
        result = run_cli(home, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    approval = ("send", "intent.quick.v1", "--to", "agent://q/dev/gate", "--approval")
    done = cli(*approval, "Ship it?")
    cli("approve", done)
    waiting = cli(*approval, "And this one?")
    cli("agents", "add", "agent://q/dev/sleeper", "--", "sleep", "600")
    wait_for(lambda: json.loads(cli("show", done, "--json"))["intent"]["status"] == "COMPLETED")
    return {"done": done, "waiting": waiting}


def _run(home: Path, program: list[str], args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *program, *args],
        env=env_for(home),
        cwd=home,  # no project axme.toml above it
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _commands(home: Path, ids: dict[str, str]) -> list[list[str]]:
    done, waiting = ids["done"], ids["waiting"]
    return [
        ["list"],
        ["list", "--json"],
        ["list", "-s", "completed", "-n", "1"],
        # Next-page hints: the filters, the limit, and the global options typed (not AXME_HOME).
        ["list", "-n", "1"],
        ["list", "--to", "q/dev/gate", "-t", "intent.quick.v1", "--limit", "1", "--json"],
        ["--home", f"{home}/", "--no-config", "list", "-n", "1", "--agent", "agent://q/dev/gate"],
        ["--no-config", "list", "--json", "-n", "1", "--status", "waiting"],
        ["list", "--status", "BOGUS"],
        ["list", "--agent", "agent://nobody/x/y"],
        ["show", done],
        ["show", done[:6], "--json"],
        ["show", "ffffffff"],
        ["wait", done],
        ["wait", done, "--json"],
        ["wait", waiting, "--timeout", "0.2s"],
        ["wait", done, "--timeout", "soon"],
        ["inbox"],
        ["inbox", "--all", "--json"],
        ["approve", done],  # already decided
        ["reject", "zz"],
        ["approve", "ffffffff", "-c", "no such task"],
        ["cancel", done, "--json"],  # already final
        ["retry", done],  # not FAILED
        ["tail", done],
        ["tail", done, "--since", "2", "--json"],
        ["agents", "list"],
        ["agents", "list", "--json"],
        ["keys", "list"],
        ["keys", "list", "--json"],
        ["daemon", "status"],
        # AXME's command shapes for the same commands.
        ["tasks", "list"],
        ["tasks", "list", "-a", "--json"],
        ["tasks", "approve", done, "-d", "k=v"],  # already decided
        ["tasks", "confirm", waiting[:8]],  # not an outcome the task allows
        ["tasks", "reject", "zz", "--data", "x"],
        ["intents", "get", done[:6], "--json"],
        ["intents", "list", "-n", "1", "--to", "q/dev/gate"],
        ["intents", "watch", done, "--since", "1"],
        ["intents", "cancel", done, "--json"],
        # A home no daemon can start in (a file where its parent directory should be):
        # the same one line and exit code both ways, and no daemon left behind.
        ["--home", f"{home}/not-a-dir/axme-home", "show", done],
    ]


def test_quick_commands_print_and_exit_as_the_typer_app_does(
    daemon: Daemon, intents: dict[str, str]
) -> None:
    (daemon.home / "not-a-dir").write_text("")
    for args in _commands(daemon.home, intents):
        quick = _run(daemon.home, ["-m", "axme_cli"], args)
        typer = _run(daemon.home, ["-c", TYPER], args)
        got = (quick.returncode, MOVING.sub(" N ", quick.stdout), quick.stderr)
        want = (typer.returncode, MOVING.sub(" N ", typer.stdout), typer.stderr)
        assert got == want, f"axme {' '.join(args)}"


#: Ids and times differ between two intents decided alike.
UNIQUE = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d{4}-\d\d-\d\dT[0-9:.]+Z?|\d+\.\d+")


def test_quick_decisions_and_cancels_are_the_typer_apps(daemon: Daemon) -> None:
    """The same decision or cancel of two like intents, one each way, prints the same."""
    quick, typer = ["-m", "axme_cli"], ["-c", TYPER]
    approval = ["--approval", "Go?"]
    for args, kind in (
        (["approve", "-c", "fine", "--as", "alice", "--json"], approval),
        (["reject", "-c", "no"], approval),
        (["cancel", "-r", "not needed"], []),
        (["cancel", "--json"], []),
        (["tasks", "approve", "-c", "ok", "--data", "n=2", "--json"], approval),
        (["intents", "cancel", "-r", "not needed"], []),
    ):
        outputs = []
        for program in (quick, typer):
            sent = _run(daemon.home, quick, ["send", "t.v1", "--to", "agent://q/d/g", *kind])
            result = _run(daemon.home, program, [*args, sent.stdout.strip()])
            outputs.append((result.returncode, UNIQUE.sub("X", result.stdout), result.stderr))
        assert outputs[0][0] == 0 and outputs[0] == outputs[1], (args, outputs)


def _loaded(home: Path, tmp_path: Path, args: list[str]) -> tuple[int, set[str]]:
    record = tmp_path / "modules.json"
    result = _run(home, ["-c", LAUNCHER, str(record)], args)
    return result.returncode, set(json.loads(record.read_text()))


def _hits(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in loaded if any(n == f or n.startswith(f + ".") for f in forbidden))


#: Modules a quick command may load in all, standard library included: some 15 more than it
#: takes today (about 130, whether it prints JSON or a table to a pipe); through Typer it was
#: 340, and drawing with Rich for a pipe 200.
QUICK_BUDGET = 145
#: What no quick command loads when its output goes to a pipe: Typer, Click and pydantic
#: (~200 ms together), the httpx stack, Rich (~40 ms, and it draws nothing there), the
#: axme.toml validator when there is no axme.toml, and `dataclasses` (it imports `inspect`).
QUICK_FORBIDDEN = (
    *("typer", "click", "pydantic", "httpx", "axme_cli.commands", "axme_cli.main"),
    *("rich", "axme_cli.project", "dataclasses", "inspect"),
)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["list", "--json"], 0),
        (["list"], 0),
        (["show", "{done}", "--json"], 0),
        (["show", "{done}"], 0),
        (["wait", "{done}", "--json"], 0),
        (["wait", "{done}"], 0),
        (["inbox", "--json"], 0),
        (["inbox"], 0),
        (["agents", "list"], 0),
        (["keys", "list"], 0),
        (["daemon", "status"], 0),
        (["daemon", "status", "--json"], 0),
        (["approve", "{waiting}", "--json"], 0),
        (["tasks", "list", "--json"], 0),
        (["intents", "get", "{done}", "--json"], 0),
        (["cancel", "{done}", "--json"], 4),
        (["show", "ffffffff"], 3),
        (["send", "intent.quick.v1", "--to", "agent://q/dev/none", "--json"], 0),
        (["send", "intent.quick.v1", "--to", "agent://q/dev/none"], 0),
    ],
)
def test_quick_commands_stay_within_their_import_budget(
    daemon: Daemon, intents: dict[str, str], tmp_path: Path, args: list[str], code: int
) -> None:
    """Piped, a quick command loads the parser, the HTTP client and the view, and nothing
    heavy besides; a bounded number of modules, so that a new import shows here first."""
    got, loaded = _loaded(daemon.home, tmp_path, [a.format(**intents) for a in args])
    assert got == code
    assert "axme_cli.quick" in loaded
    assert _hits(loaded, QUICK_FORBIDDEN) == []
    assert len(loaded) <= QUICK_BUDGET, sorted(loaded)


#: The Typer-parsed commands: the Typer app with the one module of `commands/` that adds
#: the command (about 200 modules in all; `--help` loads every command module).
TYPER_BUDGET = 215


@pytest.mark.parametrize(
    ("args", "module"),
    [
        (["keys", "--help"], "keys"),
        (["keys", "list", "--help"], "keys"),
        (["daemon", "--help"], "daemon"),
    ],
)
def test_typer_parsed_commands_load_only_their_own_command_module(
    daemon: Daemon, tmp_path: Path, args: list[str], module: str
) -> None:
    """Typer reads the signature of every command its app holds before it runs one, so the
    app holds only the module that adds the command named; piped, Rich stays unloaded."""
    _, loaded = _loaded(daemon.home, tmp_path, args)
    assert "axme_cli.main" in loaded and "axme_cli.quick" not in loaded
    commands = {m.removeprefix("axme_cli.commands.") for m in loaded}
    commands &= {p.stem for p in Path(axme_cli.commands.__file__).parent.glob("*.py")}
    assert commands == {module, "common", "completion"}, sorted(commands)
    assert _hits(loaded, ("rich", "pydantic", "httpx", "argparse", "axme_cli.project")) == []
    assert len(loaded) <= TYPER_BUDGET, sorted(loaded)


def test_the_root_help_lists_every_command(daemon: Daemon, tmp_path: Path) -> None:
    """`axme --help` prints the whole app's help, written out (scripts/gen_root_help.py),
    without making the app; a terminal narrower than Click's 80 columns, and an unknown
    command, get the whole app: its help at that width, and its usage error."""
    from axme_cli.main import COMMAND_MODULES

    code, loaded = _loaded(daemon.home, tmp_path, ["--help"])
    assert code == 0
    assert _hits(loaded, ("typer", "axme_cli.main", "axme_cli.commands")) == []
    result = _run(daemon.home, ["-m", "axme_cli"], ["--help"])
    assert result.stdout == _run(daemon.home, ["-c", TYPER], ["--help"]).stdout
    for names in (names for _, names in COMMAND_MODULES.values()):
        for name in names - {"task"}:  # hidden: the name `tasks` had first
            assert re.search(rf"^\s+{name}\s", result.stdout, re.M), (name, result.stdout)
    narrow = {**env_for(daemon.home), "COLUMNS": "60"}
    helps = [
        subprocess.run(
            [sys.executable, *program, "--help"], env=narrow, capture_output=True, text=True
        ).stdout
        for program in (["-m", "axme_cli"], ["-c", TYPER])
    ]
    assert helps[0] == helps[1] != result.stdout  # wrapped to 58 columns, by the app
    result = _run(daemon.home, ["-m", "axme_cli"], ["daemonz", "status"])
    said = "no such command 'daemonz'. Did you mean 'daemon', 'demo'?"  # among them all
    assert (result.returncode, result.stderr) == (2, f"error: axme: {said} (see: axme --help)\n")


@pytest.mark.parametrize(
    "args",
    [["daemon", "list"], ["keys", "list", "--help"], ["show", "--help"], ["--no-config", "-h"]],
)
def test_typer_parsed_commands_do_not_import_pydantic(
    daemon: Daemon, tmp_path: Path, args: list[str]
) -> None:
    """What the quick parsers leave to the Typer app still skips pydantic (~100 ms): Typer
    0.29 reads every option through it, hence the pin below 0.29 in pyproject.toml."""
    code, loaded = _loaded(daemon.home, tmp_path, args)
    assert code == 0
    assert "axme_cli.main" in loaded
    assert _hits(loaded, ("pydantic", "httpx")) == []
