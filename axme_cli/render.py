"""Output: Rich for people on stdout, one JSON document (or JSON lines) for scripts.

Data goes to stdout, diagnostics to stderr. Status words are always printed, so nothing
depends on colour. In a terminal, tables fit its width (long cells end in `…`, ids are
shortened); piped, nothing is cut or wrapped: a row is one line with whole ids and addresses,
written without importing Rich (`output.py`; the commands the quick parsers run use it).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from axme_cli.output import Cell, Piece

STATUS_STYLE = {
    "CREATED": "dim",
    "SUBMITTED": "cyan",
    "DELIVERED": "blue",
    "ACKNOWLEDGED": "blue",
    "IN_PROGRESS": "yellow",
    "WAITING": "magenta",
    "COMPLETED": "green",
    "FAILED": "bold red",
    "CANCELED": "dim red",
    "TIMED_OUT": "red",
}

AGENT_STATE_STYLE = {
    "RUNNING": "green",
    "STARTING": "yellow",
    "BACKOFF": "yellow",
    "EXITED": "yellow",
    "STOPPED": "dim",
    "FATAL": "bold red",
}

#: Piped output's width: wide enough that no table cell is ever cut or wrapped.
PIPED_WIDTH = 100_000

_out: Console | None = None
_err: Console | None = None


def in_terminal() -> bool:
    """Whether stdout is a terminal a person reads (not whether colour is forced, as
    rich's `is_terminal` says under FORCE_COLOR in CI: CI logs are read whole)."""
    try:
        return sys.stdout.isatty()
    except ValueError:  # closed
        return False


def out() -> Console:
    global _out
    if _out is None:
        from rich.console import Console

        _out = Console(highlight=False)
        if not in_terminal():
            _out.width = PIPED_WIDTH
    return _out


def err() -> Console:
    global _err
    if _err is None:
        from rich.console import Console

        # Never wrap diagnostics: one error is one line, whatever reads stderr.
        _err = Console(stderr=True, highlight=False, soft_wrap=True)
    return _err


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_json_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def sent(created: dict[str, Any], as_json: bool) -> None:
    """What `axme send` prints: the new intent's id (or the intent, as JSON)."""
    if as_json:
        print_json(created["intent"])
        return
    intent_id = created["intent_id"]
    print(intent_id)
    if created.get("idempotent_replay"):
        note(f"{intent_id} (existing intent for this idempotency key)")


def _diagnostic(label: str, style: str, message: str) -> None:
    """One line on stderr, in colour where Rich would draw it, else as plain text."""
    from axme_cli.output import drawn

    if not drawn(sys.stderr):
        sys.stderr.write(f"{label} {message}\n" if label else f"{message}\n")
        sys.stderr.flush()
        return
    from rich.text import Text

    if label:
        err().print(Text.assemble((label, style), " ", message))
    else:
        err().print(Text(message, style=style))


def error_line(message: str) -> None:
    _diagnostic("error:", "bold red", message)


def note(message: str) -> None:
    _diagnostic("", "dim", message)


def warning(message: str) -> None:
    """Something is wrong, and the command goes on regardless (one line on stderr)."""
    _diagnostic("warning:", "yellow", message)


def daemon_lost(message: str) -> None:
    """What a waiting command says when the daemon goes away under it (it keeps waiting)."""
    from axme_cli.client import RECONNECT_SECONDS

    note(f"{message}; waiting up to {RECONNECT_SECONDS:g}s for the daemon to come back")


def status_text(status: str | None) -> str:
    status = status or "?"
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def status_piece(status: str | None) -> Piece:
    status = status or "?"
    return status, STATUS_STYLE.get(status, "white")


def agent_state_text(state: str | None) -> str:
    state = state or "?"
    return f"[{AGENT_STATE_STYLE.get(state, 'white')}]{state}[/]"


def agent_state_piece(state: str | None) -> Piece:
    state = state or "?"
    return state, AGENT_STATE_STYLE.get(state, "white")


def replica_summary(agent: dict[str, Any]) -> tuple[str, str, str]:
    """An agent's replicas in three cells: pids, restarts in all, the latest exit."""
    replicas = agent.get("replicas") or []
    pids = ",".join(str(r["pid"]) for r in replicas if r.get("pid")) or "-"
    restarts = str(sum(r.get("restarts") or 0 for r in replicas))
    exits = [r["last_exit"] for r in replicas if r.get("last_exit")]
    last = max(exits, key=lambda e: e.get("at") or "")["description"] if exits else "-"
    return pids, restarts, last


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(text: str | None, now: datetime | None = None) -> str:
    """`4s`, `12m`, `3h`, `2d`: how long ago."""
    at = parse_time(text)
    if at is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def short_id(intent_id: str) -> str:
    """The first 8 characters (a prefix every command takes) in a terminal; piped, all."""
    return intent_id[:8] if in_terminal() else intent_id


def listed_plainly(rows: list[dict[str, Any]], as_json: bool, empty: str) -> bool:
    """A list command's JSON lines, or its note that there is nothing: whether that was
    all (else the caller prints its table)."""
    if as_json:
        for row in rows:
            print_json_line(row)
        return True
    if not rows:
        note(empty)
        return True
    return False


#: The events of an intent undoing its steps (and of a cancel asked of its worker).
SAGA_EVENTS = frozenset(
    {"intent.compensating", "intent.compensation", "intent.compensated", "intent.cancel_requested"}
)


def intents_table(intents: list[dict[str, Any]]) -> None:
    """ID, status, type, agent (without `agent://`), age; ATTEMPT only once any was retried."""
    from axme_cli.output import Column, table

    show_attempt = any((i.get("delivery_attempt") or 0) > 1 for i in intents)
    columns = [
        Column("ID", no_wrap=True, min_width=8),
        Column("STATUS", no_wrap=True),
        Column("TYPE", overflow="ellipsis", min_width=12),
        Column("AGENT", overflow="ellipsis", min_width=12),
    ]
    if show_attempt:
        columns.append(Column("ATTEMPT", justify="right", no_wrap=True))
    columns.append(Column("AGE", justify="right", no_wrap=True, min_width=3))
    rows: list[list[Cell]] = []
    for intent in intents:
        row: list[Cell] = [
            short_id(intent["intent_id"]),
            status_piece(intent["status"]),
            intent["intent_type"],
            intent["to_agent"].removeprefix("agent://"),
        ]
        if show_attempt:
            row.append(str(intent.get("delivery_attempt") or 0))
        row.append(age(intent.get("created_at")))
        rows.append(row)
    table(columns, rows)


def event_pieces(event: dict[str, Any], *, full: bool = False) -> list[Piece]:
    """One timeline row: `#3 04:20:48.276 intent.canceled CANCELED by alice reason=...`.

    Long values are cut to 120 characters and task ids to 8, unless `full` (piped output).
    """
    at = parse_time(event.get("at"))
    clock = at.astimezone().strftime("%H:%M:%S.%f")[:-3] if at else "?"
    parts: list[list[Piece]] = [
        [(f"#{event.get('seq')}", "dim")],
        [(clock, "dim")],
        [(str(event.get("event_type")), "")],
        [status_piece(event.get("status"))],
    ]
    if event.get("actor") not in (None, "", "system"):
        parts.append([(f"by {event['actor']}", "")])
    details = dict(event.get("details") or {})
    summary = _summary(str(event.get("event_type")), details, full=full)
    if summary:
        parts.append([(summary, "")])
    for key, value in details.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(text) > 120 and not full:
            text = text[:117] + "..."
        parts.append([(f"{key}=", "dim"), (text, "")])
    return [piece for i, part in enumerate(parts) for piece in ([(" ", "")] if i else []) + part]


def event_line(event: dict[str, Any], *, full: bool = False) -> str:
    """`event_pieces` as Rich markup."""
    from axme_cli.output import markup

    return markup(event_pieces(event, full=full))


def scenario_line(scenario: dict[str, Any], status: str | None = None) -> str:
    """Which step of its workflow an intent is at, and who holds it: `deploy.v1: step 2 of 2
    ops_approval (try 1), with a person: ops`."""
    name = scenario.get("scenario_id") or "agent, then a person"
    steps = scenario.get("steps") or []
    step = scenario.get("current_step")
    if step is None:
        return f"{name}: {len(steps)} steps"
    index = int(scenario.get("step_index") or 0) + 1
    line = f"{name}: step {index} of {len(steps)} {step}"
    if (scenario.get("step_attempt") or 1) > 1:
        line += f" (try {scenario['step_attempt']})"
    holder = scenario.get("pending_with")
    if holder and status not in ("COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"):
        kind = "an agent" if holder.get("type") == "agent" else "a person"
        line += f", with {kind}: {holder.get('name') or holder.get('ref') or '?'}"
    return line


def saga_text(saga: dict[str, Any]) -> str:
    """Where an intent's saga is: `undoing its steps, then FAILED`, `compensated`, ..."""
    ending = (saga.get("ending") or {}).get("status", "")
    return {
        "canceling": "cancel asked: its handler stops at its next ctx call",
        "compensating": f"undoing its steps, then {ending}",
        "stuck": f"a compensation failed ({saga.get('step')}): a person decides (axme inbox)",
        "compensated": f"steps undone, {ending}",
    }.get(str(saga.get("phase")), str(saga.get("phase")))


def _saga_summary(event_type: str, details: dict[str, Any]) -> str:
    """The saga's events in plain words (their keys taken from `details`)."""
    if event_type == "intent.compensating":
        steps = ", ".join(details.pop("compensations", []) or [])
        ending = details.pop("ending", None)
        return f"undoing {steps}" + (f", then {ending}" if ending else "")
    if event_type == "intent.compensation":
        error = details.pop("error", None) or {}
        text = f"{details.pop('undo', 'compensation')} of {details.pop('step', '?')}: "
        text += str(details.pop("outcome", "?"))
        return text + (f" ({error.get('type')}: {error.get('message')})" if error else "")
    if event_type == "intent.compensated":
        ending = details.pop("ending", "")
        done = ", ".join(f"{k} {', '.join(v)}" for k, v in sorted(details.items()))
        details.clear()
        return f"steps undone ({done}); ends {ending}"
    details.pop("worker", None)
    return "cancel asked of its worker"


def _summary(event_type: str, details: dict[str, Any], *, full: bool) -> str:
    """Plain words for the events people read most; takes the keys it tells from `details`."""
    if event_type.startswith("intent.scenario.step_"):
        step = details.pop("step_id", "?")
        try_ = details.pop("step_attempt", 1)
        details.pop("step_index", None)
        details.pop("tool_id", None)
        holder = details.pop("pending_with", None) or {}
        what = event_type.removeprefix("intent.scenario.step_")
        words = f"step {step} {what}" + (f" (try {try_})" if try_ and try_ > 1 else "")
        if holder:
            words += f" -> {holder.get('name') or holder.get('ref')}"
        return words
    if event_type in SAGA_EVENTS:
        return _saga_summary(event_type, details)
    if event_type == "intent.human_task_assigned":
        task = details.pop("human_task", None) or {}
        details.pop("pending_with", None)
        task_id = str(details.pop("task_id", ""))
        task_id = task_id if full else task_id[:8]
        return f"task {task_id} {task.get('task_type', 'approval')}: {task.get('title', '')!r}"
    if event_type == "intent.human_task_decided":
        outcome = details.pop("outcome", "?")
        comment = details.pop("comment", None)
        details.pop("task_id", None)
        return f"{outcome}" + (f": {comment!r}" if comment else "")
    if event_type == "intent.reminder":
        details.pop("task_id", None)
        return f"reminder {details.pop('reminder', '')}"
    if event_type == "intent.step_completed":
        details.pop("ordinal", None)
        return f"step {details.pop('step', '?')} done"
    if event_type == "intent.step_failed":
        details.pop("ordinal", None)
        error = details.pop("error", None) or {}
        return f"step {details.pop('step', '?')} raised {error.get('type')}: {error.get('message')}"
    if event_type == "intent.progress":
        return str(details.pop("message", ""))
    error = details.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        # Its traceback is read under `error` in `axme show`, not as escaped JSON here.
        details.pop("error")
        return error_headline(error)
    return ""


def error_headline(error: dict[str, Any]) -> str:
    """`ValueError: bad row 7`, or the message alone when the error names no type."""
    kind = error.get("type")
    return f"{kind}: {error['message']}" if kind else str(error["message"])


def error_parts(error: Any) -> tuple[str, str | None, dict[str, Any]] | None:
    """An error record as people read it: its headline (`ValueError: bad row 7`), its
    traceback's text, and its other fields; `None` for an error of another shape (a string,
    or an object without a `message`), which is shown as it is."""
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    trace = error.get("traceback")
    rest = {k: v for k, v in error.items() if k not in ("type", "message", "traceback")}
    shown = trace.rstrip("\n") if isinstance(trace, str) and trace.strip() else None
    return error_headline(error), shown, rest


def print_error(error: Any) -> None:
    """An intent's error: its headline, then its traceback as the lines Python printed (not
    one escaped JSON string), then any other fields as JSON."""
    from axme_cli.output import json_block, text_block

    parts = error_parts(error)
    if parts is None:
        if isinstance(error, str):
            text_block(error, "red")
        else:
            json_block(error)
        return
    headline, trace, rest = parts
    text_block(headline, "bold red")
    if trace:
        text_block(trace, "dim")
    if rest:
        json_block(rest)


def intent_panel(intent: dict[str, Any], events: list[dict[str, Any]]) -> None:
    from axme_cli.output import grid, json_block, line

    rows: list[tuple[str, Cell]] = [
        ("id", intent["intent_id"]),
        ("status", status_piece(intent["status"])),
        ("type", intent["intent_type"]),
        ("to", intent["to_agent"]),
    ]
    for key in ("from_agent", "correlation_id", "idempotency_key", "deadline_at"):
        if intent.get(key):
            rows.append((key.replace("_", " "), str(intent[key])))
    rows.append(
        ("attempt", f"{intent.get('delivery_attempt', 0)} of {intent['max_delivery_attempts']}")
    )
    rows.append(("created", f"{intent['created_at']} ({age(intent['created_at'])} ago)"))
    rows.append(("updated", intent["updated_at"]))
    if intent.get("scenario"):
        rows.append(("scenario", scenario_line(intent["scenario"], intent["status"])))
    if intent.get("pending_reason"):
        rows.append(("waiting", (intent["pending_reason"], "yellow")))
    if intent.get("compensation"):
        rows.append(("saga", saga_text(intent["compensation"])))
    grid(rows)
    for key in ("payload", "result"):
        if intent.get(key) is not None:
            line((key, "bold"))
            json_block(intent[key])
    if intent.get("error") is not None:
        line(("error", "bold"))
        print_error(intent["error"])
    line(("timeline", "bold"))
    full = not in_terminal()
    for event in events:
        line([("  ", ""), *event_pieces(event, full=full)], soft_wrap=True)


TASK_STATUS_STYLE = {"PENDING": "magenta", "DECIDED": "green", "TIMED_OUT": "red"}


def due(text: str | None, now: datetime | None = None) -> str:
    """A task's time to its deadline: `in 4m`, `in 12s`, `overdue`, or `-` when it has none."""
    at = parse_time(text)
    if at is None:
        return "-"
    left = (at - (now or datetime.now(UTC))).total_seconds()
    if left <= 0:
        return "overdue"
    seconds = max(1, int(left))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"in {seconds // size}{unit}"
    return f"in {seconds}s"


def task_status_text(status: str | None) -> str:
    status = status or "?"
    return f"[{TASK_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def task_status_piece(status: str | None) -> Piece:
    status = status or "?"
    return status, TASK_STATUS_STYLE.get(status, "white")


def tasks_table(tasks: list[dict[str, Any]], *, with_status: bool = False) -> None:
    """The inbox: task, title, intent, agent, task type, age, time to the deadline (`in 4m`,
    `overdue`) and reminders sent."""
    from axme_cli.output import Column, table

    rows: list[list[str]] = []
    for task in tasks:
        deadline = due(task.get("deadline_at")) if task.get("status") == "PENDING" else "-"
        rows.append(
            [
                short_id(task["task_id"]),
                str(task.get("status") or "?"),
                task.get("title") or "",
                short_id(task["intent_id"]),
                task["to_agent"].removeprefix("agent://"),
                task.get("task_type") or "approval",
                age(task.get("created_at")),
                deadline,
                str(task.get("reminders_sent") or 0),
            ]
        )
    title_width, agent_width = _inbox_widths(rows, with_status) if in_terminal() else (None, None)
    columns = [
        Column("TASK", no_wrap=True),
        Column("STATUS", no_wrap=True),
        Column("TITLE", overflow="ellipsis", no_wrap=True, max_width=title_width),
        Column("INTENT", no_wrap=True),
        Column("AGENT", overflow="ellipsis", no_wrap=True, max_width=agent_width),
        Column("TYPE", no_wrap=True),
        Column("AGE", justify="right", no_wrap=True),
        Column("DUE", no_wrap=True),
        Column("REMINDERS", justify="right", no_wrap=True),
    ]
    cells: list[list[Cell]] = []
    for row in rows:
        cell: list[Cell] = list(row)
        cell[1] = task_status_piece(row[1])
        if row[7] == "overdue":
            cell[7] = ("overdue", "red")
        cells.append(cell if with_status else cell[:1] + cell[2:])
    table(columns if with_status else columns[:1] + columns[2:], cells, gap=1)


_TASK_HEADERS = ("TASK", "STATUS", "TITLE", "INTENT", "AGENT", "TYPE", "AGE", "DUE", "REMINDERS")


def _inbox_widths(rows: list[list[str]], with_status: bool) -> tuple[int, int]:
    """Title and agent widths that keep each task on one line of the terminal (80 columns
    too): the title gets what the other columns leave but an agent's share (up to 32, and
    2/5 when space is short), both cut with `…` rather than wrapped mid-word."""
    from axme_cli.output import cell_width as cell_len

    widest = [
        max(cell_len(h), *(cell_len(r[i]) for r in rows)) for i, h in enumerate(_TASK_HEADERS)
    ]
    fixed = sum(w + 1 for i, w in enumerate(widest) if i not in (2, 4) and (i != 1 or with_status))
    # Each column but the last is followed by a space: `fixed` counted one too many, which
    # pays for one of the two after TITLE and AGENT.
    rest = out().width - fixed - 1
    title_min = 12 if with_status else 16
    title = min(widest[2], max(title_min, rest - min(widest[4], 32, rest * 2 // 5)))
    return title, max(8, rest - title)


def task_panel(task: dict[str, Any]) -> None:
    """One task: what it asks, who it waits for, by when, and its decision once made."""
    from rich.markup import escape
    from rich.table import Table

    console = out()
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("task", escape(task["task_id"])),
        ("title", escape(task.get("title") or "")),
        ("type", escape(task.get("task_type") or "approval")),
        ("status", task_status_text(task.get("status"))),
        ("intent", f"{escape(task['intent_id'])} ({escape(task['intent_type'])})"),
        ("agent", escape(task["to_agent"])),
        ("assignee", escape(task.get("assignee") or "-")),
    ]
    deadline = task.get("deadline_at")
    if deadline:
        when = due(deadline) if task.get("status") == "PENDING" else None
        rows.append(("deadline", escape(deadline) + (f" ({when})" if when else "")))
        rows.append(("on timeout", escape(str(task.get("on_timeout") or "reject"))))
    else:
        rows.append(("deadline", "-"))
    rows.append(("reminders", str(task.get("reminders_sent") or 0)))
    from axme_cli.protocol import DEFAULT_OUTCOMES

    outcomes = task.get("allowed_outcomes") or DEFAULT_OUTCOMES
    rows.append(("outcomes", escape(", ".join(str(o) for o in outcomes))))
    if task.get("required_comment"):
        rows.append(("comment", "required (-c/--comment)"))
    if (task.get("human_task") or {}).get("evidence_required"):
        rows.append(("evidence", "required (--data evidence=...)"))
    rows.append(("created", f"{task['created_at']} ({age(task['created_at'])} ago)"))
    for key, value in rows:
        fields.add_row(key, value)
    console.print(fields)
    if task.get("description"):
        console.print("[bold]description[/]")
        console.print(escape(str(task["description"])), soft_wrap=True)
    for key in ("details", "form_schema"):
        if task.get(key) is not None:
            console.print(f"[bold]{key.replace('_', ' ')}[/]")
            console.print_json(data=task[key])
    decision = task.get("decision")
    if decision:
        by = f"{decision.get('outcome')} by {decision.get('actor')} at {decision.get('at')}"
        console.print(f"[bold]decision[/] {escape(by)}")
        if decision.get("comment"):
            console.print(f"  comment: {escape(str(decision['comment']))}", soft_wrap=True)
        if decision.get("data"):
            console.print_json(data=decision["data"])
    elif task.get("status") == "TIMED_OUT":
        console.print("[bold]decision[/] none: the deadline passed first")
