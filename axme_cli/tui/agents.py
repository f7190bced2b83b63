"""Agents: each one's processes, and a log pane that follows the selected agent's output."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, RichLog, Static

from axme_cli import render
from axme_cli.errors import AxmeError
from axme_cli.logtail import last_lines
from axme_cli.tui.widgets import ConnectionBar, Listing, fit, short_agent, state_cell

_COLUMNS: list[tuple[str, str, int | float]] = [
    ("agent", "Agent", 0.5),
    ("state", "State", 8),
    ("pid", "PID", 7),
    ("restarts", "Rst", 3),
    ("uptime", "Up", 6),
    ("flight", "Busy", 4),
    ("exit", "Last exit", 0.5),
]
#: Lines of an agent's log shown when it is selected; the pane keeps this many.
LOG_LINES = 200


def uptime(seconds: float | None) -> str:
    """`13s`, `1m13s`, `2h05m`, `3d04h`: two units at most, so the column stays narrow."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _shortest_uptime(agent: dict[str, Any]) -> float | None:
    """The youngest live replica's uptime: the one a restart or crash reset last."""
    replicas = agent.get("replicas") or ()
    ups = [r["uptime_seconds"] for r in replicas if r.get("uptime_seconds") is not None]
    return min(ups) if ups else None


class AgentsScreen(Screen[None]):
    TITLE = "Agents"
    BINDINGS = [Binding("ctrl+r", "restart", "Restart")]
    DEFAULT_CSS = """
    AgentsScreen #agents { height: auto; max-height: 50%; }
    AgentsScreen #log-title { height: 1; padding: 0 1; background: $panel; margin-top: 1; }
    AgentsScreen #log { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._agents: dict[str, dict[str, Any]] = {}
        self.listing = Listing(self, "agents", _COLUMNS)
        self._following: str | None = None
        self._seen_at = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBar()
        yield DataTable(cursor_type="row", id="agents")
        yield Static("log", id="log-title")
        yield RichLog(max_lines=LOG_LINES * 5, wrap=False, id="log", auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        app: Any = self.app
        app.agents_changed.subscribe(self, self._show)
        self._show(app.agents)
        self.query_one("#agents", DataTable).focus()
        self.set_interval(1, self._tick)

    def on_screen_resume(self) -> None:
        self.app.refresh_agents()  # type: ignore[attr-defined]

    def on_resize(self) -> None:
        if self.listing.wanted_width() != self.listing.width:
            self._show(list(self._agents.values()))

    def _show(self, agents: list[dict[str, Any]]) -> None:
        table = self.listing.table
        keep = self.listing.cursor_key()
        self.listing.reset()
        app: Any = self.app
        self._seen_at = app.now().timestamp()
        self._agents = {a["address"]: a for a in agents}
        for agent in agents:
            table.add_row(*self._cells(agent, 0.0), key=agent["address"])
        if not agents:
            self.query_one("#log-title", Static).update(
                "no agents registered · declare them in axme.toml,"
                " or: axme agents add ADDRESS -- COMMAND"
            )
        self.listing.restore(keep)
        self.sub_title = f"{len(agents)} agent{'s' if len(agents) != 1 else ''}"
        self._follow_selected()

    def _cells(self, agent: dict[str, Any], elapsed: float) -> tuple[Any, ...]:
        pids, restarts, last_exit = render.replica_summary(agent)
        up = _shortest_uptime(agent)
        return (
            fit(short_agent(agent["address"]), self.listing.flex["agent"]),
            state_cell(agent.get("state")),
            fit(pids, 7),
            restarts,
            uptime(None if up is None else up + elapsed),
            str(agent.get("in_flight", 0)),
            fit(last_exit, self.listing.flex["exit"]),
        )

    def _tick(self) -> None:
        """Uptimes move on between changes; nothing is asked of the daemon for that."""
        table = self.query_one("#agents", DataTable)
        app: Any = self.app
        elapsed = app.now().timestamp() - self._seen_at
        for address, agent in self._agents.items():
            up = _shortest_uptime(agent)
            table.update_cell(address, "uptime", uptime(None if up is None else up + elapsed))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._follow_selected()

    def _follow_selected(self) -> None:
        address = self.listing.cursor_key()
        if address is None or address == self._following:
            return
        agent = self._agents.get(address)
        if agent is None:
            return
        self._following = address
        self.query_one("#log-title", Static).update(
            Text.assemble(
                ("log ", "bold"), address, ("  " + Path(agent.get("log_path") or "").name, "dim")
            )
        )
        self._tail(Path(agent.get("log_path") or ""))

    @work(exclusive=True, group="log")
    async def _tail(self, path: Path) -> None:
        """The last lines of the agent's log, then each new line; across rotations too."""
        log = self.query_one("#log", RichLog)
        log.clear()
        offset = 0
        try:
            lines, offset = await asyncio.to_thread(last_lines, path, LOG_LINES)
        except OSError:
            log.write(Text("(no output yet)", style="dim"))
        else:
            for line in lines:
                log.write(line)
        while True:
            await asyncio.sleep(0.25)
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            if size < offset:  # rotated: the new file starts from scratch
                offset = 0
            if size == offset:
                continue
            chunk, offset = await asyncio.to_thread(_read_from, path, offset)
            for line in chunk.splitlines():
                log.write(line)

    def action_restart(self) -> None:
        address = self.listing.cursor_key()
        if address is None:
            self.notify("no agent is selected", severity="warning")
            return
        self._restart(address)

    @work(group="act")
    async def _restart(self, address: str) -> None:
        app: Any = self.app
        try:
            await app.source.restart_agent(address)
        except AxmeError as exc:
            self.notify(str(exc), title="Not restarted", severity="error")
            return
        self.notify(f"restarting {address}")
        app.refresh_agents()


def _read_from(path: Path, offset: int) -> tuple[str, int]:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(1024 * 1024)
    return data.decode(errors="replace"), offset + len(data)
