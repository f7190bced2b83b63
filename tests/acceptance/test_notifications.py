"""Notification hooks with a real daemon: a project's axme.toml declares a command hook and
webhooks; human tasks fire them on assignment, reminder and timeout; a flaky webhook is retried,
broken hooks are logged and never hold up the intent; hooks follow the project of the agent."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from axme_cli.project import load_config
from tests.agents import intent, wait_final
from tests.daemon import REPO, Daemon, wait_for

PY = sys.executable
SECRET = "whsec-acceptance-5e3b9d"
HOOK_PATH = "/hook/T0KEN-in-the-path"  # chat webhooks keep their credential in the path
SLEEPER = [PY, "-c", "import time; time.sleep(600)"]  # never asked: its intents wait for people

#: A command hook: appends the notice it reads on stdin, with its cwd, to the file in argv[1].
RECORD_PY = """\
import json, os, sys

notice = json.load(sys.stdin)
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"notice": notice, "cwd": os.getcwd()}) + "\\n")
"""


# -- a webhook receiver ---------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers from a script per path
    (200 once a path's script is used up)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    answers = receiver.script.get(self.path, [])
                    status = answers.pop(0) if answers else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append(Received(self.path, headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def closed_port() -> int:
    """A local port nothing listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- helpers --------------------------------------------------------------------------------------


def toml(value: object) -> str:
    """A string or a list of strings as TOML (JSON's spelling of them is valid TOML)."""
    return json.dumps(value)


def write_project(directory: Path, address: str, hooks: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "record.py").write_text(RECORD_PY)
    text = f"[agents.{toml(address)}]\ncommand = {toml(SLEEPER)}\n\n{hooks}"
    path = directory / "axme.toml"
    path.write_text(text)
    return path


def recorder_hook(out: Path, on: list[str] | None = None) -> str:
    """A [[hooks]] table running record.py, relative to the project directory it runs in."""
    text = f"[[hooks]]\ncommand = {toml([PY, 'record.py', str(out)])}\n"
    return text + (f"on = {toml(on)}\n" if on else "") + "\n"


def apply(client: httpx.Client, config: Path) -> None:
    response = client.post("/v1/projects/apply", json=load_config(config).to_wire())
    assert response.status_code == 200, response.text
    assert response.json()["changed"] is True


def human_task_intent(client: httpx.Client, address: str, **timing: Any) -> str:
    body = {
        "intent_type": "intent.test.approval.v1",
        "to_agent": address,
        "payload": {},
        "human_task": {"title": f"Ship it to {address}?", **timing},
        "agent_first": False,  # the person's own: the project's agent is a sleeper
    }
    response = client.post("/v1/intents", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["intent_id"])


def recorded(out: Path) -> list[dict[str, Any]]:
    """The notices a recorder hook wrote so far (complete lines only: one may be mid-write)."""
    try:
        lines = out.read_text().split("\n")[:-1]
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines]


def events_of(out: Path, intent_id: str) -> list[str]:
    return [
        r["notice"]["event"] for r in recorded(out) if r["notice"]["task"]["intent_id"] == intent_id
    ]


def pending_task_id(client: httpx.Client, intent_id: str) -> str:
    tasks = client.get("/v1/tasks", params={"intent_id": intent_id}).json()["tasks"]
    return str(tasks[0]["task_id"]) if tasks else ""


# -- tests ----------------------------------------------------------------------------------------


def test_command_and_webhook_hooks_get_assigned_reminder_and_timeout(
    daemon: Daemon, axme_home: Path, tmp_path: Path, receiver: Receiver
) -> None:
    address = "agent://test/hooks/ops"
    out = tmp_path / "command-hook.jsonl"
    project = tmp_path / "project"
    hooks = recorder_hook(out)
    hooks += f"[[hooks]]\nwebhook = {toml(receiver.url(HOOK_PATH))}\nsecret = {toml(SECRET)}\n\n"
    hooks += f'[[hooks]]\nwebhook = {toml(receiver.url("/timeouts"))}\non = ["timeout"]\n'
    config = write_project(project, address, hooks)
    with daemon.client() as client:
        apply(client, config)
        intent_id = human_task_intent(
            client, address, remind_after_seconds=1, deadline_seconds=3, on_timeout="reject"
        )
        wanted = ["assigned", "reminder", "timeout"]
        wait_for(lambda: events_of(out, intent_id) == wanted, timeout=20, what="the command hook")
        wait_for(lambda: len(receiver.on(HOOK_PATH)) == 3, timeout=20, what="the webhook")
        wait_for(lambda: receiver.on("/timeouts"), timeout=20, what="the timeout-only webhook")
        final = wait_final(daemon, [intent_id], timeout=20)[intent_id]
    assert final["status"] == "CANCELED", "rejected at the deadline (on_timeout = reject)"

    title = f"Ship it to {address}?"
    for line in recorded(out):
        assert line["cwd"] == str(project), "command hooks run in the project directory"
        task = line["notice"]["task"]
        assert (task["title"], task["intent_id"], task["to_agent"]) == (title, intent_id, address)
        assert line["notice"]["at"]
    assert recorded(out)[1]["notice"]["task"]["reminders_sent"] == 1

    posts = receiver.on(HOOK_PATH)
    assert [json.loads(p.body)["event"] for p in posts] == wanted
    for post in posts:
        notice = json.loads(post.body)
        assert notice["task"]["title"] == title and notice["task"]["intent_id"] == intent_id
        assert post.headers["content-type"] == "application/json"
        assert post.headers["x-axme-event"] == notice["event"]
        assert readme_verify(httpx.Headers(post.headers), post.body, SECRET)
        assert post.status == 200
    (timeout_post,) = receiver.on("/timeouts")
    assert json.loads(timeout_post.body)["event"] == "timeout"
    assert "x-axme-signature" not in timeout_post.headers  # no secret, no signature
    assert not readme_verify(httpx.Headers(timeout_post.headers), timeout_post.body, SECRET)
    assert SECRET not in daemon.log()
    assert HOOK_PATH not in daemon.log() and "T0KEN" not in daemon.log()


def readme_verify(
    headers: httpx.Headers, body: bytes, secret: str, now: float | None = None
) -> bool:
    """The README's receiver snippet, run as written (at `now`, if given)."""
    text = (REPO / "README.md").read_text()
    start = text.index("```python\nimport hashlib, hmac, time\n")
    code = text[start + len("```python\n") : text.index("```\n", start + 3)]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    if now is not None:
        namespace["time"] = SimpleNamespace(time=lambda: now)
    return bool(namespace["verify"](headers, body, secret))


def test_a_receiver_verifies_a_delivery_as_the_readme_shows_and_refuses_a_replay(
    daemon: Daemon, tmp_path: Path, receiver: Receiver
) -> None:
    address = "agent://test/hooks/verify"
    hooks = f"[[hooks]]\nwebhook = {toml(receiver.url('/signed'))}\nsecret = {toml(SECRET)}\n"
    hooks += 'on = ["assigned"]\n'
    with daemon.client() as client:
        apply(client, write_project(tmp_path / "project", address, hooks))
        human_task_intent(client, address)
        (post,) = wait_for(lambda: receiver.on("/signed"), timeout=20, what="the webhook")
    headers = httpx.Headers(post.headers)
    stamp = int(headers["x-axme-timestamp"])
    assert readme_verify(headers, post.body, SECRET)
    assert not readme_verify(headers, post.body, "another secret")
    assert not readme_verify(headers, post.body.replace(b"assigned", b"timeout"), SECRET)
    # The same delivery sent again ten minutes later is stale...
    assert not readme_verify(headers, post.body, SECRET, now=stamp + 600)
    # ...and a fresh timestamp in its place breaks the signature.
    moved = headers.copy()
    moved["x-axme-timestamp"] = str(stamp + 600)
    assert not readme_verify(moved, post.body, SECRET, now=stamp + 600)
    del moved["x-axme-timestamp"]
    assert not readme_verify(moved, post.body, SECRET)


def test_flaky_webhooks_are_retried_and_broken_hooks_never_block_the_intent(
    daemon: Daemon, tmp_path: Path, receiver: Receiver
) -> None:
    address = "agent://test/hooks/flaky"
    receiver.script["/flaky"] = [500, 500]
    down = f"http://127.0.0.1:{closed_port()}/down/token-in-the-path"
    out = tmp_path / "command-hook.jsonl"
    failing = [PY, "-c", "import sys; sys.stdin.read(); sys.exit(1)"]
    hooks = f"[[hooks]]\ncommand = {toml(failing)}\n\n"
    hooks += f"[[hooks]]\nwebhook = {toml(down)}\nsecret = {toml(SECRET)}\n\n"
    hooks += f'[[hooks]]\nwebhook = {toml(receiver.url("/flaky"))}\non = ["assigned"]\n\n'
    hooks += recorder_hook(out, on=["assigned"])
    config = write_project(tmp_path / "project", address, hooks)
    with daemon.client() as client:
        apply(client, config)
        intent_id = human_task_intent(client, address)
        task_id = wait_for(lambda: pending_task_id(client, intent_id), what="the task")
        # The broken hooks are still failing (the dead webhook backs off for seconds), yet
        # the intent waits for its person, and the decision completes it at once.
        assert intent(client, intent_id)["status"] == "WAITING"
        response = client.post(f"/v1/tasks/{task_id}/decision", json={"outcome": "approved"})
        assert response.status_code == 200, response.text
        final = wait_final(daemon, [intent_id], timeout=10)[intent_id]
        assert final["status"] == "COMPLETED"

        wait_for(lambda: events_of(out, intent_id) == ["assigned"], what="the recorder hook")
        wait_for(lambda: len(receiver.on("/flaky")) == 3, timeout=20, what="three attempts")
        attempts = receiver.on("/flaky")
        assert [a.status for a in attempts] == [500, 500, 200]
        assert len({a.body for a in attempts}) == 1, "a retry sends the same body"
        assert len({a.headers["x-axme-delivery"] for a in attempts}) == 1
        assert json.loads(attempts[0].body)["task"]["intent_id"] == intent_id

        redacted = down.split("/down")[0] + "/…"
        wait_for(
            lambda: f'command "{PY}" exited with 1 (assigned' in daemon.log(),
            what="the failing command in the daemon log",
        )
        wait_for(
            lambda: f"webhook {redacted} failed after 4 attempts" in daemon.log(),
            timeout=20,
            what="the unreachable webhook in the daemon log",
        )
        assert client.get("/health").json()["ok"]
    log = daemon.log()
    flaky = receiver.url("/flaky").removesuffix("/flaky") + "/…"
    assert f"webhook {flaky} answered 200 (assigned, task {task_id}, intent {intent_id})" in log
    assert SECRET not in log and "token-in-the-path" not in log and "sys.exit" not in log
    failed = [line for line in log.splitlines() if "exited with 1" in line]
    assert len(failed) == 1, "the failing command ran once: assigned is its only notice here"


def test_hooks_follow_the_project_that_declares_the_agent(axme_home: Path, tmp_path: Path) -> None:
    first_out, second_out = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first = write_project(tmp_path / "first", "agent://test/first/a", recorder_hook(first_out))
    second = write_project(tmp_path / "second", "agent://test/second/b", recorder_hook(second_out))
    daemon = Daemon(axme_home).start()
    try:
        with daemon.client() as client:
            apply(client, first)
            apply(client, second)
            added = {"address": "agent://test/cli/added", "command": SLEEPER, "cwd": str(tmp_path)}
            assert client.post("/v1/agents", json=added).status_code == 200
        daemon.stop()  # hooks are stored with their projects: a restarted daemon has them
        daemon = Daemon(axme_home).start()
        with daemon.client() as client:
            ours = human_task_intent(client, "agent://test/second/b")
            nobodys = human_task_intent(client, "agent://test/nobody/here")
            cli_added = human_task_intent(client, "agent://test/cli/added")
            for out in (first_out, second_out):
                for intent_id in (nobodys, cli_added):
                    wait_for(
                        lambda o=out, i=intent_id: events_of(o, i) == ["assigned"],
                        what=f"{out.name} told of {intent_id}",
                    )
            wait_for(lambda: events_of(second_out, ours) == ["assigned"], what="the owner")
        # By now the first project's hook has run for the two later intents; the second
        # project's agent is not its business.
        assert events_of(first_out, ours) == []
    finally:
        daemon.stop()


def test_the_api_checks_hooks_and_never_echoes_the_secret(daemon: Daemon, tmp_path: Path) -> None:
    body = {
        "config_path": str(tmp_path / "axme.toml"),
        "project_dir": str(tmp_path),
        "digest": "d1",
        "agents": [],
        "hooks": [{"command": ["notify-send"], "secret": SECRET}],
    }
    with daemon.client() as client:
        response = client.post("/v1/projects/apply", json=body)
        assert response.status_code == 422
        message = response.json()["error"]["message"]
        assert message == "hooks.0: secret: only a webhook takes a secret"
        assert SECRET not in response.text
        body["hooks"] = [{"webhook": "https://x.example/", "secret": 12345, "on": ["nope"]}]
        response = client.post("/v1/projects/apply", json=body)
        assert response.status_code == 422
        assert "hooks.0.secret" in response.text and "hooks.0.on.0" in response.text
        assert "12345" not in response.text
