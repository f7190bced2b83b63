"""`axme scenarios validate | apply | key`: AXME's ScenarioBundle against the local daemon.

Apply provisions the scenario's agents in the daemon, each with a key of its own, kept in the
home's `scenario-agents.json` (mode 0600); AXME's own CLI configuration is never touched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from axme_cli.commands.common import JsonOpt, connect, session
from axme_cli.errors import BadInput, NotFound
from axme_cli.paths import HomePaths

app = typer.Typer(
    help="AXME scenarios (ScenarioBundle JSON): validate one, or apply it (agents, intent, "
    "steps) and watch it run.",
    no_args_is_help=True,
)

FileArg = Annotated[
    str, typer.Argument(metavar="FILE", help="A ScenarioBundle JSON file ('-': stdin).")
]


def read_bundle(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise BadInput(f"FILE: cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadInput(f"FILE: {path} is not JSON: {exc}") from None


def agent_keys(paths: HomePaths) -> dict[str, Any]:
    """The keys apply provisioned, by address (empty when there are none)."""
    try:
        agents = json.loads(paths.scenario_agents.read_text()).get("agents")
    except (OSError, ValueError):
        return {}
    return agents if isinstance(agents, dict) else {}


@app.command()
def validate(ctx: typer.Context, file: FileArg, as_json: JsonOpt = False) -> None:
    """List every error and warning of a scenario; nothing is created (exit 2 if invalid)."""
    from axme_cli import render

    with connect(ctx) as client:
        answer = client.validate_scenario(read_bundle(file))
    if as_json:
        render.print_json(answer)
    else:
        for warning in answer["warnings"]:
            render.note(f"warning: {warning}")
        for error in answer["errors"]:
            render.error_line(error)
        if not answer["errors"]:
            render.out().print(f"valid: {len(answer.get('steps', []))} steps")
    if answer["errors"]:
        raise typer.Exit(BadInput.exit_code)


@app.command()
def apply(
    ctx: typer.Context,
    file: FileArg,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow its events until it is final.")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key", metavar="KEY", help="Apply again with it: the same intent."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Provision the scenario's agents (create_if_missing), create its intent and start its
    steps, in one write; print where the agents' keys are and how to start each agent.

    With --watch, follow it until it is final and exit with its outcome (as `axme wait`).
    """
    from axme_cli import render, views

    with connect(ctx) as client:
        answer = client.apply_scenario(read_bundle(file), idempotency_key)
    if as_json:
        render.print_json_line(answer)
    else:
        _print_applied(answer, agent_keys(ctx.obj))
    if watch:
        raise typer.Exit(views.tail(session(ctx), answer["intent_id"], 0, as_json))


def _print_applied(answer: dict[str, Any], keys: dict[str, Any]) -> None:
    from axme_cli import render

    console = render.out()
    again = " (applied before: the same intent)" if answer.get("idempotent") else ""
    console.print(
        f"{answer['scenario_id']}: intent {answer['intent_id']} "
        f"{render.status_text(answer['status'])}{again}"
    )
    holder = answer.get("pending_with") or {}
    if answer.get("current_step"):
        console.print(f"step {answer['current_step']}, with {holder.get('name', '?')}")
    for warning in answer.get("warnings") or []:
        render.note(f"warning: {warning}")
    if answer.get("agent_keys_file"):
        console.print(f"agent keys written to {answer['agent_keys_file']} (mode 0600)")
    for agent in answer.get("agents") or []:
        address = agent["address"]
        name = address.removeprefix("agent://")
        entry = keys.get(address)
        if entry is None:
            console.print(f"agent {name}: already served here (no new key)")
            continue
        console.print(f"start agent {name} ({agent['role']}) with its key:")
        console.print(
            f"  AXME_BASE_URL={entry.get('base_url') or '<axme daemon status>'} "
            f'AXME_API_KEY="$(axme scenarios key {name})" AXME_AGENT_ADDRESS={name} '
            "python agent.py",
            soft_wrap=True,
            markup=False,
        )


@app.command()
def key(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="The agent's address.")],
) -> None:
    """Print the key `apply` provisioned for an agent (for its AXME_API_KEY)."""
    wanted = address if address.startswith("agent://") else f"agent://{address}"
    entry = agent_keys(ctx.obj).get(wanted)
    if entry is None:
        raise NotFound(f"no key for {wanted} in {ctx.obj.scenario_agents}")
    print(entry["api_key"])
