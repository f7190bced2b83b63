"""The decision dialog: outcome, the task's form as real inputs, and a comment.

The form renders from the task's `form_schema` (strings, enums, numbers, integers,
booleans) and is checked here field by field with the same JSON Schema the daemon applies,
so a mistake is named next to its input; the daemon's answer is still the one that counts,
and its message is shown when it refuses.
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from axme_cli.errors import AxmeError
from axme_cli.protocol import DEFAULT_OUTCOMES, NEGATIVE_OUTCOMES


def outcomes(task: dict[str, Any]) -> list[str]:
    return list(task.get("allowed_outcomes") or DEFAULT_OUTCOMES)


def default_outcome(task: dict[str, Any], approve: bool) -> str:
    """The first allowed outcome that says yes (for `a`) or no (for `r`)."""
    allowed = outcomes(task)
    matching = [o for o in allowed if (o not in NEGATIVE_OUTCOMES) == approve]
    return (matching or allowed)[0]


def form_fields(task: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    """(name, property schema, required) for each field of the task's form, in order."""
    schema = task.get("form_schema") or {}
    props = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    return [
        (name, prop if isinstance(prop, dict) else {}, name in required)
        for name, prop in props.items()
    ]


def field_value(prop: dict[str, Any], widget: Widget) -> tuple[Any, str | None]:
    """The typed value of one input (`None`: left empty), or a message saying what is wrong."""
    if isinstance(widget, Checkbox):
        return widget.value, None
    if isinstance(widget, Select):
        return (None if widget.value is Select.NULL else widget.value), None
    assert isinstance(widget, Input)
    return parse_text(prop, widget.value)


def parse_text(prop: dict[str, Any], text: str) -> tuple[Any, str | None]:
    """Typed text as the schema wants it: whole numbers, numbers, or the text itself."""
    if not text.strip():
        return None, None
    kind = prop.get("type")
    if kind == "integer":
        try:
            return int(text.strip()), None
        except ValueError:
            return None, "must be a whole number"
    if kind == "number":
        try:
            return float(text.strip()), None
        except ValueError:
            return None, "must be a number"
    return text, None


def form_errors(schema: dict[str, Any], data: dict[str, Any]) -> dict[str, str]:
    """Field name ("" for the form as a whole) to the first thing wrong with it."""
    from jsonschema import Draft202012Validator

    errors: dict[str, str] = {}
    for name in schema.get("required") or ():
        if name not in data:
            errors[name] = "required"
    for error in Draft202012Validator(schema).iter_errors(data):
        if error.validator == "required":
            continue
        name = str(error.path[0]) if error.path else ""
        errors.setdefault(name, error.message)
    return errors


class DecisionScreen(ModalScreen[dict[str, Any] | None]):
    """Decide one task; dismissed with the decided task, or `None` when backed out."""

    BINDINGS = [
        Binding("escape", "dismiss_none", "Back"),
        Binding("ctrl+s", "submit", "Submit"),
    ]
    DEFAULT_CSS = """
    DecisionScreen { align: center middle; }
    DecisionScreen > VerticalScroll {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; padding: 0 1; background: $surface;
    }
    DecisionScreen .field-label { margin-top: 1; text-style: bold; }
    DecisionScreen Input, DecisionScreen Select { background: $boost; }
    DecisionScreen .field-error { color: $error; height: auto; }
    DecisionScreen .field-error.empty { display: none; }
    DecisionScreen #error { color: $error; text-style: bold; height: auto; }
    DecisionScreen Horizontal { height: auto; margin-top: 1; }
    DecisionScreen Button { margin-right: 2; }
    """

    def __init__(self, task: dict[str, Any], *, approve: bool) -> None:
        super().__init__()
        self.task_data = task
        self._outcome = default_outcome(task, approve)
        self._fields = form_fields(task)

    def compose(self) -> ComposeResult:
        task = self.task_data
        verb = "Approve" if self._outcome not in NEGATIVE_OUTCOMES else "Reject"
        with VerticalScroll():
            yield Static(f"[b]{verb}[/b]: {_escape(task.get('title') or task['task_id'])}")
            choices = outcomes(task)
            if choices != list(DEFAULT_OUTCOMES):
                yield Label("outcome", classes="field-label")
                yield Select(
                    [(o, o) for o in choices],
                    value=self._outcome,
                    allow_blank=False,
                    id="outcome",
                    compact=True,
                )
            for name, prop, required in self._fields:
                label = prop.get("title") or name
                hint = f" ({_escape(prop['description'])})" if prop.get("description") else ""
                yield Static(
                    f"{_escape(label)}{' *' if required else ''}[dim]{hint}[/]",
                    classes="field-label",
                )
                yield self._input(name, prop)
                yield Static("", classes="field-error empty", id=f"error-{name}")
            needs = "required" if task.get("required_comment") else "optional"
            yield Label(f"comment ({needs})", classes="field-label")
            yield Input(placeholder=f"comment ({needs})", id="comment", compact=True)
            yield Static("", id="error")
            with Horizontal():
                yield Button(f"{verb} (ctrl+s)", variant="primary", id="submit", compact=True)
                yield Button("Back (esc)", id="back", compact=True)

    def on_mount(self) -> None:
        self.query("Input, Select, Checkbox").first().focus()

    @staticmethod
    def _input(name: str, prop: dict[str, Any]) -> Widget:
        wid = f"field-{name}"
        default = prop.get("default")
        if prop.get("type") == "boolean":
            return Checkbox(name, value=bool(default), id=wid, compact=True)
        if isinstance(prop.get("enum"), list):
            options = [(str(v), v) for v in prop["enum"]]
            return Select(
                options, value=default if default in prop["enum"] else Select.NULL, id=wid
            )
        kind = {"integer": "integer", "number": "number"}.get(prop.get("type", ""), "text")
        value = "" if default is None else str(default)
        return Input(
            value=value,
            type=kind,  # type: ignore[arg-type]
            placeholder=prop.get("type", "text"),
            id=wid,
            compact=True,
        )

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#back")
    def _back(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#submit")
    @on(Input.Submitted)
    def action_submit(self) -> None:
        data: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, prop, _ in self._fields:
            value, problem = field_value(prop, self.query_one(f"#field-{name}"))
            if problem:
                errors[name] = problem
            elif value is not None:
                data[name] = value
        schema = self.task_data.get("form_schema")
        if schema:
            for name, message in form_errors(schema, data).items():
                errors.setdefault(name, message)
        comment = self.query_one("#comment", Input).value.strip()
        if self.task_data.get("required_comment") and not comment:
            errors["comment"] = "this task needs a comment"
        self._show_errors(errors)
        if errors:
            return
        outcome = self._outcome
        if self.query("#outcome"):
            outcome = str(self.query_one("#outcome", Select).value)
        self._send(outcome, comment or None, data if self._fields else None)

    def _show_errors(self, errors: dict[str, str]) -> None:
        for name, _, _ in self._fields:
            box = self.query_one(f"#error-{name}", Static)
            message = errors.get(name, "")
            box.update(_escape(message))
            box.set_class(not message, "empty")
        general = [errors[k] for k in ("", "comment") if k in errors]
        if len(errors) > len(general) and not general:
            general = ["some fields need attention"]
        self.query_one("#error", Static).update(_escape("; ".join(general)))

    @work(exclusive=True, group="decide")
    async def _send(self, outcome: str, comment: str | None, data: dict[str, Any] | None) -> None:
        app: Any = self.app
        try:
            decided = await app.source.decide_task(
                self.task_data["task_id"], outcome, comment=comment, data=data, actor=app.actor
            )
        except AxmeError as exc:
            self.query_one("#error", Static).update(_escape(str(exc)))
            return
        self.dismiss(decided)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
