"""`axme completions bash|zsh|fish`: the shell's completion script, from the installed program.

A wheel carries no `completions/` folder; this prints what `scripts/gen_completions.py` writes
there (and `axme --show-completion` prints): Typer's small script that calls back into `axme`
for the completions themselves, so it never goes stale as commands change.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from axme_cli.errors import BadInput

SHELLS = ("bash", "zsh", "fish")


def complete_var(prog: str) -> str:
    """Typer's (and Click's) rule for the env var that switches the program into completion."""
    return "_{}_COMPLETE".format(prog.replace("-", "_").upper())


def script(shell: str, prog: str = "axme") -> str:
    """The completion script for `shell`, ending with a newline."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=prog, complete_var=complete_var(prog), shell=shell) + (
        "\n"
    )


def completions(
    shell: Annotated[str, typer.Argument(help="bash, zsh or fish.", show_default=False)],
) -> None:
    """Print the completion script for a shell.

    \b
    Examples:
      axme completions bash > ~/.local/share/bash-completion/completions/axme
      axme completions zsh > ~/.zfunc/_axme      # a directory on $fpath, before compinit
      axme completions fish > ~/.config/fish/completions/axme.fish
    """
    if shell not in SHELLS:
        raise BadInput(f"SHELL: one of {', '.join(SHELLS)}; got {shell!r}")
    sys.stdout.write(script(shell))


def register(app: typer.Typer) -> None:
    app.command()(completions)
