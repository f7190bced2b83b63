"""Driving the TUI as a user would, against a real daemon: keys in, screen contents out."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from axme_cli.aclient import AsyncDaemonClient
from axme_cli.tui.app import AxmeApp
from tests.daemon import Daemon

SIZE = (120, 36)


class CountingApp(AxmeApp):
    """The real app, counting bells instead of ringing the test runner's terminal."""

    bells = 0

    def bell(self) -> None:
        self.bells += 1


def app_for(daemon: Daemon, **options: Any) -> CountingApp:
    return CountingApp(AsyncDaemonClient(daemon.socket), where=str(daemon.socket), **options)


async def until(
    pilot: Pilot[Any], condition: Callable[[], Any], *, timeout: float = 15.0, what: str = ""
) -> Any:
    """Let the app run until `condition()` is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await pilot.pause(0.05)


def cell(pilot: Pilot[Any], table_id: str, row: str, column: str) -> str:
    """The text a user sees in one cell of a table on the current screen."""
    table = pilot.app.screen.query_one(f"#{table_id}", DataTable)
    return str(table.get_cell(row, column))


def rows(pilot: Pilot[Any], table_id: str) -> list[str]:
    table = pilot.app.screen.query_one(f"#{table_id}", DataTable)
    return [str(key.value) for key in table.rows]


def text_of(pilot: Pilot[Any], selector: str) -> str:
    """What a Static shows, as plain text."""
    from rich.console import Console
    from rich.text import Text
    from textual.widgets import Static

    content = pilot.app.screen.query_one(selector, Static).content
    if isinstance(content, str):
        content = Text.from_markup(content)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(content)
    return console.export_text()


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*[{" ": "space"}.get(c, c) for c in text])
