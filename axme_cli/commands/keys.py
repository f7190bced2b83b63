"""`axme keys create | list | revoke`: keys for people and programs on the TCP listener."""

from __future__ import annotations

from typing import Annotated

import typer

from axme_cli.commands.common import JsonOpt, connect, session

app = typer.Typer(
    help="API keys for the loopback TCP listener, each with its scopes. The Unix socket "
    "needs none (it is the owner's).",
    no_args_is_help=True,
)

NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="The key's name: the actor its decisions record.")
]
ScopeOpt = Annotated[
    list[str],
    typer.Option(
        "--scope",
        "-s",
        metavar="SCOPE",
        help="What the key may do (repeat): intents:read, intents:write, tasks:decide, "
        "agents:admin, or agent:ADDRESS (work as that agent's worker).",
    ),
]


@app.command()
def create(ctx: typer.Context, name: NameArg, scope: ScopeOpt, as_json: JsonOpt = False) -> None:
    """Make a key and print it: the only time it is shown (the daemon keeps a hash)."""
    from axme_cli import render

    with connect(ctx) as client:
        made = client.create_key(name, scope)
    if as_json:
        render.print_json(made)
        return
    print(made["key"])
    render.note(f"key {name!r} ({', '.join(made['scopes'])}): shown once, keep it now")


@app.command("list")
def list_keys(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every key's name, scopes and creation time (never the key)."""
    from axme_cli import views

    views.list_keys(session(ctx), as_json=as_json)


@app.command()
def revoke(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Forget a key: from now on the daemon answers it 401."""
    from axme_cli import render

    with connect(ctx) as client:
        client.revoke_key(name)
    if as_json:
        render.print_json({"revoked": name})
    else:
        from axme_cli.output import line

        line(f"revoked {name}")
