"""The `axme` entry point: answers `axme --version` and a plain `axme send` before the Typer
app is loaded.

Loading the Typer app costs about 110 ms, and Typer builds a pydantic adapter per option when a
command runs (another 150 ms or more): more than a version check or a one-line send in a script
or CI step should wait. Anything the quick path does not fully understand (`--help`, `--wait`,
`--approval`, an unknown or repeated option) goes to the Typer app, which owns the CLI.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class QuickSend:
    """`axme [--home H] [--config C] send TYPE --to ADDR [-p PAYLOAD] [-k KEY] [--json]`."""

    intent_type: str
    to_agent: str
    payload: str | None = None
    idempotency_key: str | None = None
    as_json: bool = False
    home: str | None = None
    config: str | None = None


_GLOBAL = {"--home": "home", "--config": "config"}
_SEND = {
    "--to": "to_agent",
    "--payload": "payload",
    "-p": "payload",
    "--idempotency-key": "idempotency_key",
    "-k": "idempotency_key",
}


def parse_quick_send(argv: list[str]) -> QuickSend | None:
    """The send this command line asks for, or None when it is not a plain send."""
    values: dict[str, str] = {}
    positional: list[str] = []
    as_json = False
    seen_send = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        options = _SEND if seen_send else _GLOBAL
        if name in options:
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                return None
            if options[name] in values:
                return None  # repeated: let Typer say what it does with that
            values[options[name]] = value
        elif seen_send and arg == "--json" and not as_json:
            as_json = True
        elif arg.startswith("-") and arg != "-":
            return None
        elif not seen_send:
            if arg != "send":
                return None
            seen_send = True
        else:
            positional.append(arg)
        i += 1
    if not seen_send or len(positional) != 1 or "to_agent" not in values:
        return None
    return QuickSend(intent_type=positional[0], as_json=as_json, **values)


def _send(quick: QuickSend) -> None:
    from axme_cli import render
    from axme_cli.paths import home_paths
    from axme_cli.session import connect_to, read_payload

    home = Path(quick.home).expanduser().absolute() if quick.home else None
    body = {
        "intent_type": quick.intent_type,
        "to_agent": quick.to_agent,
        "payload": read_payload(quick.payload),
    }
    config = Path(quick.config) if quick.config else None
    with connect_to(home_paths(home), config) as client:
        created = client.create_intent(body, idempotency_key=quick.idempotency_key)
        render.sent(created, quick.as_json)


def main() -> None:
    argv = sys.argv[1:]
    if argv == ["--version"]:
        from axme_cli import __version__

        print(f"axme {__version__}")
        return
    quick = parse_quick_send(argv)
    if quick is None:
        from axme_cli.main import main as run

        run()
        return
    from axme_cli.errors import AxmeError

    try:
        _send(quick)
    except AxmeError as exc:
        from axme_cli.render import error_line

        error_line(exc.message)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
