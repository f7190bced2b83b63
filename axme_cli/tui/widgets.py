"""Pieces every screen uses: the connection line, cells, JSON, confirmation and help."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Label, Static

from axme_cli.render import AGENT_STATE_STYLE, STATUS_STYLE

if TYPE_CHECKING:
    from textual.dom import DOMNode
    from textual.worker import Worker

    from axme_cli.tui.app import AxmeApp


class Coalescer:
    """Runs `load` now, and once more after it if asked again meanwhile: a burst of changes
    costs at most two loads, and a steady stream of them cannot starve the view."""

    def __init__(
        self, owner: DOMNode, load: Callable[[], Awaitable[None]], pause: float = 0.1
    ) -> None:
        self._owner = owner
        self._load = load
        self._pause = pause
        self._dirty = False
        self._worker: Worker[None] | None = None

    def __call__(self) -> None:
        self._dirty = True
        if self._worker is None or self._worker.is_finished:
            self._worker = self._owner.run_worker(self._drain(), group="refresh")

    async def _drain(self) -> None:
        while self._dirty:
            self._dirty = False
            await self._load()
            await asyncio.sleep(self._pause)


def fit(text: object, width: int) -> str:
    """`text` cut to `width` cells with an ellipsis, for fixed-width table columns."""
    value = "" if text is None else str(text)
    return value if len(value) <= width else value[: max(0, width - 1)] + "…"


def status_cell(status: str | None) -> Text:
    """The status word, coloured: the word carries the meaning without colour."""
    word = status or "?"
    return Text(word, style=STATUS_STYLE.get(word, ""))


def state_cell(state: str | None) -> Text:
    word = state or "?"
    return Text(word, style=AGENT_STATE_STYLE.get(word, ""))


def json_view(data: Any) -> Syntax:
    """Pretty-printed, highlighted JSON (also readable without colour)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)
    return Syntax(text, "json", theme="ansi_dark", background_color="default", word_wrap=True)


def short_agent(address: str | None) -> str:
    return (address or "").removeprefix("agent://")


class ConnectionBar(Static):
    """One line under the header: live, or why not and what happens next."""

    DEFAULT_CSS = """
    ConnectionBar { height: 1; padding: 0 1; background: $panel; }
    ConnectionBar.down { background: $error 40%; text-style: bold; }
    """

    def on_mount(self) -> None:
        app: AxmeApp = self.app  # type: ignore[assignment]
        self.watch(app, "connection", self._show)

    def _show(self, text: str) -> None:
        app: AxmeApp = self.app  # type: ignore[assignment]
        self.set_class(not app.connected, "down")
        self.update(text)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; `y` or the button confirms, `n` or escape does not."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 60; max-width: 90%; height: auto; border: thick $warning; padding: 1 2;
        background: $surface;
    }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmScreen Button { margin-right: 2; }
    """

    def __init__(self, question: str, confirm: str = "Yes") -> None:
        super().__init__()
        self._question = question
        self._confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._question)
            with Horizontal():
                yield Button(f"{self._confirm} (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


#: Keys that belong to the widgets themselves, shown with every screen's own.
NAVIGATION = [
    ("↑ ↓ pgup pgdn", "move in a list"),
    ("enter", "open the selected row"),
    ("escape", "back (close a dialog)"),
]


class HelpScreen(ModalScreen[None]):
    """Every key of the screen below and of the app, read from their bindings."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 70; max-width: 95%; height: auto; max-height: 90%; border: thick $accent;
        padding: 0 1; background: $surface;
    }
    """

    def __init__(self, below: Screen[Any]) -> None:
        super().__init__()
        self._below = below

    def compose(self) -> ComposeResult:
        table = Text()
        sections = [
            (self._below.title or "This screen", self._below._bindings),
            ("Everywhere", self.app._bindings),
        ]
        for title, bindings in sections:
            table.append(f"{title}\n", style="bold underline")
            grouped: dict[str, tuple[list[str], str]] = {}
            for _key, binding in bindings:
                if binding.description:
                    keys, _ = grouped.setdefault(binding.action, ([], binding.description))
                    keys.append(self.app.get_key_display(binding))
            for names, description in grouped.values():
                table.append(f"  {', '.join(names):<18}", style="bold")
                table.append(f"{description}\n")
            table.append("\n")
        table.append("Moving around\n", style="bold underline")
        for nav_keys, what in NAVIGATION:
            table.append(f"  {nav_keys:<18}", style="bold")
            table.append(f"{what}\n")
        with VerticalScroll():
            yield Static(Text.assemble(("Keys  (escape closes)\n\n", "bold"), table))


class Listing:
    """A screen's table of rows keyed by id: columns that fit the screen's width (fixed ones,
    and flexible ones sharing the rest), and the row under the cursor."""

    def __init__(
        self, screen: Screen[Any], table_id: str, columns: list[tuple[str, str, int | float]]
    ) -> None:
        """`columns`: (key, label, width); a float width is that share of what is left."""
        self._screen = screen
        self._id = table_id
        self._columns = columns
        self.width = 0
        #: The widths of the flexible columns, by key, as last laid out.
        self.flex: dict[str, int] = {}

    @property
    def table(self) -> DataTable[Any]:
        return self._screen.query_one(f"#{self._id}", DataTable)

    def wanted_width(self) -> int:
        return max(40, self._screen.size.width - 2)

    def reset(self, *, force: bool = False) -> None:
        """Clear the rows; lay the columns out again when the width changed (or `force`)."""
        table = self.table
        width = self.wanted_width()
        if not force and width == self.width and table.columns:
            table.clear()
            return
        self.width = width
        table.clear(columns=True)
        fixed = sum(int(w) + 2 for _, _, w in self._columns if isinstance(w, int))
        shares = {key: w for key, _, w in self._columns if isinstance(w, float)}
        room = max(10 * len(shares), width - fixed - 2 * len(shares) - 2)
        self.flex = {key: max(4, int(room * share)) for key, share in shares.items()}
        for key, label, w in self._columns:
            table.add_column(label, key=key, width=self.flex.get(key, int(w)))

    def cursor_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None

    def visible_keys(self) -> list[str]:
        """Keys of the rows in view: what a clock tick needs to touch (a tick that updated
        every row of a long table would hold the event loop for no visible gain)."""
        table = self.table
        first = int(table.scroll_y)
        rows = table.ordered_rows[first : first + max(1, table.size.height)]
        return [str(row.key.value) for row in rows]

    def restore(self, key: str | None) -> None:
        """Put the cursor back on the row it was on, if that row is still there."""
        table = self.table
        if key is not None and key in table.rows:
            table.move_cursor(row=table.get_row_index(key), animate=False)
