"""`axme tui` as a user starts it: in a real terminal (a pty), on a home with no daemon yet."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from axme_cli.client import socket_accepts
from tests.daemon import env_for, run_cli


def _read_until(fd: int, needles: list[bytes], timeout: float) -> bytes:
    """Terminal output until every one of `needles` showed up; fail after `timeout` seconds."""
    seen = b""
    deadline = time.monotonic() + timeout
    while not all(needle in seen for needle in needles):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {needles!r} on the screen after {timeout}s: {seen[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def test_tui_starts_the_daemon_draws_in_a_terminal_and_quits_on_q(cli_home: Path) -> None:
    main, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**env_for(cli_home), "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "axme_cli", "tui"],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        start_new_session=True,
    )
    os.close(child)
    try:
        # No task waits, so it opens on the intents, live.
        _read_until(main, [b"Intents", b"live"], timeout=30)
        assert socket_accepts(cli_home / "run" / "axme.sock")
        os.write(main, b"q")
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)


def test_tui_refuses_an_unknown_screen_and_starts_nothing(cli_home: Path) -> None:
    result = run_cli(cli_home, "tui", "--screen", "settings")
    assert result.returncode == 2
    assert "--screen must be one of inbox, intents, agents" in result.stderr
    assert not (cli_home / "run" / "axme.sock").exists()


def test_tui_without_a_terminal_says_what_to_use_instead(cli_home: Path) -> None:
    result = run_cli(cli_home, "tui")
    assert result.returncode == 2
    assert "needs an interactive terminal" in result.stderr
    assert "axme inbox --json" in result.stderr
    assert not (cli_home / "run" / "axme.sock").exists()


def test_tui_help_teaches_the_keys() -> None:
    result = run_cli(Path("/nonexistent-axme-home"), "tui", "--help")
    assert result.returncode == 0
    for words in ("1 inbox", "2 intents", "3 agents", "? every key", "a approves", "r rejects"):
        assert words in " ".join(result.stdout.split()), words
