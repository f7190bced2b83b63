"""The `axme` command: parse, call the daemon, render. The one place errors become exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli import __version__
from axme_cli.errors import EXIT_CODES_HELP

HELP = """Durable execution for agent work, without a cluster.

A local daemon keeps every intent in SQLite; this command sends intents, follows them and
runs the daemon (started on first use). Intent ids may be shortened to a unique prefix.

\b
Examples:
  axme send intent.pipeline.process.v1 --to agent://myorg/production/data-pipeline \\
       --payload '{"source": "postgres-main"}'
  axme list --status SUBMITTED
  axme tail 3f2a
  axme send TYPE --to ADDR --wait --timeout 5m --json   # a CI gate
"""


def _version(value: bool) -> None:
    if value:
        print(f"axme {__version__}")
        raise typer.Exit()


def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="AXME_HOME",
            help="axme home: database, socket and logs. [env: AXME_HOME; default: XDG data dir]",
            show_envvar=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The project's axme.toml (default: ./axme.toml or the nearest one above).",
        ),
    ] = None,
    no_config: Annotated[
        bool,
        typer.Option(
            "--no-config",
            help="Send no axme.toml to the daemon. [env: AXME_NO_CONFIG=1]",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    from axme_cli.paths import home_paths

    ctx.obj = home_paths(home.expanduser().absolute() if home else None)


def _add_sub_app(name: str) -> Callable[[typer.Typer], None]:
    def add(app: typer.Typer) -> None:
        module = import_module(f"axme_cli.commands.{name}")
        app.add_typer(module.app, name=name)

    return add


def _call_register(name: str) -> Callable[[typer.Typer], None]:
    def add(app: typer.Typer) -> None:
        import_module(f"axme_cli.commands.{name}").register(app)

    return add


#: Each module of `commands/`, in the order `axme --help` lists what it adds, and the
#: top-level commands it adds (a test holds these to what the modules add).
COMMAND_MODULES: dict[str, tuple[Callable[[typer.Typer], None], frozenset[str]]] = {
    "bench": (_call_register("bench"), frozenset({"bench"})),
    "demo": (_call_register("demo"), frozenset({"demo"})),
    "intents": (
        _call_register("intents"),
        frozenset({"intents", "send", "list", "show", "cancel", "wait", "retry"}),
    ),
    "tail": (_call_register("tail"), frozenset({"tail"})),
    "tasks": (
        _call_register("tasks"),
        frozenset({"inbox", "approve", "reject", "signal", "tasks", "task"}),
    ),
    "tui": (_call_register("tui"), frozenset({"tui"})),
    "agents": (_add_sub_app("agents"), frozenset({"agents"})),
    "daemon": (_add_sub_app("daemon"), frozenset({"daemon"})),
    "keys": (_add_sub_app("keys"), frozenset({"keys"})),
    "scenarios": (_add_sub_app("scenarios"), frozenset({"scenarios"})),
    "store": (_add_sub_app("store"), frozenset({"store"})),
    "completions": (_call_register("completions"), frozenset({"completions"})),
}


def make_app(command: str | None = None) -> typer.Typer:
    """The `axme` app: every command, or only those of the module that adds `command`,
    which is all a command line naming it needs (Typer reads the signature of every command
    it holds before it runs one: a third of `axme daemon status`). Any other word gets the
    whole app, so that its usage error or help is the whole app's."""
    app = typer.Typer(
        name="axme",
        help=HELP,
        epilog=EXIT_CODES_HELP,
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for add, names in COMMAND_MODULES.values():
        if command is None or command in names or not _known(command):
            add(app)
    for function in set(_callbacks(app)):
        _resolve_annotations(function)
    return app


def _callbacks(app: typer.Typer) -> Iterator[Callable[..., Any]]:
    """Every function the app runs: its callback, its commands', its sub-apps'."""
    if app.registered_callback and app.registered_callback.callback:
        yield app.registered_callback.callback
    for command in app.registered_commands:
        if command.callback:
            yield command.callback
    for group in app.registered_groups:
        if group.typer_instance:
            yield from _callbacks(group.typer_instance)


def _resolve_annotations(function: Callable[..., Any]) -> None:
    """Evaluate a function's annotations once, in place of their text (these modules use
    `from __future__ import annotations`): Typer evaluates each text four times while it
    builds a command, half of what building the whole app takes for `axme --help`."""
    import typing

    function.__annotations__ = typing.get_type_hints(function, include_extras=True)


def _known(command: str) -> bool:
    return any(command in names for _, names in COMMAND_MODULES.values())


if TYPE_CHECKING:
    #: The whole app (made on first use: `python -m axme_cli` makes only what it runs).
    app: typer.Typer


def __getattr__(name: str) -> typer.Typer:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    made = globals()["app"] = make_app()
    return made


def main() -> None:
    from axme_cli.errors import AxmeError

    try:
        from axme_cli.commands.common import run_app
        from axme_cli.launch import COMPLETE_VAR, command_word

        argv = sys.argv[1:]
        completing = COMPLETE_VAR in os.environ
        app = make_app(None if completing else command_word(argv))
        # The name, not argv[0]: `python -m axme_cli` must complete and print usage as `axme`.
        run_app(app, prog_name="axme")
    except AxmeError as exc:
        from axme_cli.render import error_line

        error_line(exc.message)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
