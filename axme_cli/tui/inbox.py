"""The inbox: what waits for a person now, and one task with everything needed to decide it."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from axme_cli import render
from axme_cli.errors import AxmeError
from axme_cli.tui.decide import DecisionScreen
from axme_cli.tui.widgets import ConnectionBar, Listing, fit, json_view, short_agent

#: Columns (key, label, width); a float is a share of what the fixed ones leave.
_COLUMNS: list[tuple[str, str, int | float]] = [
    ("title", "Title", 0.5),
    ("agent", "Agent", 0.25),
    ("type", "Intent type", 0.25),
    ("age", "Age", 4),
    ("due", "Due", 8),
    ("reminders", "Rem", 3),
]


class DecideMixin:
    """`a` and `r` on a screen that knows which task is meant."""

    def current_task(self) -> dict[str, Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must define current_task()")

    def action_decide(self, approve: bool) -> None:
        task = self.current_task()
        screen: Screen[Any] = self  # type: ignore[assignment]
        if task is None:
            screen.notify("no task is selected", severity="warning")
            return

        def decided(result: dict[str, Any] | None) -> None:
            if result is None:
                return
            outcome = (result.get("decision") or {}).get("outcome", "decided")
            screen.notify(f"{outcome}: {result.get('title', '')}", title="Decision recorded")
            screen.app.refresh_tasks()  # type: ignore[attr-defined]
            self.after_decision()

        screen.app.push_screen(DecisionScreen(task, approve=approve), decided)

    def after_decision(self) -> None:
        """What the screen does once its task is decided."""


class InboxScreen(DecideMixin, Screen[None]):
    TITLE = "Inbox"
    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("a", "decide(True)", "Approve"),
        Binding("r", "decide(False)", "Reject"),
    ]
    DEFAULT_CSS = """
    InboxScreen #empty { padding: 1 2; color: $text-muted; }
    InboxScreen #tasks { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._tasks: dict[str, dict[str, Any]] = {}
        self._times: dict[str, tuple[str, str]] = {}
        self._shown: list[dict[str, Any]] | None = None
        self.listing = Listing(self, "tasks", _COLUMNS)

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBar()
        yield DataTable(cursor_type="row", id="tasks")
        yield Static("", id="empty")
        yield Footer()

    def on_mount(self) -> None:
        app: Any = self.app
        app.tasks_changed.subscribe(self, self._show)
        self._show(app.tasks)
        self.set_interval(5, self._tick)
        self.watch(self.listing.table, "scroll_y", lambda _: self._tick(), init=False)

    def _tick(self) -> None:
        """Ages and time left move on without the daemon saying anything."""
        table = self.listing.table
        app: Any = self.app
        now = app.now()
        for task_id in self.listing.visible_keys():
            t = self._tasks[task_id]
            cells = (render.age(t.get("created_at"), now), render.due(t.get("deadline_at"), now))
            if self._times.get(task_id) != cells:  # only what a user would see change
                self._times[task_id] = cells
                table.update_cell(task_id, "age", cells[0])
                table.update_cell(task_id, "due", cells[1])

    def on_screen_resume(self) -> None:
        self._show(self.app.tasks)  # type: ignore[attr-defined]

    def on_resize(self) -> None:
        if self.listing.wanted_width() != self.listing.width:
            self._show(self.app.tasks, rebuild=True)  # type: ignore[attr-defined]

    def _show(self, tasks: list[dict[str, Any]] | None, rebuild: bool = False) -> None:
        table = self.listing.table
        empty = self.query_one("#empty", Static)
        if tasks is None:
            empty.update("loading…")
            return
        listing = self.listing
        if not rebuild and listing.wanted_width() == listing.width and tasks == self._shown:
            return  # nothing a user would see changed: keep the table (and the loop) idle
        self._shown = tasks
        app: Any = self.app
        now = app.now()
        keep = listing.cursor_key()
        listing.reset(force=rebuild)
        flex = listing.flex
        self._tasks = {t["task_id"]: t for t in tasks}
        self._times = {
            t["task_id"]: (
                render.age(t.get("created_at"), now),
                render.due(t.get("deadline_at"), now),
            )
            for t in tasks
        }
        for t in tasks:
            age, due = self._times[t["task_id"]]
            table.add_row(
                fit(t.get("title") or "(untitled)", flex["title"]),
                fit(short_agent(t.get("to_agent")), flex["agent"]),
                fit(t.get("intent_type"), flex["type"]),
                age,
                due,
                str(t.get("reminders_sent") or 0),
                key=t["task_id"],
            )
        listing.restore(keep)
        count = len(tasks)
        empty.update(
            "Nothing waits for a decision." if not count else f"{count} pending · enter opens one"
        )
        self.sub_title = f"{count} pending"

    def current_task(self) -> dict[str, Any] | None:
        key = self.listing.cursor_key()
        return self._tasks.get(key) if key else None

    def action_open(self) -> None:
        task = self.current_task()
        if task is not None:
            self.app.push_screen(TaskScreen(task))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()


class TaskScreen(DecideMixin, Screen[None]):
    """One task and its intent: details, payload, steps done, timeline."""

    TITLE = "Task"
    BINDINGS = [
        Binding("a", "decide(True)", "Approve"),
        Binding("r", "decide(False)", "Reject"),
        Binding("escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    TaskScreen VerticalScroll { padding: 0 1; }
    TaskScreen .heading { text-style: bold; margin-top: 1; color: $accent; }
    """

    def __init__(self, task: dict[str, Any]) -> None:
        super().__init__()
        self.task_data = task

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBar()
        with VerticalScroll(id="body"):
            yield Static(self._summary(), id="summary")
            yield Static("Task details", classes="heading")
            details = self.task_data.get("details")
            yield Static("none" if details is None else json_view(details), id="details")
            yield Static("Intent payload", classes="heading")
            yield Static("loading…", id="payload")
            yield Static("Steps done", classes="heading")
            yield Static("loading…", id="steps")
            yield Static("Timeline", classes="heading")
            yield Static("loading…", id="timeline")
        yield Footer()

    def _summary(self) -> RenderableType:
        t = self.task_data
        app: Any = self.app
        now = app.now()
        lines = [
            Text.from_markup(f"[b]{escape(t.get('title') or '(untitled)')}[/b]"),
        ]
        if t.get("description"):
            lines.append(Text(str(t["description"])))
        facts = [
            ("task", f"{t['task_id']} ({t.get('task_type', 'approval')})"),
            ("intent", f"{t['intent_id']} {t.get('intent_type', '')}"),
            ("agent", str(t.get("to_agent", ""))),
            ("asked", f"{render.age(t.get('created_at'), now)} ago"),
            ("deadline", render.due(t.get("deadline_at"), now)),
            ("reminders", str(t.get("reminders_sent") or 0)),
            ("outcomes", ", ".join(t.get("allowed_outcomes") or ("approved", "rejected"))),
        ]
        if t.get("required_comment"):
            facts.append(("comment", "required"))
        if t.get("form_schema"):
            names = list((t["form_schema"].get("properties") or {}).keys())
            facts.append(("form", ", ".join(names) or "(schema)"))
        for key, value in facts:
            lines.append(Text.assemble((f"{key:<10}", "bold"), value))
        return Group(*lines)

    def on_mount(self) -> None:
        self.sub_title = short_agent(self.task_data.get("to_agent"))
        app: Any = self.app
        app.tasks_changed.subscribe(self, self._still_pending)
        self._load()

    def _still_pending(self, tasks: list[dict[str, Any]]) -> None:
        """Someone else decided it (or it timed out): say so rather than offer a stale form."""
        if self.is_current and all(t["task_id"] != self.task_data["task_id"] for t in tasks):
            self.notify(
                f"{self.task_data.get('title') or 'this task'} was decided elsewhere "
                "or timed out; see the intent's timeline",
                title="No longer pending",
                severity="warning",
            )
            self.dismiss()

    @work(exclusive=True, group="load")
    async def _load(self) -> None:
        app: Any = self.app
        intent_id = self.task_data["intent_id"]
        try:
            intent = await app.source.get_intent(intent_id)
            steps = await app.source.list_steps(intent_id)
            events = await app.source.list_events(intent_id)
        except AxmeError as exc:
            self.query_one("#payload", Static).update(f"[red]{escape(str(exc))}[/]")
            return
        self.query_one("#payload", Static).update(json_view(intent.get("payload")))
        self.query_one("#steps", Static).update(steps_view(steps))
        self.query_one("#timeline", Static).update(timeline_view(events))

    def current_task(self) -> dict[str, Any] | None:
        return self.task_data

    def after_decision(self) -> None:
        self.dismiss()

    def action_back(self) -> None:
        self.dismiss()


def steps_view(steps: list[dict[str, Any]]) -> RenderableType:
    if not steps:
        return Text("none yet", style="dim")
    import json

    lines = []
    for s in steps:
        error = s.get("error")
        if error:  # the step raised, and the handler went on
            result = f"raised {error.get('type')}: {error.get('message')}"
        else:
            result = json.dumps(s.get("result"), ensure_ascii=False)
        undo = ""
        if s.get("compensate"):  # a step of a saga: its compensation, and what became of it
            done = (s.get("compensation") or {}).get("outcome", "to run if it fails")
            undo = f"  undo {s['compensate']}: {done}"
        lines.append(
            Text.assemble(
                (f"{s.get('ordinal')}. ", "dim"),
                (str(s.get("key")), "bold"),
                "  ",
                fit(result, 200),
                (f"  (attempt {s.get('attempt')})", "dim"),
                (undo, "yellow"),
            )
        )
    return Group(*lines)


def timeline_view(events: list[dict[str, Any]]) -> RenderableType:
    if not events:
        return Text("no events", style="dim")
    return Group(*(Text.from_markup(render.event_line(e)) for e in events))
