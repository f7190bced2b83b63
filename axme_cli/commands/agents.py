"""`axme agents list | add | remove | restart | logs`, and `axme retry`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.commands.common import IdArg, JsonOpt, connect, session
from axme_cli.errors import AmbiguousId, BadInput, NotFound

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient

app = typer.Typer(
    help="Agents the daemon supervises: declared in axme.toml or added here.",
    no_args_is_help=True,
)

NameArg = Annotated[
    str,
    typer.Argument(
        metavar="AGENT", help="Agent address (agent://org/env/name) or a unique last part of it."
    ),
]


def resolve_agent(client: DaemonClient, name: str) -> str:
    """A registered agent's address from its address or a unique trailing part of it."""
    if name.startswith("agent://"):
        return name
    addresses: list[str] = [a["address"] for a in client.list_agents()]
    exact = f"agent://{name}"
    if exact in addresses:
        return exact
    matches = [a for a in addresses if a.endswith("/" + name)]
    if not matches:
        known = ", ".join(addresses) or "none yet"
        raise NotFound(f"no agent matches {name!r} (registered: {known})")
    if len(matches) > 1:
        raise AmbiguousId(f"{name!r} matches several agents: {', '.join(matches)}")
    return matches[0]


@app.command("list")
def list_agents(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Each agent's state, pids, restarts, last exit and deliveries in flight."""
    from axme_cli import views

    views.list_agents(session(ctx), as_json=as_json)


def _parse_env(pairs: list[str], files: list[Path]) -> dict[str, str]:
    """The agent's env from `--env-file` files, then `--env` (later ones win). A bare
    `--env NAME` takes NAME's value from this process's environment, so that it never
    appears in a command line (which every user of the machine can read with `ps`)."""
    from dotenv import dotenv_values

    env: dict[str, str] = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as stream:
                values = dotenv_values(stream=stream)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise BadInput(f"--env-file: cannot read {path}: {reason}") from None
        bare = [key for key, value in values.items() if value is None]
        if bare:
            raise BadInput(f"--env-file: {path}: expected NAME=VALUE lines, got {bare[0]!r}")
        env.update({key: value for key, value in values.items() if value is not None})
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key:
            raise BadInput(f"--env: expected NAME or NAME=VALUE, got {pair!r}")
        if not sep:
            if key not in os.environ:
                raise BadInput(f"--env {key}: {key} is not set in this environment")
            value = os.environ[key]
        env[key] = value
    return env


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(metavar="ADDRESS", help="Agent address, e.g. agent://myorg/dev/pipeline."),
    ],
    command: Annotated[
        list[str],
        typer.Argument(metavar="COMMAND", help="The command to run, after --: -- python agent.py"),
    ],
    replicas: Annotated[int, typer.Option(metavar="N", help="Processes to run.")] = 1,
    concurrency: Annotated[
        int, typer.Option(metavar="N", help="Intents each process handles at once.")
    ] = 1,
    max_delivery_attempts: Annotated[
        int, typer.Option(metavar="N", help="Deliveries of an intent before it FAILS.")
    ] = 3,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            "-e",
            metavar="NAME[=VALUE]",
            help="NAME (its value taken from this environment) or NAME=VALUE for the process;"
            " repeat. A VALUE given here is visible to every user in `ps`: pass secrets as"
            " NAME or with --env-file.",
        ),
    ] = None,
    env_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--env-file",
            metavar="FILE",
            help="A file of NAME=VALUE lines (.env syntax) for the process's environment; repeat.",
        ),
    ] = None,
    cwd: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Working directory (default: this directory)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an agent and start it: axme agents add agent://me/dev/echo -- python echo.py"""
    from axme_cli import render
    from axme_cli.project import agent_from_args

    spec = agent_from_args(
        name,
        command,
        (cwd or Path.cwd()).absolute(),
        replicas=replicas,
        concurrency=concurrency,
        max_delivery_attempts=max_delivery_attempts,
        env=_parse_env(env or [], env_file or []),
    )
    with connect(ctx, project="ignored") as client:
        agent = client.add_agent(spec.to_wire())
        agent = _settled(client, agent, spec.start_seconds + 2.0)
    if as_json:
        render.print_json(agent)
    else:
        line = f"added {agent['address']} ({render.agent_state_text(agent['state'])})"
        exits = [r["last_exit"]["description"] for r in agent["replicas"] if r.get("last_exit")]
        if agent["state"] == "FATAL" and exits:
            line += f": {exits[-1]}; see: axme agents logs {agent['address']}"
        render.out().print(line, soft_wrap=True)


def _settled(client: DaemonClient, agent: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The agent once it is RUNNING or FATAL (or as it is after `timeout`): what the user
    wants to know right after adding it."""
    import time

    deadline = time.monotonic() + timeout
    while agent["state"] not in ("RUNNING", "FATAL") and time.monotonic() < deadline:
        time.sleep(0.1)
        agent = client.get_agent(agent["address"])
    return agent


@app.command()
def remove(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Stop an agent and forget it (its queued intents wait for a new one).

    An agent declared in axme.toml stays removed until that file changes, or until
    `axme agents restart` brings it back.
    """
    from axme_cli import render

    with connect(ctx, project="ignored") as client:
        address = resolve_agent(client, name)
        declared_in = client.remove_agent(address)
    if as_json:
        render.print_json({"removed": address, "declared_in": declared_in})
    elif declared_in is None:
        render.out().print(f"removed {address}")
    else:
        render.out().print(
            f"removed {address}; it is declared in {declared_in}, so it stays removed until"
            f" that file changes or: axme agents restart {address}",
            soft_wrap=True,
        )


@app.command()
def restart(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Restart every process of an agent; also the way out of FATAL."""
    from axme_cli import render

    with connect(ctx) as client:
        address = resolve_agent(client, name)
        agent = client.restart_agent(address)
        agent = _settled(client, agent, float(agent.get("start_seconds", 1.0)) + 2.0)
    if as_json:
        render.print_json(agent)
    else:
        render.out().print(f"restarted {address} ({render.agent_state_text(agent['state'])})")


@app.command()
def logs(
    ctx: typer.Context,
    name: NameArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, metavar="N", help="Lines to show first.")
    ] = 50,
) -> None:
    """Print an agent's output (stdout and stderr of every replica), and follow it with -f."""
    from axme_cli.logtail import print_log

    with connect(ctx) as client:
        address = resolve_agent(client, name)
        path = Path(client.get_agent(address)["log_path"])
    if not path.exists():
        raise BadInput(f"{address} has no log yet at {path}")
    print_log(path, lines=lines, follow=follow, emit=lambda line: print(line, flush=True))


def retry(ctx: typer.Context, intent: IdArg, as_json: JsonOpt = False) -> None:
    """Put a FAILED intent back in the queue with fresh delivery attempts."""
    from axme_cli import views

    views.retry(session(ctx), intent, as_json)
