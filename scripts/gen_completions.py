"""Generate completions/axme.bash, completions/_axme (zsh) and completions/axme.fish.

Typer's completion scripts are small shims that call back into `axme` with `_AXME_COMPLETE`
set; the real completion logic runs inside the program. So these files are generated, not
written by hand, and they only change when the program name or Typer's templates change. They
are exactly what `axme --show-completion SHELL` prints, i.e. what `axme --install-completion`
installs (plus a final newline), so packagers can ship them without running `axme` at build time.

    python scripts/gen_completions.py           # (re)write the files
    python scripts/gen_completions.py --check   # exit 1 and name the stale files (tests, CI)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMPLETIONS = REPO / "completions"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # a clean checkout works without an install

from axme_cli.commands.completions import complete_var, script  # noqa: E402

__all__ = ["complete_var"]

# File names follow each shell's convention (and the names Typer installs under).
FILES = {"bash": "axme.bash", "zsh": "_axme", "fish": "axme.fish"}


def prog_name() -> str:
    """The program name the completion scripts bind to: the root Typer app's name."""
    import typer.main

    from axme_cli.main import app

    name = typer.main.get_command(app).name
    assert name, "the root Typer app needs a name"
    return name


def render() -> dict[str, str]:
    """File name -> content: what `axme completions SHELL` prints."""
    prog = prog_name()
    return {filename: script(shell, prog) for shell, filename in FILES.items()}


def stale(directory: Path = COMPLETIONS) -> list[Path]:
    """The files in `directory` that are missing or differ from what `render()` gives."""
    out = []
    for filename, content in render().items():
        path = directory / filename
        if not path.is_file() or path.read_text() != content:
            out.append(path)
    return out


def main(argv: list[str] | None = None, directory: Path = COMPLETIONS) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        bad = stale(directory)
        for path in bad:
            print(f"stale: {path} (run python scripts/gen_completions.py)", file=sys.stderr)
        return 1 if bad else 0
    directory.mkdir(parents=True, exist_ok=True)
    for filename, content in render().items():
        (directory / filename).write_text(content)
        print(f"wrote {directory / filename}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
