"""Intents: a live table with filters, and one intent whose timeline grows as it runs."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Select, Static

from axme_cli import render
from axme_cli.errors import AxmeError
from axme_cli.protocol import FINAL_STATUSES, IntentStatus
from axme_cli.tui.inbox import DecideMixin, steps_view, timeline_view
from axme_cli.tui.widgets import (
    Coalescer,
    ConfirmScreen,
    ConnectionBar,
    Listing,
    fit,
    json_view,
    short_agent,
    status_cell,
)

#: The newest this many intents matching the filters are shown; filters narrow the rest.
PAGE = 200
_COLUMNS: list[tuple[str, str, int | float]] = [
    ("id", "ID", 8),
    ("status", "Status", 12),
    ("agent", "Agent", 0.4),
    ("type", "Intent type", 0.6),
    ("attempt", "Try", 3),
    ("age", "Age", 4),
]


def _matches(intent: dict[str, Any], status: str | None, agent: str | None, text: str) -> bool:
    if status and intent.get("status") != status:
        return False
    if agent and intent.get("to_agent") != agent:
        return False
    if text:
        t = text.lower()
        return (
            str(intent.get("intent_id", "")).startswith(t)
            or t in str(intent.get("intent_type", "")).lower()
            or t in str(intent.get("to_agent", "")).lower()
        )
    return True


class IntentActions:
    """`c` cancel (after a confirmation) and `R` retry, for the intent a screen points at."""

    def current_intent(self) -> dict[str, Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must define current_intent()")

    def action_cancel_intent(self) -> None:
        screen: Screen[Any] = self  # type: ignore[assignment]
        intent = self.current_intent()
        if intent is None:
            return
        if intent.get("status") in {s.value for s in FINAL_STATUSES}:
            screen.notify(
                f"{intent['intent_id'][:8]} is already {intent['status']}", severity="warning"
            )
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel(intent["intent_id"])

        question = (
            f"Cancel intent {intent['intent_id'][:8]} ({intent.get('intent_type')}, "
            f"{intent.get('status')})? A running handler stops at its next step, and the "
            "steps it recorded with a compensation are undone."
        )
        screen.app.push_screen(ConfirmScreen(question, "Cancel intent"), answered)

    def _cancel(self, intent_id: str) -> None:
        screen: Screen[Any] = self  # type: ignore[assignment]

        async def run() -> None:
            app: Any = screen.app
            try:
                answer = await app.source.cancel_intent(intent_id, reason="canceled in axme tui")
            except AxmeError as exc:
                screen.notify(str(exc), title="Not canceled", severity="error")
                return
            saga = (answer.get("intent") or {}).get("compensation")
            said = render.saga_text(saga) if saga else "canceled"
            screen.notify(f"{intent_id[:8]} {said}")

        screen.run_worker(run(), group="act")

    def action_retry_intent(self) -> None:
        screen: Screen[Any] = self  # type: ignore[assignment]
        intent = self.current_intent()
        if intent is None:
            return
        intent_id = intent["intent_id"]

        async def run() -> None:
            app: Any = screen.app
            try:
                await app.source.retry_intent(intent_id)
            except AxmeError as exc:
                screen.notify(str(exc), title="Not retried", severity="error")
                return
            screen.notify(f"{intent_id[:8]} submitted again")

        screen.run_worker(run(), group="act")


class IntentsScreen(IntentActions, Screen[None]):
    TITLE = "Intents"
    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("c", "cancel_intent", "Cancel"),
        Binding("R", "retry_intent", "Retry", key_display="R"),
        Binding("slash", "filter", "Filter", key_display="/"),
    ]
    DEFAULT_CSS = """
    IntentsScreen #filters { height: 1; margin-bottom: 1; }
    IntentsScreen #status { width: 20; }
    IntentsScreen #agent { width: 30; }
    IntentsScreen #text { width: 1fr; }
    IntentsScreen #intents { height: 1fr; }
    IntentsScreen #count { height: 1; padding: 0 1; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[str, dict[str, Any]] = {}
        self._ages: dict[str, str] = {}
        self.listing = Listing(self, "intents", _COLUMNS)
        self.reload = Coalescer(self, self._load, pause=0.25)

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBar()
        with Horizontal(id="filters"):
            yield Select(
                [(s.value, s.value) for s in IntentStatus],
                prompt="any status",
                id="status",
                compact=True,
            )
            yield Select([], prompt="any agent", id="agent", compact=True)
            yield Input(placeholder="id, type or agent  (/)", id="text", compact=True)
        yield DataTable(cursor_type="row", id="intents")
        yield Static("loading…", id="count")
        yield Footer()

    def on_mount(self) -> None:
        app: Any = self.app
        app.intent_changed.subscribe(self, self._changed)
        app.reconnected.subscribe(self, lambda _: self.reload())
        app.agents_changed.subscribe(self, self._agents)
        self._agents(app.agents)
        self.query_one("#intents", DataTable).focus()
        self.reload()
        self.set_interval(5, self._tick)
        self.watch(self.listing.table, "scroll_y", lambda _: self._tick(), init=False)

    def on_screen_resume(self) -> None:
        self.reload()

    def on_resize(self) -> None:
        if self.listing.wanted_width() != self.listing.width:
            self._render_rows(list(self._rows.values()), force=True)

    # -- filters -------------------------------------------------------------------

    def _filters(self) -> tuple[str | None, str | None, str]:
        status = self.query_one("#status", Select).value
        agent = self.query_one("#agent", Select).value
        text = self.query_one("#text", Input).value.strip()
        return (
            None if status is Select.NULL else str(status),
            None if agent is Select.NULL else str(agent),
            text,
        )

    def _agents(self, agents: list[dict[str, Any]]) -> None:
        select = self.query_one("#agent", Select)
        addresses = sorted(a["address"] for a in agents)
        current = select.value
        if [o for o in addresses] != getattr(self, "_addresses", None):
            self._addresses = addresses
            select.set_options([(short_agent(a), a) for a in addresses])
            if current in addresses:
                select.value = current

    @on(Input.Changed, "#text")
    def _filter_changed(self) -> None:
        self.reload()

    @on(Select.Changed)
    @on(Input.Submitted, "#text")
    def _filter_done(self, event: Select.Changed | Input.Submitted) -> None:
        """A filter chosen or typed: back to the list it narrowed (unless the change came
        from new agents showing up while the user is elsewhere)."""
        self.reload()
        widget = event.select if isinstance(event, Select.Changed) else event.input
        if widget.has_focus_within:
            # After the refresh: the Select takes the focus back from its overlay first.
            self.call_after_refresh(self.query_one("#intents", DataTable).focus)

    def action_filter(self) -> None:
        self.query_one("#text", Input).focus()

    # -- rows ----------------------------------------------------------------------

    async def _load(self) -> None:
        status, agent, text = self._filters()
        app: Any = self.app
        try:
            intents = await app.source.list_intents(
                status=status, to_agent=agent, text=text or None, limit=PAGE
            )
        except AxmeError as exc:
            self.query_one("#count", Static).update(f"[red]{escape(str(exc))}[/]")
            return
        try:
            self._render_rows(intents)
        except NoMatches:  # the screen was left (or torn down) while the page loaded
            return

    def _render_rows(self, intents: list[dict[str, Any]], force: bool = False) -> None:
        listing = self.listing
        table = listing.table
        same_width = listing.wanted_width() == listing.width
        if not force and same_width and intents == list(self._rows.values()):
            self._count()
            return  # the same rows: keep the table (and the loop) idle
        keep = listing.cursor_key()
        listing.reset(force=force)
        self._rows = {}
        for intent in intents:
            self._rows[intent["intent_id"]] = intent
            table.add_row(*self._cells(intent), key=intent["intent_id"])
        listing.restore(keep)
        self._count()

    def _cells(self, intent: dict[str, Any]) -> tuple[Any, ...]:
        app: Any = self.app
        age = self._ages[intent["intent_id"]] = render.age(intent.get("created_at"), app.now())
        return (
            intent["intent_id"][:8],
            status_cell(intent.get("status")),
            fit(short_agent(intent.get("to_agent")), self.listing.flex["agent"]),
            fit(intent.get("intent_type"), self.listing.flex["type"]),
            str(intent.get("delivery_attempt") or 0),
            age,
        )

    def _count(self) -> None:
        shown = len(self._rows)
        status, agent, text = self._filters()
        narrowed = any((status, agent, text))
        words = f"{shown} intent{'s' if shown != 1 else ''}"
        if shown >= PAGE:
            words = f"the newest {PAGE}" + (" matching" if narrowed else "") + " · filter to narrow"
        elif narrowed:
            words += " matching"
        self.query_one("#count", Static).update(words)
        self.sub_title = words.split(" · ")[0]

    def _changed(self, intent: dict[str, Any]) -> None:
        """An intent changed: update its row in place, drop it, or reload for a new one."""
        table = self.query_one("#intents", DataTable)
        intent_id = intent["intent_id"]
        fits = _matches(intent, *self._filters())
        if intent_id in self._rows:
            if not fits:
                del self._rows[intent_id]
                table.remove_row(intent_id)
                self._count()
                return
            self._rows[intent_id] = intent
            for (key, _, _), cell in zip(_COLUMNS, self._cells(intent), strict=True):
                table.update_cell(intent_id, key, cell)
        elif fits:
            self.reload()

    def _tick(self) -> None:
        """Ages move on without the daemon saying anything."""
        table = self.listing.table
        app: Any = self.app
        now = app.now()
        for intent_id in self.listing.visible_keys():
            age = render.age(self._rows[intent_id].get("created_at"), now)
            if self._ages.get(intent_id) != age:  # only what a user would see change
                self._ages[intent_id] = age
                table.update_cell(intent_id, "age", age)

    def current_intent(self) -> dict[str, Any] | None:
        key = self.listing.cursor_key()
        return self._rows.get(key) if key else None

    def action_open(self) -> None:
        intent = self.current_intent()
        if intent is not None:
            self.app.push_screen(IntentScreen(intent["intent_id"]))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()


class IntentScreen(DecideMixin, IntentActions, Screen[None]):
    """One intent: fields, progress, payload, steps, result and a timeline that follows;
    `a`/`r` decide the task it waits for when it waits for a person."""

    TITLE = "Intent"
    BINDINGS = [
        Binding("a", "decide(True)", "Approve"),
        Binding("r", "decide(False)", "Reject"),
        Binding("c", "cancel_intent", "Cancel"),
        Binding("R", "retry_intent", "Retry", key_display="R"),
        Binding("escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    IntentScreen VerticalScroll { padding: 0 1; }
    IntentScreen .heading { text-style: bold; margin-top: 1; color: $accent; }
    """

    def __init__(self, intent_id: str) -> None:
        super().__init__()
        self.intent_id = intent_id
        self.intent: dict[str, Any] | None = None
        self._events: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBar()
        with VerticalScroll():
            yield Static("loading…", id="fields")
            yield Static("Payload", classes="heading")
            yield Static("", id="payload")
            yield Static("Steps done", classes="heading")
            yield Static("", id="steps")
            yield Static("Outcome", classes="heading")
            yield Static("", id="outcome")
            yield Static("Timeline", classes="heading")
            yield Static("", id="timeline")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.intent_id[:8]
        app: Any = self.app
        app.tasks_changed.subscribe(self, self._tasks_changed)
        self._follow()

    def current_intent(self) -> dict[str, Any] | None:
        return self.intent

    def current_task(self) -> dict[str, Any] | None:
        """The task this intent waits for a person to decide, if it does."""
        app: Any = self.app
        return next((t for t in app.tasks or () if t["intent_id"] == self.intent_id), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Approve and reject only while a task waits: the keys leave the footer after."""
        if action == "decide":
            return self.current_task() is not None
        return True

    def _tasks_changed(self, _: list[dict[str, Any]]) -> None:
        self.refresh_bindings()
        if self.intent is not None:
            self.query_one("#fields", Static).update(self._fields())

    def action_back(self) -> None:
        self.dismiss()

    @work(exclusive=True, group="follow")
    async def _follow(self) -> None:
        """Load, then follow the intent's own event stream until it is final; across a
        daemon restart it waits, loads again and carries on from the last event seen."""
        app: Any = self.app
        while True:
            try:
                await self._load()
                if self.intent and self.intent.get("status") in {s.value for s in FINAL_STATUSES}:
                    return
                since = self._events[-1]["seq"] if self._events else 0
                async for name, data in app.source.stream_events(
                    self.intent_id, since=since, wait_seconds=300
                ):
                    if name == "stream.timeout":
                        break
                    self._events.append(data)
                    self._show_timeline()
                    if data.get("status") in {s.value for s in FINAL_STATUSES}:
                        break  # load the outcome (result or error) again
                    self._status_from(data)
                    if self.intent and self.intent.get("scenario"):  # its step moved
                        self.intent = await app.source.get_intent(self.intent_id)
                        self.query_one("#fields", Static).update(self._fields())
                    if data.get("event_type") in STEP_EVENTS:
                        steps = await app.source.list_steps(self.intent_id)
                        self.query_one("#steps", Static).update(steps_view(steps))
            except AxmeError:
                await asyncio.sleep(1.0)

    async def _load(self) -> None:
        app: Any = self.app
        self.intent = await app.source.get_intent(self.intent_id)
        steps = await app.source.list_steps(self.intent_id)
        self._events = await app.source.list_events(self.intent_id)
        intent = self.intent
        self.query_one("#fields", Static).update(self._fields())
        self.query_one("#payload", Static).update(json_view(intent.get("payload")))
        self.query_one("#steps", Static).update(steps_view(steps))
        outcome: RenderableType = Text("not final yet", style="dim")
        if intent.get("error") is not None:
            outcome = Group(Text("error", style="bold red"), error_view(intent["error"]))
        elif intent.get("result") is not None:
            outcome = Group(Text("result", style="bold green"), json_view(intent["result"]))
        self.query_one("#outcome", Static).update(outcome)
        self._show_timeline()

    def _status_from(self, event: dict[str, Any]) -> None:
        if self.intent is not None:
            self.intent["status"] = event.get("status", self.intent.get("status"))
            self.query_one("#fields", Static).update(self._fields())

    def _fields(self) -> RenderableType:
        i = self.intent or {}
        app: Any = self.app
        rows = [
            ("id", Text(i.get("intent_id", ""))),
            ("status", status_cell(i.get("status"))),
            ("type", Text(str(i.get("intent_type", "")))),
            ("agent", Text(str(i.get("to_agent", "")))),
            (
                "attempt",
                Text(f"{i.get('delivery_attempt', 0)} of {i.get('max_delivery_attempts', '?')}"),
            ),
            ("created", Text(f"{render.age(i.get('created_at'), app.now())} ago")),
        ]
        if i.get("scenario"):
            line = render.scenario_line(i["scenario"], i.get("status"))
            rows.append(("scenario", Text(line, style="cyan")))
        if i.get("pending_reason"):
            rows.append(("waiting", Text(str(i["pending_reason"]), style="magenta")))
        if i.get("compensation"):
            rows.append(("saga", Text(render.saga_text(i["compensation"]), style="yellow")))
        task = self.current_task()
        if task is not None:
            title = Text(str(task.get("title") or "(untitled)"), style="bold magenta")
            rows.append(("task", Text.assemble(title, ("  a approve · r reject", "dim"))))
        progress = [e for e in self._events if e.get("event_type") == "intent.progress"]
        if progress:
            details = progress[-1].get("details") or {}
            rows.append(("progress", Text(fit(details.get("message", ""), 200), style="yellow")))
        return Group(*(Text.assemble((f"{k:<10}", "bold"), v) for k, v in rows))

    def _show_timeline(self) -> None:
        self.query_one("#timeline", Static).update(timeline_view(self._events))
        self.query_one("#fields", Static).update(self._fields())


#: Events after which the steps view is read again (a record or its compensation).
STEP_EVENTS = ("intent.step_completed", "intent.step_failed", "intent.compensation")


def error_view(error: Any) -> RenderableType:
    """An intent's error: its headline, then its traceback as text (as `axme show` prints it)."""
    parts = render.error_parts(error)
    if parts is None:
        return json_view(error)
    headline, trace, rest = parts
    shown: list[RenderableType] = [Text(headline, style="red")]
    if trace:
        shown.append(Text(trace, style="dim"))
    if rest:
        shown.append(json_view(rest))
    return Group(*shown)
