"""axme_cli/root_help.txt, which `axme --help` prints, is what the whole Typer app prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_written_out_root_help_is_the_apps() -> None:
    checked = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_root_help.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
