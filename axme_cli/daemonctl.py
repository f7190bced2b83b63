"""Start, find and stop the daemon of an axme home, from the CLI side.

The daemon runs as `python -m axme_daemon` in its own session, never imported here. Whether
it runs is decided by asking it (`/health`), and which process it is by the pid it reports,
falling back to the pidfile only when it does not answer.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from axme_cli.client import DaemonClient, socket_accepts
from axme_cli.errors import DaemonUnreachable
from axme_cli.paths import HomePaths, make_private_dirs, open_private_log, unusable

#: What `python -m axme_daemon` exits with when another daemon holds the home's lock.
DAEMON_EXIT_ALREADY_RUNNING = 3
#: How the daemon begins the one line that says why it cannot start.
DAEMON_SAYS = "axme daemon: "

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

#: Daemons this process spawned; kept so their Popen objects outlive the call.
_spawned: list[subprocess.Popen[bytes]] = []


class Started(NamedTuple):
    pid: int
    socket: str
    already_running: bool
    #: The loopback TCP listener's base URL, when it is open.
    tcp: str | None = None


def probe(paths: HomePaths, timeout: float = 2.0) -> dict[str, Any] | None:
    """The daemon's /health answer, or None when nothing answers on the socket."""
    if not socket_accepts(paths.socket):
        return None
    try:
        with DaemonClient(paths.socket, timeout=timeout) as client:
            return client.health()
    except DaemonUnreachable:
        return None


def _log_tail(paths: HomePaths, lines: int = 12) -> str:
    try:
        text = paths.daemon_log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def daemon_command(
    paths: HomePaths,
    *,
    foreground: bool = False,
    store: str | None = None,
    listen: str | None = None,
    lease_grace: float | None = None,
) -> list[str]:
    cmd = [sys.executable, "-m", "axme_daemon", "--home", str(paths.home)]
    cmd += ["--store", store] if store else []
    cmd += ["--listen", listen] if listen else []
    cmd += ["--lease-grace", f"{lease_grace:g}"] if lease_grace is not None else []
    return [*cmd, "--foreground"] if foreground else cmd


def start(
    paths: HomePaths,
    *,
    timeout: float = START_TIMEOUT,
    store: str | None = None,
    listen: str | None = None,
    lease_grace: float | None = None,
) -> Started:
    """Start a detached daemon unless one answers; return once it serves requests."""
    health = probe(paths)
    if health is not None:
        return Started(
            int(health["pid"]), str(health["socket"]), already_running=True, tcp=health.get("tcp")
        )
    try:
        make_private_dirs(paths)
        log_fd = open_private_log(paths.daemon_log)
    except OSError as exc:
        raise DaemonUnreachable(f"cannot start the axme daemon: {unusable(exc)}") from None
    with os.fdopen(log_fd, "ab") as log:
        proc = subprocess.Popen(
            daemon_command(paths, store=store, listen=listen, lease_grace=lease_grace),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    _spawned.append(proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = probe(paths, timeout=1.0)
        if health is not None:
            pid = int(health["pid"])
            already = pid != proc.pid
            return Started(pid, str(health["socket"]), already, tcp=health.get("tcp"))
        code = proc.poll()
        if code is not None and code != DAEMON_EXIT_ALREADY_RUNNING:
            said = _log_tail(paths, lines=1)
            if said.startswith(DAEMON_SAYS):  # the daemon's own one-line reason
                raise DaemonUnreachable(
                    f"cannot start the axme daemon: {said.removeprefix(DAEMON_SAYS)}"
                )
            raise DaemonUnreachable(
                f"the axme daemon exited with code {code} while starting; "
                f"last lines of {paths.daemon_log}:\n{_log_tail(paths)}"
            )
        time.sleep(0.02)
    raise DaemonUnreachable(
        f"the axme daemon did not answer within {timeout:.0f}s; see {paths.daemon_log}"
    )


def maintain(paths: HomePaths, action: str, *args: str) -> int:
    """`check`, `recover` or `copy` the home's store in a daemon process that holds the
    home's lock (the CLI never opens the database); its output goes straight to ours."""
    return subprocess.run([*daemon_command(paths), action, *args], check=False).returncode


def ensure_running(paths: HomePaths) -> Started:
    """What every command that needs the daemon calls first."""
    return start(paths)


def _alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it if it ended
        return reaped != pid
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; its new parent (init) just has not reaped it yet.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _pidfile_pid(paths: HomePaths) -> int | None:
    """The pidfile's pid, if that process still is an axme daemon (pids get reused)."""
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            cmdline = subprocess.run(
                ["ps", "-p", str(pid), "-o", "command="], capture_output=True, check=False
            ).stdout
        except OSError:
            return None
    return pid if b"axme_daemon" in cmdline else None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return not _alive(pid)


def _lock_held(paths: HomePaths) -> bool:
    """Whether a process holds this home's lock, as its daemon does for its whole life.

    A copied home has a copy of the pidfile naming the original's daemon, but its own lock
    file, which nobody holds."""
    try:
        fd = os.open(paths.lockfile, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the shared lock, if we got it
    return False


class Stopped(NamedTuple):
    pid: int | None
    was_running: bool
    killed: bool
    #: Why a pid was left alone: it is not this home's daemon.
    not_ours: str | None = None


def stop(paths: HomePaths, *, timeout: float = STOP_TIMEOUT) -> Stopped:
    """SIGTERM, wait up to `timeout`, then SIGKILL; only ever this home's daemon."""
    health = probe(paths)
    pid = int(health["pid"]) if health else _pidfile_pid(paths)
    if health is None and pid is not None and not _lock_held(paths):
        why = (
            f"the pidfile names pid {pid}, but nothing holds this home's lock, so that is "
            f"not the daemon of {paths.home} (a copied home?); nothing was signalled"
        )
        return Stopped(pid, was_running=False, killed=False, not_ours=why)
    if pid is None or not _alive(pid):
        return Stopped(pid, was_running=False, killed=False)
    os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        return Stopped(pid, was_running=True, killed=False)
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 5.0)
    # A killed daemon cannot clean up; the next one will (it holds the lock when it does).
    return Stopped(pid, was_running=True, killed=True)
