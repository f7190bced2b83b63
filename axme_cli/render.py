"""Output: Rich for people on stdout, one JSON document (or JSON lines) for scripts.

Data goes to stdout, diagnostics to stderr. Status words are always printed, so nothing
depends on colour.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

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

_out: Console | None = None
_err: Console | None = None


def out() -> Console:
    global _out
    if _out is None:
        from rich.console import Console

        _out = Console(highlight=False)
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


def error_line(message: str) -> None:
    from rich.markup import escape

    err().print(f"[bold red]error:[/] {escape(message)}")


def note(message: str) -> None:
    from rich.markup import escape

    err().print(f"[dim]{escape(message)}[/]")


def status_text(status: str | None) -> str:
    status = status or "?"
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def agent_state_text(state: str | None) -> str:
    state = state or "?"
    return f"[{AGENT_STATE_STYLE.get(state, 'white')}]{state}[/]"


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
    return intent_id[:8]


def intents_table(intents: list[dict[str, Any]]) -> None:
    """ID, status, type, agent (without `agent://`), age; ATTEMPT only once any was retried."""
    from rich.table import Table

    show_attempt = any((i.get("delivery_attempt") or 0) > 1 for i in intents)
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    table.add_column("ID", no_wrap=True, min_width=8)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("TYPE", overflow="ellipsis", min_width=12)
    table.add_column("AGENT", overflow="ellipsis", min_width=12)
    if show_attempt:
        table.add_column("ATTEMPT", justify="right", no_wrap=True)
    table.add_column("AGE", justify="right", no_wrap=True, min_width=3)
    for intent in intents:
        row = [
            short_id(intent["intent_id"]),
            status_text(intent["status"]),
            intent["intent_type"],
            intent["to_agent"].removeprefix("agent://"),
        ]
        if show_attempt:
            row.append(str(intent.get("delivery_attempt") or 0))
        row.append(age(intent.get("created_at")))
        table.add_row(*row)
    out().print(table)


def event_line(event: dict[str, Any]) -> str:
    """One timeline row: `#3 04:20:48.276 intent.canceled CANCELED by alice reason=...`."""
    from rich.markup import escape

    at = parse_time(event.get("at"))
    clock = at.astimezone().strftime("%H:%M:%S.%f")[:-3] if at else "?"
    parts = [
        f"[dim]#{event.get('seq')}[/]",
        f"[dim]{clock}[/]",
        escape(str(event.get("event_type"))),
        status_text(event.get("status")),
    ]
    if event.get("actor"):
        parts.append(f"by {escape(str(event['actor']))}")
    details = event.get("details") or {}
    for key, value in details.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"[dim]{escape(key)}=[/]{escape(text)}")
    return " ".join(parts)


def intent_panel(intent: dict[str, Any], events: list[dict[str, Any]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = out()
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("id", escape(intent["intent_id"])),
        ("status", status_text(intent["status"])),
        ("type", escape(intent["intent_type"])),
        ("to", escape(intent["to_agent"])),
    ]
    for key in ("from_agent", "correlation_id", "idempotency_key", "deadline_at"):
        if intent.get(key):
            rows.append((key.replace("_", " "), escape(str(intent[key]))))
    rows.append(
        ("attempt", f"{intent.get('delivery_attempt', 0)} of {intent['max_delivery_attempts']}")
    )
    rows.append(("created", f"{intent['created_at']} ({age(intent['created_at'])} ago)"))
    rows.append(("updated", intent["updated_at"]))
    if intent.get("pending_reason"):
        rows.append(("waiting", f"[yellow]{escape(intent['pending_reason'])}[/]"))
    for key, value in rows:
        fields.add_row(key, value)
    console.print(fields)
    for key in ("payload", "result", "error"):
        if intent.get(key) is not None:
            console.print(f"[bold]{key}[/]")
            console.print_json(data=intent[key])
    console.print("[bold]timeline[/]")
    for event in events:
        console.print("  " + event_line(event), soft_wrap=True)
