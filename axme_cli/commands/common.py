"""Options, parsing and the daemon connection that several commands share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from axme_cli.durations import parse_duration
from axme_cli.session import connect_to, read_payload

__all__ = ["IdArg", "JsonOpt", "connect", "parse_duration", "read_payload"]

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of a table or text.")
]
IdArg = Annotated[str, typer.Argument(help="Intent id, or a unique prefix of one.")]


@contextmanager
def connect(
    ctx: typer.Context, *, autostart: bool = True, apply_project: bool = True
) -> Iterator[DaemonClient]:
    """A client for this home's daemon; the daemon is started if nothing answers."""
    config_path: Path | None = (ctx.find_root().params or {}).get("config")
    with connect_to(
        ctx.obj, config_path, autostart=autostart, apply_project=apply_project
    ) as client:
        yield client
