"""`axme send | list | show | cancel | wait`, and `axme intents get | list | watch | cancel`
(AXME's command shapes for the same commands)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.commands import completion
from axme_cli.commands.common import (
    IdArg,
    JsonOpt,
    connect,
    parse_duration,
    read_payload,
    session,
)
from axme_cli.errors import BadInput
from axme_cli.views import CANCEL_REASON, LIST_LIMIT


def _finish(intent: dict[str, Any], as_json: bool) -> None:
    """Print where a followed intent ended and exit with its outcome code."""
    from axme_cli import views

    raise typer.Exit(views.finish(intent, as_json))


def send(
    ctx: typer.Context,
    intent_type: Annotated[
        str,
        typer.Argument(metavar="INTENT_TYPE", help="Intent type, e.g. intent.pipeline.process.v1."),
    ],
    to: Annotated[
        str,
        typer.Option(
            "--to", metavar="ADDRESS", help="Agent address, e.g. agent://myorg/production/pipeline."
        ),
    ],
    payload: Annotated[
        str | None,
        typer.Option(
            "--payload",
            "-p",
            metavar="JSON",
            help="JSON object: inline text, @file to read a file, or - for stdin.",
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            "-k",
            metavar="KEY",
            help="Sending again with the same key returns the same intent instead of a new one.",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Wait until the intent is final; exit by outcome.")
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION", help="With --wait: give up after this long (30s, 5m, 1h); exit 9."
        ),
    ] = None,
    approval: Annotated[
        str | None,
        typer.Option(
            metavar="TITLE",
            help="Make it a human approval with this title (no agent code): with --wait, "
            "exit 0 approved, 7 rejected, 8 timed out.",
        ),
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="With --approval: decide within (30m, 1h)."),
    ] = None,
    on_timeout: Annotated[
        str,
        typer.Option(
            metavar="ACTION",
            help="With --approval and --deadline: reject, approve, or fail (TIMED_OUT).",
        ),
    ] = "fail",
    as_json: JsonOpt = False,
) -> None:
    """Send an intent to an agent; prints its id (and waits for the outcome with --wait).

    \b
    Examples:
      axme send intent.pipeline.process.v1 --to agent://myorg/production/data-pipeline \\
           --payload '{"source": "postgres-main", "destination": "warehouse"}'
      axme send intent.report.v1 --to agent://me/dev/reports --payload @report.json
      echo '{"n": 1}' | axme send intent.demo.v1 --to agent://me/dev/demo --payload -
      axme send intent.deploy.v1 --to agent://ops/prod/deployer -k deploy-42 \\
           --wait --timeout 10m --json
      axme send intent.release.gate.v1 --to agent://ci/gate --approval "Ship 1.2?" \\
           --deadline 1h --wait      # a CI gate: 0 approved, 7 rejected, 8 timed out
    """
    from axme_cli import render

    body: dict[str, Any] = {"intent_type": intent_type, "to_agent": to}
    body["payload"] = read_payload(payload)
    if approval is not None:
        task: dict[str, Any] = {"title": approval, "task_type": "approval"}
        if deadline is not None:
            task["deadline_seconds"] = parse_duration(deadline, option="--deadline")
            task["on_timeout"] = on_timeout
        body["human_task"] = task
    elif deadline is not None:
        raise BadInput("--deadline only applies with --approval")
    if timeout is not None and not wait:
        raise BadInput("--timeout only applies with --wait")
    limit = parse_duration(timeout) if timeout else None
    with connect(ctx, project="required") as client:
        created = client.create_intent(body, idempotency_key=idempotency_key)
        intent_id = created["intent_id"]
        if not wait:
            render.sent(created, as_json)
            return
        if not as_json:
            render.note(f"sent {intent_id}; waiting for it to finish")
        for _ in client.follow(intent_id, timeout=limit, on_lost=render.daemon_lost):
            pass
        _finish(client.get_intent(intent_id), as_json)


def wait(
    ctx: typer.Context,
    intent: IdArg,
    timeout: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Give up after this long (30s, 5m, 1h); exit 9. Default: no limit.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait until an intent is final; the exit code tells the outcome.

    A daemon restart meanwhile is ridden out: it waits up to 30s for the daemon to come back.
    """
    from axme_cli import views

    raise typer.Exit(views.wait(session(ctx), intent, timeout, as_json))


def show(ctx: typer.Context, intent: IdArg, as_json: JsonOpt = False) -> None:
    """Show an intent's fields, payload, result and event timeline."""
    from axme_cli import views

    views.show(session(ctx), intent, as_json)


def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            help="Only this status, e.g. FAILED.",
            metavar="STATUS",
            autocompletion=completion.statuses,
        ),
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option("--agent", "--to", metavar="ADDRESS", help="Only intents sent to this agent."),
    ] = None,
    intent_type: Annotated[
        str | None, typer.Option("--type", "-t", metavar="TYPE", help="Only this intent type.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500, metavar="N")] = LIST_LIMIT,
    cursor: Annotated[
        str | None,
        typer.Option(metavar="CURSOR", help="Continue after a previous page (printed at its end)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List intents, newest first (JSON lines with --json)."""
    from axme_cli import views

    views.list_intents(
        session(ctx),
        status=status,
        agent=agent,
        intent_type=intent_type,
        limit=limit,
        cursor=cursor,
        as_json=as_json,
    )


def cancel(
    ctx: typer.Context,
    intent: IdArg,
    reason: Annotated[
        str, typer.Option("--reason", "-r", metavar="TEXT", help="Why; kept in the timeline.")
    ] = CANCEL_REASON,
    as_json: JsonOpt = False,
) -> None:
    """Cancel an intent that is not final yet."""
    from axme_cli import views

    views.cancel(session(ctx), intent, reason, as_json)


INTENTS_HELP = """Intents, as AXME's CLI names the commands: the same as axme show, list, tail
and cancel.

An intent is named by its id (what AXME's examples print) or a unique prefix of one.

\b
Examples:
  axme intents get 3f2a                  # fields, payload, result, timeline (axme show)
  axme intents list --status WAITING     # newest first (axme list)
  axme intents watch 3f2a                # live events until final; exits by outcome (axme tail)
  axme intents cancel 3f2a --reason "wrong source"
"""

intents_app = typer.Typer(help=INTENTS_HELP, no_args_is_help=True)


def register(app: typer.Typer) -> None:
    from axme_cli.commands.tail import tail

    intents_app.command("get")(show)
    intents_app.command("list")(list_)
    intents_app.command("watch")(tail)
    intents_app.command("cancel")(cancel)
    app.add_typer(intents_app, name="intents")
    app.command()(send)
    app.command("list")(list_)
    app.command()(show)
    app.command()(cancel)
    app.command()(wait)
    from axme_cli.commands.agents import retry

    app.command()(retry)
