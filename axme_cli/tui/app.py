"""The app: modes for the inbox, intents and agents, and the one live feed they share.

`watch_daemon` holds `GET /v1/watch` open and publishes what changed on signals the screens
subscribe to; when the daemon goes away it says so on every screen and reconnects by itself,
and every screen loads again once the feed is back (nothing is replayed on a reconnect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.signal import Signal

from axme_cli.errors import AxmeError
from axme_cli.tui.agents import AgentsScreen
from axme_cli.tui.inbox import InboxScreen
from axme_cli.tui.intents import IntentsScreen
from axme_cli.tui.source import Source
from axme_cli.tui.widgets import Coalescer, HelpScreen

#: Reconnect delays grow to this many seconds while the daemon stays away.
MAX_RECONNECT_DELAY = 5.0
#: A held feed is renewed after this long (the daemon ends it with `stream.timeout`).
WATCH_SECONDS = 300.0


class AxmeApp(App[None]):
    TITLE = "axme"
    MODES = {"inbox": InboxScreen, "intents": IntentsScreen, "agents": AgentsScreen}
    BINDINGS = [
        Binding("1", "switch_mode('inbox')", "Inbox"),
        Binding("2", "switch_mode('intents')", "Intents"),
        Binding("3", "switch_mode('agents')", "Agents"),
        Binding("question_mark", "help", "Keys", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    #: The connection line every screen shows.
    connection: reactive[str] = reactive("connecting to the daemon…")
    connected: reactive[bool] = reactive(True)

    def __init__(
        self,
        source: Source,
        *,
        start_mode: str | None = None,
        actor: str | None = None,
        clock: Callable[[], datetime] | None = None,
        live: bool = True,
        where: str = "",
    ) -> None:
        super().__init__()
        self.source = source
        self.actor = actor
        self.clock = clock or (lambda: datetime.now(UTC))
        self._start_mode = start_mode
        self._live = live
        self._where = where
        #: Pending tasks, nearest deadline first; `None` until the first load.
        self.tasks: list[dict[str, Any]] | None = None
        self.agents: list[dict[str, Any]] = []
        self.intent_changed: Signal[dict[str, Any]] = Signal(self, "intent_changed")
        self.tasks_changed: Signal[list[dict[str, Any]]] = Signal(self, "tasks_changed")
        self.agents_changed: Signal[list[dict[str, Any]]] = Signal(self, "agents_changed")
        #: Published each time the feed (re)connects: screens load what they show again.
        self.reconnected: Signal[None] = Signal(self, "reconnected")
        self.refresh_tasks = Coalescer(self, self._load_tasks)
        self.refresh_agents = Coalescer(self, self._load_agents, pause=0.5)

    async def on_unmount(self) -> None:
        close = getattr(self.source, "aclose", None)
        if close is not None:
            await close()

    def now(self) -> datetime:
        return self.clock()

    def on_mount(self) -> None:
        self._begin()
        if self._live:
            self.watch_daemon()

    @work(group="start")
    async def _begin(self) -> None:
        """Open the inbox when something waits for a person, else the intents."""
        await self._load_tasks()
        await self._load_agents()
        mode = self._start_mode or ("inbox" if self.tasks else "intents")
        await self.switch_mode(mode)

    @work(exclusive=True, group="watch")
    async def watch_daemon(self) -> None:
        delay = 0.5
        while True:
            try:
                async for name, data in self.source.watch(wait_seconds=WATCH_SECONDS):
                    if name == "watch.ready":
                        delay = 0.5
                        self._set_connection(True, f"live · {self._where}".rstrip(" ·"))
                        self.refresh_tasks()
                        self.refresh_agents()
                        self.reconnected.publish(None)
                    elif name == "intent.changed":
                        self._intent_changed(data)
                    elif name == "agents.changed":
                        self._set_agents(data.get("agents", []))
            except AxmeError as exc:
                self._set_connection(
                    False, f"daemon unreachable, reconnecting in {delay:g}s · {exc}"
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
                self._set_connection(False, "daemon unreachable, reconnecting…")

    def _set_connection(self, up: bool, text: str) -> None:
        self.connected = up
        self.connection = text
        self.mutate_reactive(AxmeApp.connection)  # the bar restyles even if the text is equal

    def _intent_changed(self, intent: dict[str, Any]) -> None:
        self.intent_changed.publish(intent)
        waiting = {t["intent_id"] for t in self.tasks or ()}
        if intent.get("status") == "WAITING" or intent.get("intent_id") in waiting:
            self.refresh_tasks()
        if isinstance(self.screen, AgentsScreen):
            self.refresh_agents()  # deliveries in flight moved; the screen reloads on resume

    async def _load_tasks(self) -> None:
        try:
            tasks = await self.source.list_tasks()
        except AxmeError as exc:
            if self.tasks is None:
                self._set_connection(False, f"daemon unreachable · {exc}")
            return
        if tasks == self.tasks:
            return
        before = None if self.tasks is None else {t["task_id"] for t in self.tasks}
        self.tasks = tasks
        self.tasks_changed.publish(tasks)
        if before is not None:
            new = [t for t in tasks if t["task_id"] not in before]
            if new:
                self.bell()
                first = new[0]
                more = f" (+{len(new) - 1} more)" if len(new) > 1 else ""
                self.notify(
                    f"{first.get('title') or first['task_id']}{more}",
                    title=f"New task from {first.get('to_agent', '?')}",
                )

    async def _load_agents(self) -> None:
        try:
            agents = await self.source.list_agents()
        except AxmeError:
            return
        self._set_agents(agents)

    def _set_agents(self, agents: list[dict[str, Any]]) -> None:
        self.agents = agents
        self.agents_changed.publish(agents)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))
