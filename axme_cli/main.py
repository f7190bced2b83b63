"""The `axme` command: parse, call the daemon, render. The one place errors become exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

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

app = typer.Typer(
    name="axme",
    help=HELP,
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"axme {__version__}")
        raise typer.Exit()


@app.callback()
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


def _register() -> None:
    from axme_cli.commands import (
        agents,
        bench,
        completions,
        daemon,
        demo,
        intents,
        keys,
        scenarios,
        store,
        tail,
        tasks,
        tui,
    )

    bench.register(app)
    demo.register(app)
    intents.register(app)
    tail.register(app)
    tasks.register(app)
    tui.register(app)
    app.add_typer(agents.app, name="agents")
    app.add_typer(daemon.app, name="daemon")
    app.add_typer(keys.app, name="keys")
    app.add_typer(scenarios.app, name="scenarios")
    app.add_typer(store.app, name="store")
    completions.register(app)


_register()


def main() -> None:
    from axme_cli.errors import AxmeError

    try:
        from axme_cli.commands.common import run_app

        # The name, not argv[0]: `python -m axme_cli` must complete and print usage as `axme`.
        run_app(app, prog_name="axme")
    except AxmeError as exc:
        from axme_cli.render import error_line

        error_line(exc.message)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
