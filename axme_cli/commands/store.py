"""`axme store copy`: move a home's store into PostgreSQL, with the daemon stopped."""

from __future__ import annotations

from typing import Annotated

import typer

from axme_cli.commands.common import JsonOpt

app = typer.Typer(
    help="The home's store: copy it into PostgreSQL when a team outgrows one machine.",
    no_args_is_help=True,
)


@app.command()
def copy(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to", metavar="URL", help="postgresql://USER:PASSWORD@HOST/DB: an empty database."
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Copy this home's SQLite store into PostgreSQL, with the daemon stopped.

    Every table (intents, timelines, steps, waits, timers, tasks, signals, agents, keys) is
    copied with its ids, sequence numbers and times, in one transaction that commits only
    when every table's count agrees on both sides; then `axme daemon start --store URL`
    carries on where this home stopped. Refused, with nothing changed: a target that holds
    rows (exit 4), a running daemon (4), a URL that is not postgresql:// (2), a server that
    does not answer (5), a missing home (3)."""
    from axme_cli import daemonctl

    raise typer.Exit(daemonctl.maintain(ctx.obj, "copy", "--to", to, *["--json"] * as_json))
