"""A throwaway PostgreSQL 15 server for the tests that need one: its own cluster in a temp
dir, a Unix socket there, a random port; never a shared server. Without the binaries the
tests that need it skip, saying how to get them; under `AXME_TEST_REQUIRE_POSTGRES=1` (CI)
they fail instead, so the tier cannot silently not run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(os.environ.get("AXME_PG_BIN", "/usr/lib/postgresql/15/bin"))
REQUIRE = "AXME_TEST_REQUIRE_POSTGRES"
TIER = "the PostgreSQL tier"
HOW = (
    "to run it, install PostgreSQL 15 (apt-get install postgresql-15) or set AXME_PG_BIN;"
    f" {REQUIRE}=1 makes it fail instead of skipping"
)


def available(bin_dir: Path = BIN) -> bool:
    return (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file()


def required() -> bool:
    return os.environ.get(REQUIRE, "") not in ("", "0")


#: Read at import, like BIN: each test runs with the AXME_* variables cleared.
REQUIRED = required()


def missing(bin_dir: Path = BIN, *, require: bool = False) -> tuple[bool, str] | None:
    """None when the tier can run; otherwise (fail?, the one line that says why and how)."""
    if available(bin_dir):
        return None
    return require, f"{TIER} needs {bin_dir}/initdb and pg_ctl: {HOW}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server() -> Iterator[tuple[Path, int, str]]:
    """(socket dir, port, user) of a fresh server, stopped and removed after."""
    root = Path(tempfile.mkdtemp(prefix="axme-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_root = os.geteuid() == 0
    user = "postgres" if as_root else os.environ.get("USER", "postgres")
    run_as: list[str] = []
    if as_root:  # initdb refuses root: the cluster belongs to the postgres user
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    try:
        subprocess.run(
            [*run_as, str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", user],
            check=True,
            capture_output=True,
        )
        opts = f"-k {sock} -p {port} -c listen_addresses='' -c fsync=on"
        log = root / "server.log"
        pg_ctl = [*run_as, str(BIN / "pg_ctl"), "-D", str(data)]
        subprocess.run(  # the server's output to a file: a pipe would never close
            [*pg_ctl, "-o", opts, "-l", str(log), "-w", "start"],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield sock, port, user
    finally:
        if data.exists():
            subprocess.run(
                [*run_as, str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)
