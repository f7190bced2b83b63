"""What `axme list`, `show`, `wait`, `tail`, `cancel`, `retry`, `inbox`, `agents list`, `keys
list` and `daemon status` do, without Typer.

The Typer commands and the launcher's quick paths (`quick.py`) both run these, so that a
command behaves the same whichever parsed it. Exit codes are returned, not raised: Typer
raises its `Exit`, the launcher calls `sys.exit`.
"""

from __future__ import annotations

from typing import Any

from axme_cli.errors import EXIT_UNREACHABLE, STATUS_EXIT, BadInput
from axme_cli.paths import HomePaths
from axme_cli.protocol import IntentStatus
from axme_cli.session import Session

#: The task statuses `inbox --all` adds to the pending ones.
CLOSED = ("DECIDED", "TIMED_OUT")
#: `axme cancel`'s reason when none is given.
CANCEL_REASON = "canceled from the command line"
#: `axme list`'s page size when `--limit` is not given.
LIST_LIMIT = 20


def finish(intent: dict[str, Any], as_json: bool) -> int:
    """Print where a followed intent ended; its outcome's exit code."""
    from axme_cli import render
    from axme_cli.output import json_block, line

    if as_json:
        render.print_json(intent)
    else:
        line(intent["intent_id"], render.status_piece(intent["status"]))
        if intent.get("result") is not None:
            json_block(intent["result"])
        if intent.get("error") is not None:
            render.print_error(intent["error"])
    return STATUS_EXIT.get(IntentStatus(intent["status"]), 1)


def wait(session: Session, intent: str, timeout: str | None, as_json: bool) -> int:
    from axme_cli import render
    from axme_cli.durations import parse_duration

    limit = parse_duration(timeout) if timeout else None
    with session.connect() as client:
        intent_id = client.resolve_id(intent)
        current = client.get_intent(intent_id)
        if current["status"] not in {s.value for s in STATUS_EXIT}:
            since = current["last_seq"]
            for _ in client.follow(
                intent_id, since=since, timeout=limit, on_lost=render.daemon_lost
            ):
                pass
            current = client.get_intent(intent_id)
    return finish(current, as_json)


def show(session: Session, intent: str, as_json: bool) -> None:
    from axme_cli import render

    with session.connect() as client:
        intent_id = client.resolve_id(intent)
        data = client.get_intent(intent_id)
        events = client.list_events(intent_id)
    if as_json:
        render.print_json({"intent": data, "events": events})
    else:
        render.intent_panel(data, events)


def list_intents(
    session: Session,
    *,
    status: str | None,
    agent: str | None,
    intent_type: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    from axme_cli import render

    if status is not None:
        status = status.upper()
        if status not in IntentStatus.__members__:
            allowed = ", ".join(IntentStatus.__members__)
            raise BadInput(f"--status: unknown status {status!r}; one of {allowed}")
    if agent is not None and not agent.startswith("agent://"):
        agent = f"agent://{agent}"  # as the table prints it
    with session.connect() as client:
        page = client.list_intents(
            status=status, to_agent=agent, intent_type=intent_type, limit=limit, cursor=cursor
        )
    more = page.get("next_cursor")
    hint = None
    if more:
        filters = {"--status": status, "--agent": agent, "--type": intent_type}
        hint = next_page_command(
            session.given, filters, limit=limit, cursor=str(more), as_json=as_json
        )
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
    given: tuple[str, ...],
    filters: dict[str, str | None],
    *,
    limit: int,
    cursor: str,
    as_json: bool,
) -> str:
    """The `axme list` that prints the next page: the global options `given` on the command
    line (`--home`, `--config`, `--no-config`), this one's filters, limit and `--json`,
    quoted for the shell; `--cursor` last."""
    import shlex

    words = ["axme", *given, "list"]
    if as_json:
        words.append("--json")
    for flag, value in filters.items():
        if value is not None:
            words += [flag, value]
    if limit != LIST_LIMIT:
        words += ["--limit", str(limit)]
    words += ["--cursor", cursor]
    return shlex.join(words)


def inbox(session: Session, *, all_: bool, as_json: bool) -> None:
    from axme_cli import render

    with session.connect() as client:
        tasks = client.list_tasks(status="PENDING", limit=1000)
        if all_:
            for status in CLOSED:
                tasks += client.list_tasks(status=status, limit=1000)
    if as_json:
        for task in tasks:
            render.print_json_line(task)
        return
    if not tasks:
        render.note("inbox empty" + ("" if all_ else ": no task waits for a person"))
        return
    render.tasks_table(tasks, with_status=all_)


def list_agents(session: Session, *, as_json: bool) -> None:
    from axme_cli import render

    with session.connect() as client:
        agents = client.list_agents()
    empty = "no agents registered (declare them in axme.toml, or: axme agents add)"
    if render.listed_plainly(agents, as_json, empty):
        return
    from axme_cli.output import Cell, Column, table

    columns = [
        Column("AGENT", overflow="ellipsis", min_width=12),
        *(Column(name, no_wrap=True) for name in ("STATE", "PID", "RESTARTS", "IN FLIGHT")),
        Column("LAST EXIT", overflow="fold"),
    ]
    rows: list[list[Cell]] = []
    for agent in agents:
        pids, restarts, last = render.replica_summary(agent)
        rows.append(
            [
                agent["address"].removeprefix("agent://"),
                render.agent_state_piece(agent["state"]),
                pids,
                restarts,
                str(agent.get("in_flight", 0)),
                last,
            ]
        )
    table(columns, rows)


def cancel(session: Session, intent: str, reason: str, as_json: bool) -> None:
    from axme_cli import render
    from axme_cli.decisions import actor

    with session.connect() as client:
        intent_id = client.resolve_id(intent)
        answer = client.resolve_intent(intent_id, "CANCELED", reason=reason, actor=actor())
    if as_json:
        render.print_json(answer["intent"])
        return
    from axme_cli.output import line

    current = answer["intent"]
    phase = (current.get("compensation") or {}).get("phase")
    said = ""
    if phase == "canceling":
        said = ": cancel asked; its handler stops at its next ctx call, then it is undone"
    elif phase == "compensating":
        said = ": undoing its steps, then CANCELED"
    line([(intent_id + " ", ""), render.status_piece(current["status"]), (said, "")])


def retry(session: Session, intent: str, as_json: bool) -> None:
    from axme_cli import render
    from axme_cli.decisions import actor

    with session.connect() as client:
        intent_id = client.resolve_id(intent)
        answer = client.retry_intent(intent_id, actor=actor())
    if as_json:
        render.print_json(answer["intent"])
    else:
        from axme_cli.output import line

        line(intent_id, render.status_piece(answer["intent"]["status"]))


def tail(session: Session, intent: str, since: int, as_json: bool) -> int:
    """Print an intent's events until it is final; its outcome's exit code (130: Ctrl-C)."""
    from axme_cli import render
    from axme_cli.output import line

    with session.connect() as client:
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
                    line(render.event_pieces(event, full=full), soft_wrap=True)
        except KeyboardInterrupt:
            return 130
        if last is None:  # `since` was already past a final event
            status = client.get_intent(intent_id)["status"]
        else:
            status = last["status"]
    return STATUS_EXIT.get(IntentStatus(status), 0)


def list_keys(session: Session, *, as_json: bool) -> None:
    from axme_cli import render

    with session.connect() as client:
        keys = client.list_keys()
    if render.listed_plainly(keys, as_json, "no keys (axme keys create NAME --scope ...)"):
        return
    from axme_cli.output import Column, table

    columns = [Column(name, overflow="fold") for name in ("NAME", "SCOPES", "CREATED")]
    table(columns, [[k["name"], " ".join(k["scopes"]), k["created_at"]] for k in keys])


def daemon_status(paths: HomePaths, *, as_json: bool) -> int | None:
    """Whether this home's daemon runs, and where: None, or `EXIT_UNREACHABLE` if not."""
    from axme_cli import daemonctl, render
    from axme_cli.output import line, text_block

    health = daemonctl.probe(paths)
    if as_json:
        render.print_json(
            {"running": True, **health} if health else {"running": False, "home": str(paths.home)}
        )
    elif health is None:
        line(f"not running (home {paths.home})")
    else:
        uptime = int(health["uptime_seconds"])
        text_block(
            f"running: pid {health['pid']}, up {uptime}s, version {health['version']}\n"
            f"  socket   {health['socket']}\n"
            + _tcp_lines(health)
            + f"  database {health['database']}\n"
            + _daemon_line(health)
            + f"  log      {paths.daemon_log}"
            + (f"\n  problem  {health['problem']}" if health.get("problem") else "")
        )
    return EXIT_UNREACHABLE if health is None else None


def _daemon_line(health: dict[str, Any]) -> str:
    """Its id and, on a store daemons share, how many of them are live."""
    if not health.get("daemon_id"):
        return ""
    line = f"  daemon   {health['daemon_id']}"
    sharing = health.get("daemons")
    if sharing:
        line += (
            f", {sharing['live']} live of {sharing['registered']} registered on this store"
            f" (lease grace {health['lease_grace']:g}s)"
        )
    return line + "\n"


def _tcp_lines(health: dict[str, Any]) -> str:
    """The base URL and key an AXME SDK program needs, or how to get them."""
    if not health.get("tcp"):
        return (
            "  tcp      not listening (for AXME SDK programs: axme daemon stop, then"
            " axme daemon start --listen 127.0.0.1:8765)\n"
        )
    lines = f"  base url {health['tcp']} (API key required)\n"
    if health.get("api_key"):
        lines += f"  api key  {health['api_key']} (the owner's; changes when the daemon restarts)\n"
    return lines
