"""`axme tail`: an intent's events as they happen, until it is final."""

from __future__ import annotations

from typing import Annotated

import typer

from axme_cli.commands.common import IdArg, JsonOpt, session


def tail(
    ctx: typer.Context,
    intent: IdArg,
    since: Annotated[
        int,
        typer.Option(
            min=0, metavar="SEQ", help="Start after this event number (0: the whole timeline)."
        ),
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Follow an intent's events live until it is final (Ctrl-C leaves).

    Exits with the intent's outcome code, like `axme wait`.
    """
    from axme_cli import views

    raise typer.Exit(views.tail(session(ctx), intent, since, as_json))


def register(app: typer.Typer) -> None:
    app.command()(tail)
