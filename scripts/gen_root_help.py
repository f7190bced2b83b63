"""Generate axme_cli/root_help.txt: what `axme --help` prints, from the whole Typer app.

`axme --help` is the one help that needs every command (its list of them), and making the
whole Typer app for it costs more than anything else the command does; so the launcher
prints this file instead, where Click would format the help 78 columns wide (a terminal of
80 columns or more, or none). A test holds the file equal to what the app prints.

    python scripts/gen_root_help.py           # (re)write the file
    python scripts/gen_root_help.py --check   # exit 1 when it is stale (tests, CI)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELP = REPO / "axme_cli" / "root_help.txt"
#: The whole app's help, as Click formats it without a terminal.
_TYPER = "import sys; sys.argv = ['axme', '--help']; from axme_cli.main import main; main()"


def typer_help() -> str:
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO)}
    env.pop("_AXME_COMPLETE", None)
    return subprocess.run(
        [sys.executable, "-c", _TYPER], env=env, capture_output=True, text=True, check=True
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args()
    text = typer_help()
    if args.check:
        if HELP.read_text() != text:
            print(f"stale: {HELP.relative_to(REPO)} (python scripts/gen_root_help.py)")
            return 1
        return 0
    HELP.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
