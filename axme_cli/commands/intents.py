"""`axme send | list | show | cancel | wait`."""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer

from axme_cli.commands import completion
from axme_cli.commands.common import IdArg, JsonOpt, connect, parse_duration, read_payload
from axme_cli.errors import STATUS_EXIT, BadInput
from axme_cli.protocol import IntentStatus

#: `axme list`'s page size when `--limit` is not given.
LIST_LIMIT = 20


def actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _finish(intent: dict[str, Any], as_json: bool) -> None:
    """Print where a followed intent ended and exit with its outcome code."""
    from axme_cli import render

    if as_json:
        render.print_json(intent)
    else:
        line = f"{intent['intent_id']} {render.status_text(intent['status'])}"
        render.out().print(line)
        if intent.get("result") is not None:
            render.out().print_json(data=intent["result"])
        if intent.get("error") is not None:
            render.print_error(intent["error"])
    raise typer.Exit(STATUS_EXIT.get(IntentStatus(intent["status"]), 1))


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
    with connect(ctx) as client:
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
    from axme_cli import render

    limit = parse_duration(timeout) if timeout else None
    with connect(ctx) as client:
        intent_id = client.resolve_id(intent)
        current = client.get_intent(intent_id)
        if current["status"] not in {s.value for s in STATUS_EXIT}:
            since = current["last_seq"]
            for _ in client.follow(
                intent_id, since=since, timeout=limit, on_lost=render.daemon_lost
            ):
                pass
            current = client.get_intent(intent_id)
        _finish(current, as_json)


def show(ctx: typer.Context, intent: IdArg, as_json: JsonOpt = False) -> None:
    """Show an intent's fields, payload, result and event timeline."""
    from axme_cli import render

    with connect(ctx) as client:
        intent_id = client.resolve_id(intent)
        data = client.get_intent(intent_id)
        events = client.list_events(intent_id)
    if as_json:
        render.print_json({"intent": data, "events": events})
    else:
        render.intent_panel(data, events)


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
    from axme_cli import render

    if status is not None:
        status = status.upper()
        if status not in IntentStatus.__members__:
            allowed = ", ".join(IntentStatus.__members__)
            raise BadInput(f"--status: unknown status {status!r}; one of {allowed}")
    if agent is not None and not agent.startswith("agent://"):
        agent = f"agent://{agent}"  # as the table prints it
    with connect(ctx) as client:
        page = client.list_intents(
            status=status, to_agent=agent, intent_type=intent_type, limit=limit, cursor=cursor
        )
    more = page.get("next_cursor")
    hint = None
    if more:
        filters = {"--status": status, "--agent": agent, "--type": intent_type}
        hint = next_page_command(ctx, filters, limit=limit, cursor=str(more), as_json=as_json)
    if as_json:
        # stdout stays one intent per line, whatever reads it; the next page is on stderr.
        for item in page["intents"]:
            render.print_json_line(item)
        if hint:
            render.note(f"more: {hint}")
        return
    if not page["intents"]:
        render.note("no intents" + (" match" if status or agent or intent_type else " yet"))
        return
    render.intents_table(page["intents"])
    if hint:
        render.note(f"more: {hint}")


def next_page_command(
    ctx: typer.Context, filters: dict[str, str | None], *, limit: int, cursor: str, as_json: bool
) -> str:
    """The `axme list` that prints the next page: this one's filters, limit, `--json`, and
    the `--home`/`--config` given on the command line, quoted for the shell; `--cursor` last."""
    import shlex

    words = ["axme"]
    root = ctx.find_root()
    for name in ("home", "config"):
        value = root.params.get(name)
        # By name: the enum's class is the click that typer bundles, not `click`'s own.
        given = getattr(root.get_parameter_source(name), "name", None) == "COMMANDLINE"
        if value is not None and given:
            words += [f"--{name}", str(value)]
    words.append("list")
    if as_json:
        words.append("--json")
    for flag, value in filters.items():
        if value is not None:
            words += [flag, value]
    if limit != LIST_LIMIT:
        words += ["--limit", str(limit)]
    words += ["--cursor", cursor]
    return shlex.join(words)


def cancel(
    ctx: typer.Context,
    intent: IdArg,
    reason: Annotated[
        str, typer.Option("--reason", "-r", metavar="TEXT", help="Why; kept in the timeline.")
    ] = ("canceled from the command line"),
    as_json: JsonOpt = False,
) -> None:
    """Cancel an intent that is not final yet."""
    from axme_cli import render

    with connect(ctx) as client:
        intent_id = client.resolve_id(intent)
        answer = client.resolve_intent(intent_id, "CANCELED", reason=reason, actor=actor())
    if as_json:
        render.print_json(answer["intent"])
    else:
        render.out().print(f"{intent_id} {render.status_text('CANCELED')}")


def register(app: typer.Typer) -> None:
    app.command()(send)
    app.command("list")(list_)
    app.command()(show)
    app.command()(cancel)
    app.command()(wait)
    from axme_cli.commands.agents import retry

    app.command()(retry)
