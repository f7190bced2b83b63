"""The plain writer prints what Rich prints to a pipe (without importing Rich), and Rich
draws wherever it would draw in colour."""

from __future__ import annotations

import io

import pytest

from axme_cli import output
from axme_cli.output import Column


@pytest.fixture
def piped(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Piped:
    """stdout as a pipe (pytest's capture), with no colour forced."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    return Piped(capsys)


class Piped:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def getvalue(self) -> str:
        return self._capsys.readouterr().out


def _rich_piped(columns: list[Column], rows: list[list[output.Cell]], gap: int) -> str:
    """What Rich printed to a pipe before the plain writer (trailing spaces aside)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=io.StringIO(), width=100_000, highlight=False)
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, gap, 0, 0))
    for c in columns:
        table.add_column(c.header, justify=c.justify, min_width=c.min_width)
    for row in rows:
        table.add_row(*(output.rich_text(cell) for cell in row))
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def test_a_piped_table_is_rich_s_without_rich(piped: Piped) -> None:
    columns = [
        Column("ID", min_width=8),
        Column("STATUS"),
        Column("TITLE"),
        Column("AGE", justify="right", min_width=3),
    ]
    rows: list[list[output.Cell]] = [
        ["3f2a", ("COMPLETED", "green"), "Ship [bold]it[/]? :smile:", "4s"],
        ["b81", [("WAIT", "magenta"), ("ING", "")], "デプロイしますか", "12m"],
    ]
    for gap in (1, 2):
        output.table(columns, rows, gap=gap)
        assert piped.getvalue() == _rich_piped(columns, rows, gap)


def test_a_piped_grid_has_no_trailing_spaces(piped: Piped) -> None:
    output.grid([("id", "abc"), ("status", ("DONE", "green")), ("waiting", "a longer value")])
    assert piped.getvalue() == "id       abc\nstatus   DONE\nwaiting  a longer value\n"


def test_lines_and_json_piped(piped: Piped) -> None:
    output.line("x1", ("FAILED", "bold red"), [(": ", ""), ("why", "dim")])
    output.json_block({"a": [1, "é"]})
    output.text_block("Traceback\n  line")
    assert (
        piped.getvalue()
        == 'x1 FAILED : why\n{\n  "a": [\n    1,\n    "é"\n  ]\n}\nTraceback\n  line\n'
    )


@pytest.mark.parametrize(
    ("env", "tty", "drawn"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": ""}, True, False),
        ({"TTY_COMPATIBLE": "1"}, False, True),
        ({"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, True, False),
    ],
)
def test_drawn_where_rich_would_draw(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool, drawn: bool
) -> None:
    from rich.console import Console

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    stream = Stream()
    assert output.drawn(stream) is drawn
    assert Console(file=stream).is_terminal is drawn
