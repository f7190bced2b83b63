"""Lines, tables and JSON for a command's output: drawn by Rich where it would draw in colour
(a terminal, or `FORCE_COLOR`), written as plain text everywhere else.

Rich's console and tables take about 35 ms to import, a third of a short command; a pipe or
a log gets nothing from them (Rich prints no colour there), so the plain writer below prints
the same rows without importing Rich: whole cells, columns padded to their widest cell, one
row a line. Text is given as pieces, `(text, style)` pairs or plain strings, never as markup,
so nothing needs escaping either way.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

#: A run of text and its Rich style (`""`: none).
Piece = tuple[str, str]
#: What a line or a table cell is made of.
Cell = str | Piece | Sequence[Piece]


def drawn(stream: IO[str]) -> bool:
    """Whether Rich would draw on `stream` as on a terminal (colour, widths): the test of
    Rich's `Console.is_terminal`, so that plain output is what Rich would print there."""
    tty_compatible = os.environ.get("TTY_COMPATIBLE", "")
    if tty_compatible in ("0", "1"):
        return tty_compatible == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def pieces(cell: Cell) -> list[Piece]:
    if isinstance(cell, str):
        return [(cell, "")]
    if isinstance(cell, tuple) and len(cell) == 2 and isinstance(cell[0], str):
        return [cell]
    return list(cell)


def plain(cell: Cell) -> str:
    return "".join(text for text, _ in pieces(cell))


def rich_text(cell: Cell) -> Text:
    from rich.text import Text

    return Text.assemble(*pieces(cell))


def markup(cell: Cell) -> str:
    """The cell as Rich markup (for a caller that composes markup, as the TUI does)."""
    from rich.markup import escape

    return "".join(
        f"[{style}]{escape(text)}[/]" if style else escape(text) for text, style in pieces(cell)
    )


def _console() -> Console:
    from axme_cli.render import out

    return out()


def line(*cells: Cell, soft_wrap: bool = False) -> None:
    """One line on stdout, its cells joined by a space."""
    parts = [p for cell in cells for p in (*pieces(cell), (" ", ""))][:-1]
    if drawn(sys.stdout):
        _console().print(rich_text(parts), soft_wrap=soft_wrap)
    else:
        sys.stdout.write(plain(parts) + "\n")


def json_block(data: Any) -> None:
    """`data` as indented JSON (what Rich's `print_json` prints, in colour in a terminal)."""
    if drawn(sys.stdout):
        _console().print_json(data=data)
    else:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def text_block(text: str, style: str = "") -> None:
    """Text printed as it is, its lines never rewrapped (a traceback, a description)."""
    if drawn(sys.stdout):
        from rich.text import Text

        _console().print(Text(text, style=style), soft_wrap=True)
    else:
        sys.stdout.write(text + "\n")


class Column:
    """A table column, with the Rich options that matter in a terminal."""

    def __init__(
        self,
        header: str,
        *,
        justify: Literal["left", "right"] = "left",
        no_wrap: bool = False,
        overflow: Literal["fold", "ellipsis"] = "fold",
        min_width: int | None = None,
        max_width: int | None = None,
        style: str | None = None,
    ) -> None:
        self.header = header
        self.justify: Literal["left", "right"] = justify
        self.no_wrap = no_wrap
        self.overflow: Literal["fold", "ellipsis"] = overflow
        self.min_width = min_width
        self.max_width = max_width
        self.style = style


def table(
    columns: Sequence[Column], rows: Sequence[Sequence[Cell]], *, gap: int = 2, header: bool = True
) -> None:
    """Rows under bold headers, `gap` spaces between columns: fitted to a terminal by Rich,
    or whole and one row a line for a pipe."""
    if drawn(sys.stdout):
        _rich_table(columns, rows, gap=gap, header=header)
        return
    texts = [[plain(cell) for cell in row] for row in rows]
    if header:
        texts.insert(0, [c.header for c in columns])
    widths = [
        max(c.min_width or 0, *(cell_width(row[i]) for row in texts)) if texts else 0
        for i, c in enumerate(columns)
    ]
    out: list[str] = []
    for row in texts:
        cells = []
        for text, width, column in zip(row, widths, columns, strict=True):
            pad = " " * (width - cell_width(text))
            cells.append(pad + text if column.justify == "right" else text + pad)
        out.append((" " * gap).join(cells).rstrip() + "\n")
    sys.stdout.write("".join(out))


def grid(rows: Sequence[tuple[str, Cell]]) -> None:
    """Bold names and their values, two spaces apart (an intent's or a task's fields)."""
    columns = [Column("", no_wrap=True, style="bold"), Column("", overflow="fold")]
    table(columns, [[name, value] for name, value in rows], header=False)


def _rich_table(
    columns: Sequence[Column], rows: Sequence[Sequence[Cell]], *, gap: int, header: bool
) -> None:
    from rich.table import Table

    if header:
        drawn_table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, gap, 0, 0))
    else:
        drawn_table = Table.grid(padding=(0, gap))
    for c in columns:
        drawn_table.add_column(
            c.header,
            justify=c.justify,
            no_wrap=c.no_wrap,
            overflow=c.overflow,
            min_width=c.min_width,
            max_width=c.max_width,
            style=c.style,
        )
    for row in rows:
        drawn_table.add_row(*(rich_text(cell) for cell in row))
    _console().print(drawn_table)


def cell_width(text: str) -> int:
    """Columns `text` takes in a terminal: wide East Asian characters take two."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )
