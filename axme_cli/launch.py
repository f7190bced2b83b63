"""The `axme` entry point: answers `axme --version` and the quick commands (`quick.py`: a
plain `send`, `list`, `show`, `wait`, `tail`, `cancel`, `retry`, `approve`, `reject`, `inbox`,
`agents list`, `keys list`, `daemon status`, and AXME's `tasks
list|approve|reject|confirm|complete` and `intents get|list|watch|cancel`) before the Typer
app is loaded.

Anything else, and anything the quick parsers do not take whole, goes to the Typer app, which
owns the CLI: its help, its completion and its usage errors.
"""

from __future__ import annotations

import os
import sys

#: Set while a shell asks for completions: Typer's to answer.
COMPLETE_VAR = "_AXME_COMPLETE"

#: The first words of the command lines the quick parsers may take.
QUICK_COMMANDS = frozenset(
    {"send", "list", "show", "wait", "tail", "retry", "cancel", "approve", "reject", "inbox"}
    | {"agents", "tasks", "intents", "keys", "daemon"}
)


def command_word(argv: list[str]) -> str | None:
    """The command `argv` names after the global options (`--home H`, `--config C`,
    `--no-config`), or None when it names none or another option comes first."""
    words = iter(argv)
    for word in words:
        if word in ("--home", "--config"):
            next(words, None)
        elif word == "--no-config" or word.startswith(("--home=", "--config=")):
            continue
        elif word.startswith("-"):
            return None
        else:
            return word
    return None


def _columns() -> int:
    """The width Click would format help for, as `shutil.get_terminal_size` reads it."""
    try:
        return int(os.environ.get("COLUMNS", ""))
    except ValueError:
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def main() -> None:
    argv = sys.argv[1:]
    if argv == ["--version"]:
        from axme_cli import __version__

        print(f"axme {__version__}")
        return
    if argv in (["--help"], ["-h"]) and COMPLETE_VAR not in os.environ and _columns() >= 80:
        # The whole app's help, written out (scripts/gen_root_help.py): making every
        # command to list them took longer than the rest of `axme --help`.
        with open(os.path.join(os.path.dirname(__file__), "root_help.txt")) as text:
            sys.stdout.write(text.read())
        return
    quick = None
    if (
        COMPLETE_VAR not in os.environ
        and not {"-h", "--help"} & set(argv)
        and command_word(argv) in QUICK_COMMANDS
    ):
        from axme_cli.quick import parse

        quick = parse(argv)
    if quick is None:
        from axme_cli.main import main as run

        run()
        return
    from axme_cli.errors import AxmeError

    try:
        code = quick.run()
    except AxmeError as exc:
        from axme_cli.render import error_line

        error_line(exc.message)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # As Click does: the reader went away (`axme list --json | head -1`); exit 1, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code or 0)
