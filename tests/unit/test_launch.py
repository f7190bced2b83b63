"""The launcher's quick paths take only what the Typer app would read the same way; the rest,
and all of `--help`, goes to Typer."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import typer.main

from axme_cli.launch import command_word
from axme_cli.main import COMMAND_MODULES, app, make_app
from axme_cli.paths import home_paths
from axme_cli.quick import parse, parser
from axme_cli.session import Session


def test_a_plain_send_is_quick() -> None:
    argv = ["--home", "/h", "send", "t.v1", "--to=agent://a/b/c", "-p", "-", "-k", "x", "--json"]
    quick = parse(argv)
    assert quick is not None
    assert quick.session.paths == home_paths(Path("/h"))
    assert (quick.session.config, quick.session.no_config) == (None, False)
    a = quick.args
    assert (a.command, a.intent_type, a.to, a.payload, a.idempotency_key, a.as_json) == (
        "send",
        "t.v1",
        "agent://a/b/c",
        "-",
        "x",
        True,
    )
    quick = parse(["send", "--to", "agent://a/b/c", "t.v1"])
    assert quick is not None and quick.args.intent_type == "t.v1" and not quick.args.as_json


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["list"], {"status": None, "agent": None, "limit": 20, "as_json": False}),
        (["list", "-sFAILED", "--to", "a/b/c", "-n", "5", "--json"], {"status": "FAILED"}),
        (["list", "--limit=500", "--type", "t.v1"], {"limit": 500, "intent_type": "t.v1"}),
        (["show", "3f2a", "--json"], {"intent": "3f2a", "as_json": True}),
        (["show", "--", "-3f2a"], {"intent": "-3f2a"}),
        (["wait", "3f2a", "--timeout", "5m"], {"intent": "3f2a", "timeout": "5m"}),
        (["inbox", "-a"], {"all_": True, "as_json": False}),
        (
            ["approve", "3f2a", "-c", "ok", "--as", "al"],
            {"ref": "3f2a", "who": "al", "comment": "ok"},
        ),
        (["reject", "3f2a", "--json"], {"ref": "3f2a", "who": None, "as_json": True}),
        (["cancel", "3f2a"], {"intent": "3f2a", "reason": "canceled from the command line"}),
        (["cancel", "3f2a", "-r", "why"], {"reason": "why"}),
        (["tail", "3f2a"], {"intent": "3f2a", "since": 0, "as_json": False}),
        (["tail", "3f2a", "--since", "7", "--json"], {"since": 7, "as_json": True}),
        (["retry", "3f2a", "--json"], {"intent": "3f2a", "as_json": True}),
        (["agents", "list", "--json"], {"as_json": True}),
        (["tasks", "list", "-a", "--json"], {"all_": True, "as_json": True}),
        (
            ["tasks", "confirm", "3f2a", "-d", "n=1", "--data", "k=v", "--as", "al"],
            {"ref": "3f2a", "who": "al", "data": ["n=1", "k=v"]},
        ),
        (["tasks", "reject", "3f2a", "-c", "no"], {"ref": "3f2a", "comment": "no", "data": []}),
        (["intents", "get", "3f2a", "--json"], {"intent": "3f2a", "as_json": True}),
        (["intents", "list", "-s", "WAITING", "-n", "3"], {"status": "WAITING", "limit": 3}),
        (["intents", "watch", "3f2a", "--since", "4"], {"intent": "3f2a", "since": 4}),
        (["intents", "cancel", "3f2a", "-r", "why"], {"intent": "3f2a", "reason": "why"}),
        (["--no-config", "--config", "x.toml", "inbox"], {"no_config": True, "config": "x.toml"}),
    ],
)
def test_quick_commands(argv: list[str], expected: dict[str, object]) -> None:
    quick = parse(argv)
    assert quick is not None
    assert {key: getattr(quick.args, key) for key in expected} == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--version"],
        ["-h"],
        ["--help"],
        ["list", "--help"],
        ["list", "-h"],
        ["agents", "list", "--help"],
        ["lis"],  # Typer suggests `list`
        ["agents"],
        ["agents", "add", "x", "--", "true"],
        ["task", "submit", "3f2a", "--outcome", "approved"],
        ["tasks", "submit", "3f2a", "--outcome", "approved"],
        ["tasks", "get", "3f2a"],
        ["tasks"],
        ["intents"],
        ["tasks", "approve", "3f2a", "--data"],
        ["intents", "get", "3f2a", "--help"],
        ["approve", "3f2a", "--as"],
        ["approve", "-3f2a"],
        ["cancel", "3f2a", "-r"],
        ["tail", "3f2a", "--since", "-1"],
        ["tail", "3f2a", "--since", "1.5"],
        ["--version", "list"],
        ["--json", "list"],
        ["list", "--home", "/h"],  # a root option after the command: Typer says so
        ["list", "--limit", "0"],
        ["list", "--limit", "501"],
        ["list", "--limit", "+5"],
        ["list", "--limit", "five"],
        ["list", "-s=FAILED"],  # Click reads the value "=FAILED"
        ["list", "extra"],
        ["list", "--lim", "5"],  # no abbreviations
        ["show"],
        ["show", "a", "b"],
        ["show", "-5"],  # Click: no such option
        ["show", "-x y"],
        ["show", "3f2a", "--json=1"],
        ["inbox", "-ax"],
        ["wait", "3f2a", "--timeout"],
        ["send", "t.v1"],  # no --to: Typer says it is missing
        ["send", "t.v1", "--to", "agent://a/b/c", "--wait"],
        ["send", "t.v1", "--to", "agent://a/b/c", "--approval", "Ship?"],
        ["send", "t.v1", "--to", "agent://a/b/c", "--help"],
        ["send", "t.v1", "extra", "--to", "agent://a/b/c"],
        ["send", "t.v1", "--to"],
        ["send", "-p", "-x", "t.v1", "--to", "agent://a/b/c"],
        ["--to", "agent://a/b/c", "send", "t.v1"],
    ],
)
def test_anything_else_goes_to_typer(argv: list[str]) -> None:
    assert parse(argv) is None


def _typer_options(path: tuple[str, ...]) -> tuple[dict[str, bool], int]:
    """The Typer command's options (name -> takes no value) and how many arguments it takes."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    options: dict[str, bool] = {}
    arguments = 0
    for param in command.params:
        if param.param_type_name == "argument":
            arguments += 1
            continue
        for opt in param.opts + param.secondary_opts:
            options[opt] = bool(getattr(param, "is_flag", False))
    for opt in ("--help", "-h", "--version", "--install-completion", "--show-completion"):
        options.pop(opt, None)  # Typer's own, or answered before these parsers run
    return options, arguments


def _quick_options(path: tuple[str, ...]) -> tuple[dict[str, bool], int]:
    command = parser()
    for name in path:
        (sub,) = (a for a in command._actions if isinstance(a, argparse._SubParsersAction))
        command = sub.choices[name]
    options: dict[str, bool] = {}
    arguments = 0
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if not action.option_strings:
            arguments += 1
        for opt in action.option_strings:
            options[opt] = action.nargs == 0
    return options, arguments


#: What a quick command leaves to Typer by not declaring it.
_TYPER_ONLY: dict[tuple[str, ...], set[str]] = {
    ("send",): {"--wait", "-w", "--timeout", "--approval", "--deadline", "--on-timeout"}
}


@pytest.mark.parametrize(
    "path",
    [
        *[(name,) for name in ("send", "list", "show", "wait", "tail", "cancel", "retry")],
        *[("approve",), ("reject",)],
        *[(), ("inbox",), ("agents", "list")],
        *[("tasks", verb) for verb in ("list", "approve", "reject", "confirm", "complete")],
        *[("intents", verb) for verb in ("get", "list", "watch", "cancel")],
    ],
)
def test_quick_parsers_declare_what_the_typer_commands_declare(path: tuple[str, ...]) -> None:
    """Same option names, each a flag in both or a value in both, and as many arguments: a
    Typer option the quick parser lacked would send its users to Typer, but one it read
    differently would change what the command does."""
    typer_options, typer_arguments = _typer_options(path)
    quick_options, quick_arguments = _quick_options(path)
    for opt in _TYPER_ONLY.get(path, set()):
        typer_options.pop(opt)
    assert quick_options == typer_options
    assert quick_arguments == typer_arguments


@pytest.mark.parametrize(
    ("flag", "env", "skips"),
    [(False, None, False), (True, None, True), (False, "1", True), (False, "0", False)],
)
def test_no_config_flag_or_env(
    monkeypatch: pytest.MonkeyPatch, flag: bool, env: str | None, skips: bool
) -> None:
    if env is not None:
        monkeypatch.setenv("AXME_NO_CONFIG", env)
    assert Session(home_paths(), None, flag).skips_project() is skips
    # A file named with --config is sent whatever the environment says.
    assert Session(home_paths(), Path("axme.toml"), False).skips_project() is False


@pytest.mark.parametrize(
    ("argv", "given"),
    [
        (["list"], ()),
        (["--home", "/h x/", "list"], ("--home", "/h x")),
        (
            ["--home=./h", "--config", "a/axme.toml", "list"],
            ("--home", "h", "--config", "a/axme.toml"),
        ),
        (["--no-config", "--home", "~/h", "list", "-n", "1"], ("--home", "~/h", "--no-config")),
    ],
)
def test_both_paths_know_the_global_options_given_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], given: tuple[str, ...]
) -> None:
    """What a next-page hint repeats: as typed (as Typer reads a path), one order, and not the
    home AXME_HOME names, which the next command inherits anyway."""
    from axme_cli.commands.common import session

    monkeypatch.setenv("AXME_HOME", "/from/env")
    quick = parse(argv)
    assert quick is not None and quick.session.given == given
    ctx = typer.main.get_command(app).make_context("axme", list(argv))
    assert session(ctx).given == given


@pytest.mark.parametrize("module", sorted(COMMAND_MODULES))
def test_each_command_module_adds_the_commands_it_is_listed_for(module: str) -> None:
    """`make_app(word)` holds only the module listed for `word`: the list must be true."""
    add, names = COMMAND_MODULES[module]
    alone = typer.Typer()
    add(alone)
    assert set(typer.main.get_group(alone).commands) == names
    for name in names:
        made = typer.main.get_group(make_app(name))
        assert set(made.commands) == names, name


def test_the_whole_app_is_every_module_s_commands() -> None:
    every = set().union(*(names for _, names in COMMAND_MODULES.values()))
    assert set(typer.main.get_group(app).commands) == every
    for word in (None, "bogus", "--help"):
        assert set(typer.main.get_group(make_app(word)).commands) == every


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["list", "-n", "1"], "list"),
        (["--home", "/h", "--no-config", "daemon", "status"], "daemon"),
        (["--home=/h", "--config", "x.toml", "keys", "list"], "keys"),
        (["--version"], None),
        (["-v", "list"], None),
        ([], None),
        (["--home"], None),
    ],
)
def test_command_word_skips_the_global_options(argv: list[str], word: str | None) -> None:
    assert command_word(argv) == word
