"""What the daemon exposes beyond its owner: loopback listeners only, Host checked, no CORS,
and a home whose directories and files only the owner can read."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.daemon import Daemon, env_for, run_cli, wait_for

pytestmark = pytest.mark.acceptance

KEY = "k-" + os.urandom(12).hex()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _daemon_refuses(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "axme_daemon", "--home", str(home), *args],
        env={**env_for(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0, proc.stderr
    assert not (home / "run" / "axme.sock").exists()
    return proc.stderr


@pytest.mark.parametrize("where", ["0.0.0.0", "[::]", "192.0.2.7", "example.com", "127.0.0.1"])
def test_listen_and_axme_listen_refuse_the_same_non_loopback_addresses(
    axme_home: Path, where: str
) -> None:
    value = f"{where}:{_free_port()}" if where != "127.0.0.1" else "127.0.0.1:http"
    by_flag = _daemon_refuses(axme_home, "--listen", value)
    by_env = _daemon_refuses(axme_home, env={"AXME_LISTEN": value})
    for said in (by_flag, by_env):
        assert "loopback HOST:PORT" in said, said
        assert value in said


def test_axme_listen_on_loopback_serves_with_a_key_and_checks_host(axme_home: Path) -> None:
    port = _free_port()
    daemon = Daemon(axme_home, env={"AXME_LISTEN": f"localhost:{port}", "AXME_API_KEYS": KEY})
    daemon.start()
    try:
        assert daemon.health()["tcp"] == f"http://127.0.0.1:{port}"
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"x-api-key": KEY}, timeout=10) as client:
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", "127.0.0.1"):
                answer = client.get("/health", headers={"host": host})
                assert answer.status_code == 200, (host, answer.text)
            # A page whose domain resolves to 127.0.0.1 (DNS rebinding) sends its own name.
            for host in (f"evil.example:{port}", "localhost.evil.example", "0.0.0.0", "", "[x"):
                answer = client.get("/health", headers={"host": host})
                assert answer.status_code == 421, (host, answer.text)
                message = "Host: this listener answers only to localhost or a loopback address"
                assert answer.json() == {
                    "error": {"code": "misdirected_request", "message": message, "details": {}},
                    "detail": message,
                }
            # ...before the key is looked at: no way to probe keys from such a page.
            answer = client.get("/health", headers={"host": "evil.example", "x-api-key": "x"})
            assert answer.status_code == 421
            created = client.post(
                "/v1/intents",
                headers={"host": f"rebound.example:{port}"},
                json={"intent_type": "t.v1", "to_agent": "agent://a/b/c", "payload": {}},
            )
            assert created.status_code == 421
        with daemon.client() as owner:
            assert owner.get("/v1/intents").json()["intents"] == []
    finally:
        daemon.stop()


def test_the_tcp_listener_sends_no_cors_headers(axme_home: Path) -> None:
    port = _free_port()
    daemon = Daemon(axme_home, "--listen", f"127.0.0.1:{port}", env={"AXME_API_KEYS": KEY})
    daemon.start()
    try:
        origin = {"origin": "https://evil.example"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            answers = [
                client.options(
                    "/v1/intents",
                    headers={
                        **origin,
                        "access-control-request-method": "POST",
                        "access-control-request-headers": "x-api-key, content-type",
                    },
                ),
                client.get("/health", headers={**origin, "x-api-key": KEY}),
                client.get("/v1/intents", headers={**origin, "x-api-key": KEY}),
                client.get("/health", headers=origin),
            ]
        assert answers[1].status_code == 200
        for answer in answers:
            cors = [h for h in answer.headers if h.lower().startswith("access-control-")]
            assert cors == [], (answer.request.method, answer.request.url, answer.headers)
    finally:
        daemon.stop()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_home_is_private_from_the_first_byte(cli_home: Path) -> None:
    """The CLI creates the home and the daemon log before the daemon runs: both must be the
    owner's alone even under a permissive umask, and so must what the daemon writes."""
    cli_home.rmdir()  # a home that does not exist yet, as on a first run
    old = os.umask(0o022)
    try:
        sent = run_cli(cli_home, "send", "t.v1", "--to", "agent://a/b/c")
    finally:
        os.umask(old)
    assert sent.returncode == 0, sent.stderr
    home = cli_home
    wait_for(lambda: (home / "axme.db-wal").exists(), what="the database's WAL")
    for directory in (home, home / "run", home / "logs"):
        assert _mode(directory) == 0o700, directory
    files = [home / "logs" / "daemon.log", home / "axme.db", home / "axme.db-wal"]
    files.append(home / "secrets.key")
    files += [p for p in (home / "axme.db-shm",) if p.exists()]
    for path in files:
        assert _mode(path) == 0o600, path
    assert _mode(home / "run" / "axme.sock") == 0o600


def test_an_older_homes_open_modes_are_tightened_at_start(axme_home: Path) -> None:
    (axme_home / "logs").mkdir()
    (axme_home / "logs" / "daemon.log").write_text("from an older version\n")
    for path, mode in ((axme_home, 0o755), (axme_home / "logs", 0o755)):
        path.chmod(mode)
    (axme_home / "logs" / "daemon.log").chmod(0o644)
    daemon = Daemon(axme_home).start()
    try:
        assert _mode(axme_home) == 0o700
        assert _mode(axme_home / "logs") == 0o700
        assert _mode(axme_home / "logs" / "daemon.log") == 0o600
    finally:
        daemon.stop()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_listen_on_the_ipv6_loopback(axme_home: Path) -> None:
    port = _free_port()
    daemon = Daemon(axme_home, "--listen", f"[::1]:{port}", env={"AXME_API_KEYS": KEY})
    daemon.start()
    try:
        url = daemon.health()["tcp"]
        assert url == f"http://[::1]:{port}"
        with httpx.Client(base_url=url, headers={"x-api-key": KEY}, timeout=10) as client:
            assert client.get("/health").status_code == 200
            assert client.get("/health", headers={"host": f"[::1]:{port}"}).status_code == 200
            assert client.get("/health", headers={"host": "evil.example"}).status_code == 421
    finally:
        daemon.stop()
