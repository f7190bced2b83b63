"""Options, parsing and the daemon connection that several commands share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from axme_cli.durations import parse_duration
from axme_cli.session import ProjectUse, Session, read_payload

__all__ = ["IdArg", "JsonOpt", "connect", "parse_duration", "read_payload", "session"]

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of a table or text.")
]
IdArg = Annotated[str, typer.Argument(help="Intent id, or a unique prefix of one.")]


def session(ctx: typer.Context) -> Session:
    """The home (`--home`) and project config (`--config`, `--no-config`) the root took."""
    params = ctx.find_root().params or {}
    return Session(ctx.obj, params.get("config"), bool(params.get("no_config")))


@contextmanager
def connect(
    ctx: typer.Context, *, autostart: bool = True, project: ProjectUse = "optional"
) -> Iterator[DaemonClient]:
    """A client for this home's daemon; the daemon is started if nothing answers."""
    with session(ctx).connect(autostart=autostart, project=project) as client:
        yield client
