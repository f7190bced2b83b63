"""A real daemon process on a temporary home, for integration and acceptance tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from axme_cli.client import socket_accepts
from axme_cli.paths import HomePaths

REPO = Path(__file__).resolve().parent.parent


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AXME_")}
    env["AXME_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "daemon")])
    return env


class Daemon:
    """`python -m axme_daemon` as a child of the test, with helpers to talk to it."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.extra_env = env or {}
        self.paths = HomePaths(home)
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.paths.socket

    def start(self, timeout: float = 15.0) -> Daemon:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "axme_daemon", "--home", str(self.home), *self.args],
            env={**env_for(self.home), **self.extra_env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for(self._healthy, timeout=timeout, what="the daemon to answer /health")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"daemon exited with {self.proc.returncode}: {err}\n{self.log()}")
        if not socket_accepts(self.socket):
            return False
        try:
            with self.client() as client:
                return bool(client.get("/health").json()["ok"])
        except (httpx.TransportError, ValueError):
            return False

    def client(self, timeout: float = 15.0) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)),
            base_url="http://axme",
            timeout=timeout,
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush; what a crash or power cut leaves."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close_pipes()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close_pipes()
        return self.proc.returncode

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def health(self) -> dict[str, Any]:
        with self.client() as client:
            return client.get("/health").json()  # type: ignore[no-any-return]

    def log(self) -> str:
        try:
            return self.paths.daemon_log.read_text(errors="replace")
        except OSError:
            return ""


def run_cli(
    home: Path,
    *args: str,
    input: str | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    program: Sequence[str] = (sys.executable, "-m", "axme_cli"),
) -> subprocess.CompletedProcess[str]:
    """`axme ARGS` in a fresh process, as a user's shell would run it (in `cwd`, with `env`
    over the home's environment)."""
    return subprocess.run(
        [*program, *args],
        env={**env_for(home), **(env or {})},
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop_home_daemon(home: Path) -> None:
    """Stop a daemon the CLI auto-started in `home` (it is not our child)."""
    from axme_cli import daemonctl

    daemonctl.stop(HomePaths(home), timeout=10)
