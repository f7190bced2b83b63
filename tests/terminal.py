"""`axme` with its stdout on a real terminal (a pty) of a given size, as a person runs it."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.daemon import env_for

#: Colours and styles: what the screen shows is the text between them.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_in_terminal(
    home: Path, *args: str, columns: int = 80, lines: int = 24, timeout: float = 60.0
) -> tuple[int, str, str]:
    """(exit code, the text the terminal shows, stderr) of `axme ARGS` whose stdout is a
    `columns`-wide terminal; stderr is a pipe, as when a person pipes only the errors."""
    main, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = {**env_for(home), "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "axme_cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(child)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while True:  # read as it writes, or a long table fills the pty and blocks it
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"axme {' '.join(args)} still running after {timeout}s")
            ready, _, _ = select.select([main], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: the process closed the terminal
                    chunk = b""
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        os.close(main)
    text = _ESCAPES.sub("", shown.decode()).replace("\r\n", "\n")
    return code, text, err
