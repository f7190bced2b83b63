"""The daemon's listening socket and the single-instance lock.

The socket lives in a 0700 directory and is created 0600 under a temporary name, then
renamed into place, so no client ever sees it with looser permissions. Holding the lock
proves no other daemon serves this home, which is what makes removing a leftover socket or
pidfile after a crash safe.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
from pathlib import Path

from axme_cli.paths import HomePaths, unusable


class AlreadyRunning(Exception):
    """Another daemon holds the lock of this home."""


class HomeUnusable(Exception):
    """A path of the home cannot be what the daemon needs (e.g. a directory where the socket
    goes); the message says which and what to do, in one line."""


def acquire_lock(paths: HomePaths) -> int:
    """Take the home's lock for the life of the process; return its file descriptor."""
    try:
        ensure_private_dir(paths.run_dir)
        fd = os.open(paths.lockfile, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise HomeUnusable(unusable(exc)) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(str(paths.home)) from None
    os.set_inheritable(fd, False)
    return fd


def ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def write_pidfile(paths: HomePaths) -> None:
    tmp = paths.pidfile.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, paths.pidfile)


def _stale(path: Path) -> bool:
    """Whether `path` is something the daemon left (a socket or a file), safe to replace."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    return stat.S_ISSOCK(mode) or stat.S_ISREG(mode)


def check_socket_path(path: Path) -> None:
    """Fail now, before the store opens, when the socket cannot be bound at `path`."""
    if path.exists() and not _stale(path):
        raise HomeUnusable(
            f"{path} is a directory or other file, not a socket: remove it (the daemon never "
            "deletes what it did not create), or set AXME_HOME to another home"
        )


def bind_unix_socket(path: Path) -> socket.socket:
    """Bind `path` (mode 0600); a leftover file there is stale because we hold the lock."""
    check_socket_path(path)
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(tmp))
    finally:
        os.umask(old_umask)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def cleanup(paths: HomePaths) -> None:
    for leftover in (paths.socket, paths.pidfile):
        if _stale(leftover):
            leftover.unlink(missing_ok=True)
