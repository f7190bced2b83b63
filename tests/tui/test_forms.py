"""The decision form's rules, without a screen: outcomes, typed values, schema messages."""

from __future__ import annotations

from typing import Any

from axme_cli.tui.agents import uptime
from axme_cli.tui.decide import default_outcome, form_errors, form_fields, parse_text
from axme_cli.tui.widgets import fit

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ticket": {"type": "string", "pattern": "^OPS-[0-9]+$"},
        "replicas": {"type": "integer", "minimum": 1},
        "ratio": {"type": "number"},
    },
    "required": ["ticket"],
}


def test_a_and_r_pick_the_first_yes_and_the_first_no_the_task_allows() -> None:
    assert default_outcome({}, approve=True) == "approved"
    assert default_outcome({}, approve=False) == "rejected"
    custom = {"allowed_outcomes": ["ship", "changes_requested", "hold"]}
    assert default_outcome(custom, approve=True) == "ship"
    assert default_outcome(custom, approve=False) == "changes_requested"
    only_yes = {"allowed_outcomes": ["done"]}
    assert default_outcome(only_yes, approve=False) == "done"


def test_fields_come_in_schema_order_with_required_marked() -> None:
    fields = form_fields({"form_schema": SCHEMA})
    assert [(name, required) for name, _, required in fields] == [
        ("ticket", True),
        ("replicas", False),
        ("ratio", False),
    ]
    assert form_fields({}) == []


def test_values_are_typed_and_bad_numbers_are_named() -> None:
    assert parse_text({"type": "integer"}, " 12 ") == (12, None)
    assert parse_text({"type": "integer"}, "1.5") == (None, "must be a whole number")
    assert parse_text({"type": "number"}, "0.25") == (0.25, None)
    assert parse_text({"type": "number"}, "x") == (None, "must be a number")
    assert parse_text({"type": "string"}, "  ") == (None, None)
    assert parse_text({"type": "string"}, "as typed ") == ("as typed ", None)


def test_schema_errors_are_reported_per_field() -> None:
    errors = form_errors(SCHEMA, {"replicas": 0})
    assert errors["ticket"] == "required"
    assert "minimum of 1" in errors["replicas"]
    assert "does not match" in form_errors(SCHEMA, {"ticket": "abc"})["ticket"]
    assert form_errors(SCHEMA, {"ticket": "OPS-1", "replicas": 2}) == {}


def test_cells_stay_inside_their_columns() -> None:
    assert fit("deploy.v1", 20) == "deploy.v1"
    assert fit("intent.test.approval.v1", 10) == "intent.te…"
    assert len(fit("x" * 50, 10)) == 10
    assert fit(None, 5) == ""
    assert [uptime(s) for s in (None, 5, 73, 7500, 200000)] == [
        "-",
        "5s",
        "1m13s",
        "2h05m",
        "2d07h",
    ]
