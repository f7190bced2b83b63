"""`axme tui`: the approval inbox and a live view of intents and agents."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from axme_cli.commands.common import connect
from axme_cli.commands.tasks import AsOpt
from axme_cli.errors import BadInput

MODES = ("inbox", "intents", "agents")


def tui(
    ctx: typer.Context,
    screen: Annotated[
        str | None,
        typer.Option(
            "--screen",
            metavar="SCREEN",
            help="Open on inbox, intents or agents (default: the inbox when tasks wait, "
            "else intents).",
        ),
    ] = None,
    actor: AsOpt = None,
) -> None:
    """A keyboard-driven terminal app: decide pending tasks, watch intents and agents live.

    Keys: 1 inbox, 2 intents, 3 agents, ? every key, q quit. In the inbox, enter opens a
    task with its intent's payload, steps and timeline; a approves and r rejects (with a
    comment, and the task's form when it has one). Starts the daemon if it is not running;
    if the daemon goes away later, the app says so and reconnects by itself.
    """
    if screen is not None and screen not in MODES:
        raise BadInput(f"--screen must be one of {', '.join(MODES)}, not {screen!r}")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise BadInput(
            "axme tui needs an interactive terminal; in scripts use "
            "axme inbox --json, axme list --json or axme tail --json"
        )
    with connect(ctx) as client:
        client.health()  # starts the daemon when nothing answers
        socket = client.socket_path
    from axme_cli.aclient import AsyncDaemonClient
    from axme_cli.tui.app import AxmeApp

    source = AsyncDaemonClient(socket)
    app = AxmeApp(source, start_mode=screen, actor=actor, where=str(socket))
    app.run()


def register(app: typer.Typer) -> None:
    app.command()(tui)
