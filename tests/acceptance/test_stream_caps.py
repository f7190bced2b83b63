"""Held streams cannot starve the daemon of file descriptors: past a kind's cap, or past what
the open-files limit leaves, a new stream gets 503 with Retry-After, and creates and decisions
still get through."""

from __future__ import annotations

import resource
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from axme_cli.errors import EXIT_WAIT_TIMEOUT
from tests.daemon import Daemon, run_cli, wait_for

FD_LIMIT = 256
FD_RESERVE = 128  # daemon/axme_daemon/holds.py
WATCHERS_SHARE = 0.75  # of the room above: watch and event streams together
WATCH_CAP = 3
BODY = {"intent_type": "intent.test.v1", "to_agent": "agent://test/dev/nobody"}


def _open_stream(path: Path, target: str) -> tuple[socket.socket, int, dict[str, str]]:
    """A held GET on the daemon's socket: the connection, its status and its headers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(path))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: axme\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"the daemon closed {target} without an answer"
        head += chunk
    lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return sock, int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}


@contextmanager
def _soft_fd_limit(soft: int) -> Iterator[None]:
    """This process's soft limit lowered for a while; children inherit it."""
    old, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (old, hard))


def _soft_limit_of(pid: int) -> tuple[int, int]:
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    return soft, hard


def test_held_streams_past_the_caps_get_503_and_creates_and_decisions_get_through(
    axme_home: Path,
) -> None:
    with _soft_fd_limit(128):
        daemon = Daemon(axme_home, env={"AXME_MAX_WATCH_STREAMS": str(WATCH_CAP)}).start()
    held: list[socket.socket] = []
    try:
        assert daemon.proc is not None
        soft, hard = _soft_limit_of(daemon.proc.pid)
        assert soft == hard, "the daemon raises its soft open-files limit to the hard one"
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

        with daemon.client() as client:
            waiting = client.post("/v1/intents", json=BODY).json()["intent_id"]
            asked = client.post(
                "/v1/intents", json={**BODY, "human_task": {"title": "Ship it?"}}
            ).json()["intent_id"]

        answers: dict[str, list[int]] = {"watch": [], "events": []}
        refusals: list[dict[str, str]] = []
        targets = [("watch", "/v1/watch?wait_seconds=600")] * (WATCH_CAP + 2) + [
            ("events", f"/v1/intents/{waiting}/events/stream?wait_seconds=600")
        ] * 300
        for kind, target in targets:
            sock, status, headers = _open_stream(daemon.socket, target)
            answers[kind].append(status)
            if status == 200:
                held.append(sock)
            else:
                refusals.append(headers)
                sock.close()
        assert answers["watch"] == [200] * WATCH_CAP + [503, 503]
        accepted = answers["events"].count(200)
        watchers = int((FD_LIMIT - FD_RESERVE) * WATCHERS_SHARE)
        assert accepted == watchers - WATCH_CAP, answers["events"]
        assert set(answers["events"]) == {200, 503}
        assert all(h.get("retry-after") == "5" for h in refusals), refusals

        agent = "/v1/agents/test/dev/nobody/intents/stream?wait_seconds=600"
        sock, status, _ = _open_stream(daemon.socket, agent)  # watchers left agents room
        held.append(sock)
        assert status == 200

        with daemon.client() as client:  # everything else still gets through
            created = client.post("/v1/intents", json=BODY)
            assert created.status_code == 200, created.text
            tasks = client.get("/v1/tasks", params={"intent_id": asked}).json()["tasks"]
            decided = client.post(
                f"/v1/tasks/{tasks[0]['task_id']}/decision", json={"outcome": "approved"}
            )
            assert decided.status_code == 200, decided.text
            health = client.get("/health").json()
            assert health["held_streams"]["watch"] == {"held": WATCH_CAP, "cap": WATCH_CAP}

        for sock in held:
            sock.close()
        held.clear()
        wait_for(
            lambda: daemon.health()["held_streams"]["events"]["held"] == 0,
            what="the closed streams to give their slots back",
        )
        sock, status, _ = _open_stream(daemon.socket, "/v1/watch?wait_seconds=600")
        sock.close()
        assert status == 200
    finally:
        for sock in held:
            sock.close()
        daemon.stop()


def test_wait_keeps_waiting_while_the_daemon_holds_all_the_streams_it_allows(
    axme_home: Path,
) -> None:
    daemon = Daemon(axme_home, env={"AXME_MAX_EVENT_STREAMS": "1"}).start()
    try:
        with daemon.client() as client:
            intent_id = client.post("/v1/intents", json=BODY).json()["intent_id"]
        target = f"/v1/intents/{intent_id}/events/stream?wait_seconds=600"
        sock, status, _ = _open_stream(daemon.socket, target)
        try:
            assert status == 200
            blocked = run_cli(axme_home, "wait", intent_id, "--timeout", "2")
            assert blocked.returncode == EXIT_WAIT_TIMEOUT, blocked.stderr  # not an error
        finally:
            sock.close()
        with daemon.client() as client:
            done = {"status": "COMPLETED", "result": {"ok": True}}
            assert client.post(f"/v1/intents/{intent_id}/resolve", json=done).status_code == 200
        assert run_cli(axme_home, "wait", intent_id, "--timeout", "20").returncode == 0
    finally:
        daemon.stop()
