"""TUI: is the app still instant with a big store? Keys answered, timed in the app itself.

Fills the daemon with `intents` intents (to an agent that never runs, so they stay queued)
and `tasks` intents waiting on a person, then drives `axme tui` headless through Textual's
Pilot at 160x48 and times each keypress from the key event until its effect is in the app
(the cursor moved, the screen changed), and how late a 1 ms timer fires meanwhile (the
longest the event loop was busy with one thing, data arriving included). Daemon I/O runs in
workers, so both are the UI's own work: the figures to hold against a 60 Hz frame (16.7 ms).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from axme_cli.client import DaemonClient

#: No agent serves it: its intents stay queued, as in a store with a backlog.
NOBODY = "agent://bench/local/nobody"
#: (what a user does, the key, what shows it was handled); each runs `rounds` times.
PRESSES: list[tuple[str, str, str]] = [
    ("move down the inbox", "down", "cursor"),
    ("switch to intents", "2", "IntentsScreen"),
    ("move down the intents", "down", "cursor"),
    ("open an intent", "enter", "IntentScreen"),
    ("back to the list", "escape", "IntentsScreen"),
    ("switch to agents", "3", "AgentsScreen"),
    ("switch to the inbox", "1", "InboxScreen"),
]


def fill(socket: Path, intents: int, tasks: int, tick: Callable[[str, float], None]) -> None:
    """`intents` queued intents and `tasks` waiting on a person, from 8 clients at once."""
    plain = max(0, intents - tasks)

    def create(n: int) -> None:
        with DaemonClient(socket, timeout=60.0) as api:
            for i in range(n, plain + tasks, 8):
                body: dict[str, Any] = {
                    "intent_type": "intent.bench.backlog.v1",
                    "to_agent": NOBODY,
                    "payload": {"n": i},
                }
                if i >= plain:
                    body["human_task"] = {"title": f"Approve batch {i}", "task_type": "approval"}
                api.create_intent(body)
                tick("TUI", 1)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(8)))


class LoopLag:
    """How late a 1 ms timer fires: the longest the event loop was busy with one thing,
    which bounds how long any keypress can wait before the app even sees it."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.samples.append(max(0.0, (time.perf_counter() - start) * 1000 - 1.0))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._probe())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _handled(app: Any, check: str, before: int) -> bool:
    if check == "cursor":
        from textual.widgets import DataTable

        table = app.screen.query(DataTable).first()
        return bool(table.cursor_row != before)
    return type(app.screen).__name__ == check


async def _press_times(socket: Path, rounds: int, tasks: int) -> dict[str, list[float]]:
    from textual import events
    from textual.widgets import DataTable

    from axme_cli.aclient import AsyncDaemonClient
    from axme_cli.tui.app import AxmeApp
    from axme_cli.tui.inbox import InboxScreen

    app = AxmeApp(AsyncDaemonClient(socket), start_mode="inbox")
    times: dict[str, list[float]] = {what: [] for what, _, _ in PRESSES}
    lag = LoopLag()
    async with app.run_test(size=(160, 48)) as pilot:
        deadline = time.monotonic() + 60
        while not (isinstance(app.screen, InboxScreen) and len(app.tasks or ()) >= tasks):
            if time.monotonic() > deadline:
                raise TimeoutError("the inbox did not load its tasks within 60s")
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        lag.start()
        for _ in range(rounds):
            for what, key, check in PRESSES:
                tables = app.screen.query(DataTable)
                before = tables.first().cursor_row if tables else -1
                if check == "cursor" and before >= tables.first().row_count - 1:
                    key = "up"  # at the bottom: the move back up is the same work
                start = time.perf_counter()
                app.post_message(events.Key(key, key if len(key) == 1 else None))
                while not _handled(app, check, before):
                    if time.perf_counter() - start > 10:
                        raise TimeoutError(f"{what}: not handled within 10s")
                    await asyncio.sleep(0)
                times[what].append((time.perf_counter() - start) * 1000)
                await pilot.pause(0.2)  # the screen's loads land, as between real keys
        lag.stop()
    times["event loop busy (lag)"] = lag.samples
    return times


def measure(socket: Path, rounds: int) -> dict[str, list[float]]:
    """Milliseconds per keypress, by what the key does."""
    with DaemonClient(socket) as api:
        tasks = len(api.list_tasks(limit=1000))
    return asyncio.run(_press_times(socket, rounds, tasks))
