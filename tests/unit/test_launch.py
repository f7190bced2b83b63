"""The quick path of `axme send` takes plain sends only; everything else goes to Typer."""

from __future__ import annotations

import pytest

from axme_cli.launch import QuickSend, parse_quick_send


def test_a_plain_send_is_quick() -> None:
    argv = ["--home", "/h", "send", "t.v1", "--to=agent://a/b/c", "-p", "-", "-k", "x", "--json"]
    assert parse_quick_send(argv) == QuickSend(
        intent_type="t.v1",
        to_agent="agent://a/b/c",
        payload="-",
        idempotency_key="x",
        as_json=True,
        home="/h",
    )
    assert parse_quick_send(["send", "--to", "agent://a/b/c", "t.v1"]) == QuickSend(
        "t.v1", "agent://a/b/c"
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--version"],
        ["list"],
        ["send", "t.v1"],  # no --to: Typer says it is missing
        ["send", "t.v1", "--to", "agent://a/b/c", "--wait"],
        ["send", "t.v1", "--to", "agent://a/b/c", "--approval", "Ship?"],
        ["send", "t.v1", "--to", "agent://a/b/c", "--help"],
        ["send", "t.v1", "--to", "agent://a/b/c", "--to", "agent://a/b/d"],
        ["send", "t.v1", "extra", "--to", "agent://a/b/c"],
        ["send", "t.v1", "--to"],
        ["--to", "agent://a/b/c", "send", "t.v1"],
    ],
)
def test_anything_else_goes_to_typer(argv: list[str]) -> None:
    assert parse_quick_send(argv) is None
