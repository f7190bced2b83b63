"""`axme daemon start | stop | status | list | logs`."""

from __future__ import annotations

import os
import re
from typing import Annotated

import typer

from axme_cli.commands.common import JsonOpt, connect
from axme_cli.errors import EXIT_CONFLICT, EXIT_UNREACHABLE, BadInput, Conflict
from axme_cli.logtail import print_log
from axme_cli.output import line as line_out
from axme_cli.paths import HomePaths

app = typer.Typer(
    help="Run the axme daemon: one per axme home, started by any command that needs it.",
    no_args_is_help=True,
)


@app.command()
def start(
    ctx: typer.Context,
    foreground: Annotated[
        bool,
        typer.Option(
            "--foreground",
            "-f",
            help="Run in this process, logging to stderr (systemd, containers).",
        ),
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB [env: AXME_STORE;"
            " default: the home's axme.db].",
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="Also serve the API on loopback TCP (127.0.0.1, localhost or [::1]), API key"
            " required: the base URL for AXME SDK programs [env: AXME_LISTEN; default: only"
            " while agents run, on a free port].",
        ),
    ] = None,
    lease_grace: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            metavar="SECONDS",
            help="How long leases outlive their holder's last heartbeat: an agent worker's,"
            " or on a shared PostgreSQL store this daemon's [env: AXME_LEASE_GRACE_SECONDS;"
            " default: 10].",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the daemon in the background and wait until it answers.

    \b
    Examples:
      axme daemon start
      axme daemon start --listen 127.0.0.1:8765   # then: axme daemon status (URL and key)
    """
    from axme_cli import daemonctl, render

    paths: HomePaths = ctx.obj
    wanted = _listen_url(listen) if listen is not None else None
    if foreground:
        running = daemonctl.probe(paths)
        if running is not None:
            # A supervisor (systemd, a container) must not mistake this for its daemon running.
            raise Conflict(
                f"the axme daemon is already running (pid {running['pid']}, socket"
                f" {running['socket']}); stop it first: axme daemon stop"
            )
        cmd = daemonctl.daemon_command(
            paths, foreground=True, store=store, listen=listen, lease_grace=lease_grace
        )
        os.execv(cmd[0], cmd)
    started = daemonctl.start(paths, store=store, listen=listen, lease_grace=lease_grace)
    if started.already_running and wanted is not None:
        _check_listener(started.pid, started.tcp, wanted)
    if as_json:
        render.print_json(
            {
                "pid": started.pid,
                "socket": started.socket,
                "already_running": started.already_running,
                "tcp": started.tcp,
            }
        )
        return
    said = "already running" if started.already_running else "started"
    line = f"{said}: pid {started.pid}, socket {started.socket}"
    if started.tcp:
        line += f", base url {started.tcp} (its key: axme daemon status)"
    line_out(line, soft_wrap=True)


def _listen_url(listen: str) -> str:
    """`http://HOST:PORT` for `--listen HOST:PORT` (`http://HOST:` for port 0: any port);
    `BadInput` unless it is a loopback address."""
    from axme_cli.listen import BadListen, parse_listen

    try:
        host, port = parse_listen(listen)
    except BadListen as exc:
        raise BadInput(f"--listen: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port or ''}"


def _check_listener(pid: int, tcp: str | None, wanted: str) -> None:
    """A daemon already runs: `--listen` is a conflict unless it listens there already."""
    if tcp is not None and (tcp == wanted or (wanted.endswith(":") and tcp.startswith(wanted))):
        return
    where = f"its TCP listener at {tcp}" if tcp else "no TCP listener"
    raise Conflict(
        f"the axme daemon already runs (pid {pid}) with {where}; --listen applies when it"
        " starts: axme daemon stop, then axme daemon start --listen again"
    )


@app.command()
def stop(
    ctx: typer.Context,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1, metavar="SECONDS", help="Seconds to wait after SIGTERM before SIGKILL."
        ),
    ] = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Stop the daemon gracefully (SIGTERM, then SIGKILL after --timeout)."""
    from axme_cli import daemonctl, render

    stopped = daemonctl.stop(ctx.obj, timeout=timeout)
    if as_json:
        render.print_json(
            {
                "pid": stopped.pid,
                "was_running": stopped.was_running,
                "killed": stopped.killed,
                "not_ours": stopped.not_ours,
            }
        )
    elif stopped.not_ours:
        line_out(f"not running: {stopped.not_ours}", soft_wrap=True)
    elif not stopped.was_running:
        line_out("not running")
    elif stopped.killed:
        line_out(f"killed pid {stopped.pid} (it did not stop within {timeout:g}s)")
    else:
        line_out(f"stopped pid {stopped.pid}")


@app.command()
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Is the daemon running? Exit 0 if it is, 5 if not.

    While its TCP listener is open it also prints the base URL and the daemon's local key
    (the owner's, until the daemon stops) for programs written for AXME:
    AxmeClient(AxmeClientConfig(base_url=URL, api_key=KEY)).
    """
    from axme_cli import views

    if views.daemon_status(ctx.obj, as_json=as_json) is not None:
        raise typer.Exit(EXIT_UNREACHABLE)


@app.command("list")
def list_daemons(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The daemons sharing this home's store, oldest first.

    Several daemons (one per home, on one machine or many) can share one PostgreSQL
    database: start each with the same --store postgresql://... (or AXME_STORE). Each
    supervises its own agents; an intent goes to a listening worker on any of them.

    Columns: DAEMON (its id, kept in HOME/daemon.id; "this" marks the one answering),
    HOST and PID, STARTED (how long ago), HEARTBEAT (how long since its last, by the
    database's clock), STATE (live while that is within its lease grace; lapsed after, when
    another daemon redelivers the work its workers held), LEASES (deliveries its workers
    hold now) and LISTENING (the agents its workers listen for).

    On SQLite the store is one daemon's: it lists that one, with no heartbeat. A daemon
    that stops cleanly leaves the list; one that died stays, lapsed, until its home
    starts again (same id).

    --json prints one JSON object per daemon, per line, e.g. the hosts of the live ones:
    axme daemon list --json | jq -r 'select(.live) | .host'
    """
    from axme_cli import render

    with connect(ctx) as client:
        daemons = client.list_daemons()
    if render.listed_plainly(daemons, as_json, "no daemon is registered on this store"):
        return
    from axme_cli.output import Column, table

    columns = [
        Column(name, no_wrap=name != "DAEMON")
        for name in ("DAEMON", "HOST", "PID", "STARTED", "HEARTBEAT", "STATE", "LEASES")
    ]
    columns.append(Column("LISTENING", overflow="fold"))
    rows = []
    for d in daemons:
        age = d.get("heartbeat_age")
        rows.append(
            [
                d["daemon_id"] + (" (this)" if d["this"] else ""),
                d["host"],
                str(d["pid"]),
                render.age(d["started_at"]),
                "-" if age is None else f"{max(0.0, age):.1f}s ago",
                ("live", "green") if d["live"] else ("lapsed", "red"),
                str(d["leases"]),
                ", ".join(a.removeprefix("agent://") for a in d["listening"]) or "-",
            ]
        )
    table(columns, rows)
    live = sum(1 for d in daemons if d["live"])
    render.note(f"{live} live of {len(daemons)} registered on this store")


def _maintain(paths: HomePaths, action: str) -> None:
    from axme_cli import daemonctl

    code = daemonctl.maintain(paths, action)
    if code == daemonctl.DAEMON_EXIT_ALREADY_RUNNING:
        raise typer.Exit(EXIT_CONFLICT)
    raise typer.Exit(code)


@app.command()
def check(ctx: typer.Context) -> None:
    """Check the store file (PRAGMA integrity_check), with the daemon stopped.

    Exit 0 when it is sound, 1 when it is damaged, 4 while the daemon runs."""
    _maintain(ctx.obj, "check")


@app.command()
def recover(ctx: typer.Context) -> None:
    """Rebuild a damaged store from every row still readable, with the daemon stopped.

    The damaged file is kept, renamed `axme.db.damaged-TIMESTAMP`; a sound store is left
    alone. Prints what was saved."""
    _maintain(ctx.obj, "recover")


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) (\w+) ([\w.]+): (.*)$")


def _log_record(line: str) -> dict[str, str]:
    """A daemon log line as JSON fields; continuation lines (tracebacks) keep only `message`."""
    m = _LOG_LINE.match(line)
    if m is None:
        return {"message": line}
    return {"at": m[1], "level": m[2], "logger": m[3], "message": m[4]}


@app.command()
def logs(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, metavar="N", help="Lines to show first.")
    ] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line: at, level, logger, message.")
    ] = False,
) -> None:
    """Print the daemon's log (and follow it with -f)."""
    from axme_cli import render

    def emit(line: str) -> None:
        if as_json:
            render.print_json_line(_log_record(line))
        else:
            print(line, flush=True)

    paths: HomePaths = ctx.obj
    path = paths.daemon_log
    if not path.exists():
        raise BadInput(f"no daemon log yet at {path} (the daemon has never run in this home)")
    print_log(path, lines=lines, follow=follow, emit=emit)
