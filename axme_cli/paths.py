"""Where axme keeps its state: one home directory per daemon.

Shared by the CLI and the daemon so that both agree on the socket and database paths
without a handshake. `AXME_HOME` wins; otherwise the platform's user data directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

#: A project's config file, looked for in the working directory and its parents.
CONFIG_NAME = "axme.toml"


def find_config(start: Path) -> Path | None:
    """`axme.toml` in `start` or its nearest parent, like pyproject.toml discovery (here, not
    in `project`, so that a command run outside any project never imports the validator)."""
    here = Path(start).absolute()
    if not here.is_dir():
        here = here.parent
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_NAME
        try:
            if candidate.is_file():
                return candidate
        except OSError:  # an unreadable directory on the way up: keep looking above it
            continue
    return None


def axme_home() -> Path:
    env = os.environ.get("AXME_HOME")
    if env:
        return Path(env).expanduser().absolute()
    import platformdirs  # only when AXME_HOME is unset: keeps `axme` start-up lean

    return platformdirs.user_data_path("axme")


class HomePaths(NamedTuple):
    """The files of one axme home (a named tuple, not a dataclass: `dataclasses` imports
    `inspect`, a tenth of a short command's imports)."""

    home: Path

    @property
    def run_dir(self) -> Path:
        """Private (0700) directory for the socket and pidfile."""
        return self.home / "run"

    @property
    def socket(self) -> Path:
        return self.run_dir / "axme.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "daemon.pid"

    @property
    def lockfile(self) -> Path:
        return self.run_dir / "daemon.lock"

    @property
    def database(self) -> Path:
        return self.home / "axme.db"

    @property
    def secrets_key(self) -> Path:
        """The key that seals the secrets `axme.db` keeps (0600)."""
        return self.home / "secrets.key"

    @property
    def scenario_agents(self) -> Path:
        """The keys `axme scenarios apply` provisioned for agents, by address (0600)."""
        return self.home / "scenario-agents.json"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def daemon_log(self) -> Path:
        return self.log_dir / "daemon.log"


def unusable(exc: OSError) -> str:
    """One line on a path of the home that cannot be used, for the daemon and the CLI."""
    what = "it is not a directory" if isinstance(exc, FileExistsError) else exc.strerror
    return f"cannot use {exc.filename}: {what} (fix or remove it, or set AXME_HOME)"


def home_paths(home: Path | None = None) -> HomePaths:
    return HomePaths(home or axme_home())


#: What a home's files hold (payloads, logs, keys) is its owner's alone.
PRIVATE_UMASK = 0o077


def make_private_dirs(paths: HomePaths) -> None:
    """Create the home, `run/` and `logs/` as 0700, and tighten them if an older version
    left them open: whoever can list the home must be its owner."""
    for path in (paths.home, paths.run_dir, paths.log_dir):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)


def open_private_log(path: Path) -> int:
    """A log file's descriptor for appending; created 0600, never wider whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd
