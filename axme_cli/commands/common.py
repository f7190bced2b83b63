"""Options, parsing and the daemon connection that several commands share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.commands import completion
from axme_cli.durations import parse_duration
from axme_cli.session import ProjectUse, Session, given_options, read_payload

__all__ = ["IdArg", "JsonOpt", "connect", "parse_duration", "read_payload", "session"]

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of a table or text.")
]
IdArg = Annotated[
    str,
    typer.Argument(
        help="Intent id, or a unique prefix of one.",
        metavar="INTENT",
        autocompletion=completion.intent_ids,
    ),
]


def session(ctx: typer.Context) -> Session:
    """The home (`--home`) and project config (`--config`, `--no-config`) the root took."""
    root = ctx.find_root()
    params = root.params or {}

    def typed(name: str) -> Any:
        """The option's value when it was given on the command line (not by AXME_HOME)."""
        # By name: the enum's class is the click that typer bundles, not `click`'s own.
        source = getattr(root.get_parameter_source(name), "name", None)
        return params.get(name) if source == "COMMANDLINE" else None

    def path(value: Any) -> Path | None:
        """As a `Path` whichever Typer gave it: `./h/` is `h`, as the quick parsers print."""
        return None if value is None else Path(value)

    home, config = path(typed("home")), path(typed("config"))
    given = given_options(
        None if home is None else str(home),
        None if config is None else str(config),
        bool(typed("no_config")),
    )
    return Session(ctx.obj, path(params.get("config")), bool(params.get("no_config")), given)


@contextmanager
def connect(
    ctx: typer.Context, *, autostart: bool = True, project: ProjectUse = "optional"
) -> Iterator[DaemonClient]:
    """A client for this home's daemon; the daemon is started if nothing answers."""
    with session(ctx).connect(autostart=autostart, project=project) as client:
        yield client


def run_app(app: typer.Typer, prog_name: str) -> None:
    """Run the Typer app. A usage error (a missing argument, an unknown option, a bad value)
    raises `BadInput`: one line and exit 2, like every other error, instead of Click's usage,
    hint and error over four lines."""
    from axme_cli.errors import BadInput

    # Click's exception root as the installed Typer raises it (newer Typers vendor Click).
    click_errors = tuple(
        k
        for k in typer.BadParameter.__mro__
        if issubclass(k, Exception) and k.__name__ == "ClickException"
    )
    try:
        code = app(prog_name=prog_name, standalone_mode=False)
    except click_errors as exc:
        command = getattr(getattr(exc, "ctx", None), "command_path", None) or prog_name
        if type(exc).__name__ == "NoArgsIsHelpError":  # `axme agents`: the help, as asked
            exc.show()  # type: ignore[attr-defined]
            raise SystemExit(getattr(exc, "exit_code", 2)) from None
        message = str(getattr(exc, "format_message", exc.__str__)()).strip().rstrip(".")
        message = message[:1].lower() + message[1:]
        raise BadInput(f"{command}: {message} (see: {command} --help)") from None
    except typer.Abort:
        raise SystemExit(1) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)
