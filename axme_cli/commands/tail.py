"""`axme tail`: an intent's events as they happen, until it is final."""

from __future__ import annotations

from typing import Annotated

import typer

from axme_cli.commands.common import IdArg, JsonOpt, connect
from axme_cli.errors import STATUS_EXIT
from axme_cli.protocol import IntentStatus


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
    from axme_cli import render

    with connect(ctx) as client:
        intent_id = client.resolve_id(intent)
        if not as_json:
            render.note(f"following {intent_id} (Ctrl-C to leave)")
        last = None
        full = not render.in_terminal()  # piped: no value cut short
        try:
            for event in client.follow(intent_id, since=since, on_lost=render.daemon_lost):
                last = event
                if as_json:
                    render.print_json_line(event)
                else:
                    render.out().print(render.event_line(event, full=full), soft_wrap=True)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        if last is None:  # `since` was already past a final event
            status = client.get_intent(intent_id)["status"]
        else:
            status = last["status"]
    raise typer.Exit(STATUS_EXIT.get(IntentStatus(status), 0))


def register(app: typer.Typer) -> None:
    app.command()(tail)
