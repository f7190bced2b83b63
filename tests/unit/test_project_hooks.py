"""Notification hooks: `[[hooks]]` in axme.toml, the daemon's model of them, where they are
stored, which fire for a task, and the `Notifier` that runs commands and posts webhooks."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from pydantic import ValidationError

from axme_cli.project import HOOK_EVENTS, ConfigError, HookConfig, load_config, redact_url
from axme_daemon.notify import Hook, Notifier, select_hooks, sign
from axme_daemon.registry import HookEvent, HookIn, ProjectIn
from axme_daemon.store.sqlite import SqliteStore

SECRET = "whsec-Sup3rSecret-91c2"
TOKEN = "T000/B000/XXXXtokenXXXX"  # a chat webhook's path is a credential too
URL = f"https://hooks.example.com/services/{TOKEN}"
PY = sys.executable
ADDR = "agent://myorg/production/data-pipeline"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir, and a PATH of our own holding `notify-send` and `python`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("notify-send", "python"):
        _executable(bin_dir / name)
    monkeypatch.setenv("PATH", str(bin_dir))
    proj = tmp_path / "proj"
    (proj / "hooks").mkdir(parents=True)
    return proj


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def _write(project: Path, text: str) -> Path:
    path = project / "axme.toml"
    path.write_text(text)
    return path


def _error(project: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(_write(project, text))
    message = info.value.message
    assert "axme.toml" in message and "\n" not in message
    return message


# -- axme.toml: valid hooks -----------------------------------------------------------------------

FULL = f"""\
[agents."{ADDR}"]
command = ["python", "agents.py"]

[[hooks]]
command = ["notify-send", "axme"]

[[hooks]]
command = "./hooks/page.sh --urgent 'on call'"
on = ["escalation", "timeout", "timeout"]

[[hooks]]
webhook = "{URL}"
secret = "{SECRET}"
on = ["assigned"]

[[hooks]]
webhook = "http://127.0.0.1:8080/axme"
"""


def test_hooks_load_and_go_to_the_daemon(project: Path) -> None:
    _executable(project / "hooks" / "page.sh")
    config = load_config(_write(project, FULL))
    assert config.hooks == (
        HookConfig(command=("notify-send", "axme")),
        HookConfig(
            command=("./hooks/page.sh", "--urgent", "on call"), on=("escalation", "timeout")
        ),
        HookConfig(webhook=URL, secret=SECRET, on=("assigned",)),
        HookConfig(webhook="http://127.0.0.1:8080/axme"),
    )
    assert config.hooks[0].on == HOOK_EVENTS == ("assigned", "reminder", "escalation", "timeout")
    assert config.to_wire()["hooks"] == [
        {"on": list(HOOK_EVENTS), "command": ["notify-send", "axme"]},
        {"on": ["escalation", "timeout"], "command": ["./hooks/page.sh", "--urgent", "on call"]},
        {"on": ["assigned"], "webhook": URL, "secret": SECRET},
        {"on": list(HOOK_EVENTS), "webhook": "http://127.0.0.1:8080/axme"},
    ]
    assert len(config.agents) == 1


def test_hooks_without_agents_and_no_hooks(project: Path) -> None:
    assert load_config(_write(project, 'hooks = [{ webhook = "https://x.example" }]\n')).hooks
    assert load_config(_write(project, "hooks = []\n")).hooks == ()
    assert load_config(_write(project, "")).to_wire()["hooks"] == []


# -- axme.toml: bad hooks, each message names the file, the place and what was expected ----------

HOOK = "[[hooks]]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[hooks]\ncommand = ['notify-send']\n",
            "axme.toml: hooks: expected an array of tables, like [[hooks]] then command = [...]"
            ' or webhook = "https://...", got a table',
        ),
        ('hooks = ["notify-send"]\n', "axme.toml: hooks[0]: expected a table ([[hooks]] then"),
        (
            HOOK + 'command = ["notify-send"]\nevents = ["timeout"]\n',
            'axme.toml: hooks[0]: unknown key "events" (allowed: command, on, secret, webhook)',
        ),
        (
            HOOK + 'command = ["notify-send"]\nwebhok = "https://x"\n',
            'hooks[0]: unknown key "webhok" (did you mean "webhook"?',
        ),
        (
            HOOK + 'command = ["notify-send"]\nwebhook = "https://x.example"\n',
            "axme.toml: hooks[0]: has both a command and a webhook; give one per [[hooks]] table",
        ),
        (
            HOOK + 'on = ["timeout"]\n',
            'axme.toml: hooks[0]: needs a command = [...] or a webhook = "https://..."',
        ),
        (
            HOOK + 'command = ["notify-send"]\n' + HOOK + 'on = ["timeout"]\n',
            "axme.toml: hooks[1]: needs a command",
        ),
        (HOOK + "command = 3\n", 'hooks[0].command: expected a list of strings (a list like ["'),
        (HOOK + "command = []\n", "axme.toml: hooks[0].command: must not be empty"),
        (HOOK + 'command = ["notify-send", 1]\n', "hooks[0].command[1]: expected a non-empty"),
        (
            HOOK + 'command = ["notify-sendd", "axme"]\n',
            'axme.toml: hooks[0].command: "notify-sendd" not found (not on PATH and not a file'
            " relative to {project})",
        ),
        (
            HOOK + 'command = ["./hooks/missing.sh"]\n',
            'hooks[0].command: "./hooks/missing.sh" not found (no such file relative to {project})',
        ),
        (
            HOOK + 'command = ["notify-send"]\non = "timeout"\n',
            'axme.toml: hooks[0].on: expected a list of events [like "assigned", "timeout"],'
            ' got "timeout"',
        ),
        (
            HOOK + 'command = ["notify-send"]\non = []\n',
            "hooks[0].on: must not be empty (leave it out for every event)",
        ),
        (
            HOOK + 'command = ["notify-send"]\non = ["timeout", "assign"]\n',
            'axme.toml: hooks[0].on[1]: unknown event "assign" (did you mean "assigned"?'
            " allowed: assigned, reminder, escalation, timeout)",
        ),
        (HOOK + 'command = ["notify-send"]\non = [1]\n', "hooks[0].on[0]: expected an event name"),
        (HOOK + "webhook = 3\n", "hooks[0].webhook: expected an http:// or https:// URL, got 3"),
        (
            HOOK + 'webhook = "ftp://files.example.com/x"\n',
            'hooks[0].webhook: expected an http:// or https:// URL, got scheme "ftp"',
        ),
        (
            HOOK + 'webhook = "hooks.example.com/x"\n',
            "hooks[0].webhook: expected an http:// or https:// URL, got no scheme",
        ),
        (
            HOOK + 'webhook = "https:///x"\n',
            "hooks[0].webhook: expected an http:// or https:// URL",
        ),
        (HOOK + 'webhook = "https://x.example:port/"\n', "this one does not parse"),
        (HOOK + 'webhook = "https://x.example/a b"\n', "without spaces or control characters"),
    ],
)
def test_bad_hooks_say_where_and_what(project: Path, text: str, expected: str) -> None:
    assert expected.format(project=project) in _error(project, text)


@pytest.mark.parametrize(
    "text",
    [
        HOOK + f'command = ["notify-send"]\nsecret = "{SECRET}"\n',
        HOOK + f'webhook = "https://x.example"\nsecret = ["{SECRET}"]\n',
        HOOK + f'webhook = "https://x.example"\nsecret = {{ value = "{SECRET}" }}\n',
        HOOK + 'webhook = "https://x.example"\nsecret = ""\n',
        HOOK + f'webhook = "https://x.example"\nsecret = "{SECRET}"\non = ["nope"]\n',
        HOOK + f'webhook = "https://x.example"\nsecret = "{SECRET}"\nsecrets = 1\n',
        HOOK + f'webhook = "ftp://x.example/{TOKEN}"\nsecret = "{SECRET}"\n',
        HOOK + f'webhook = "https://x.example/{TOKEN} "\nsecret = "{SECRET}"\n',
        HOOK + f'webhook = "https://x.example/{TOKEN}"\nsecret = "{SECRET}\n',
        HOOK + f'webhook = "https://x.example/"\nsecret = "{SECRET}"\nsecret = "x"\n',
        HOOK + f'command = ["notify-send"]\nwebhook = "{URL}"\nsecret = "{SECRET}"\n',
    ],
)
def test_secrets_and_webhook_paths_never_appear_in_errors(project: Path, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(project, text))
    for shown in (str(info.value), repr(info.value), str(info.value.details)):
        assert SECRET not in shown
        assert TOKEN not in shown


def test_secret_errors_say_what_is_wrong(project: Path) -> None:
    message = _error(project, HOOK + f'command = ["notify-send"]\nsecret = "{SECRET}"\n')
    assert "axme.toml: hooks[0].secret: only a webhook takes a secret" in message
    message = _error(project, HOOK + 'webhook = "https://x.example"\nsecret = 42\n')
    assert message.endswith(
        "axme.toml: hooks[0].secret: expected a non-empty string (the HMAC key)"
    )


def test_secrets_and_webhook_paths_never_appear_in_reprs(project: Path) -> None:
    config = load_config(_write(project, FULL.replace("./hooks/page.sh", "notify-send")))
    hook = config.hooks[2]
    for shown in (repr(config), str(config), repr(hook), str(hook), repr(config.hooks)):
        assert SECRET not in shown
        assert TOKEN not in shown
    assert repr(hook) == (
        "HookConfig(webhook='https://hooks.example.com/…', secret='***', on=('assigned',))"
    )
    assert hook.secret == SECRET and hook.webhook == URL  # hidden, not lost
    assert "notify-send" in repr(config.hooks[0])


def test_redact_url() -> None:
    assert redact_url(URL) == "https://hooks.example.com/…"
    assert redact_url("http://user:pw@127.0.0.1:9/") == "http://127.0.0.1:9/"
    assert redact_url("https://x.example?token=1") == "https://x.example/…"
    assert redact_url("nonsense") == "(an invalid URL)"


# -- the daemon's side: the wire model, storage, and which hooks a task fires --------------------


def test_the_daemon_and_the_cli_agree_on_the_events() -> None:
    assert get_args(HookEvent) == HOOK_EVENTS


def test_project_wire_validates_in_the_daemon(project: Path) -> None:
    _executable(project / "hooks" / "page.sh")
    wire = load_config(_write(project, FULL)).to_wire()
    parsed = ProjectIn(**wire)
    stored = parsed.stored_hooks()
    assert stored[0] == {
        "command": ["notify-send", "axme"],
        "on": list(HOOK_EVENTS),
        "cwd": str(project),
    }
    assert stored[2] == {"webhook": URL, "secret": SECRET, "on": ["assigned"]}  # no cwd
    hooks = [HookIn(**s).hook("/p/axme.toml") for s in stored]
    assert hooks[0].cwd == str(project) and hooks[0].on == frozenset(HOOK_EVENTS)
    assert hooks[2].secret == SECRET
    for shown in (repr(parsed), repr(parsed.hooks[2]), repr(hooks[2]), repr(hooks)):
        assert SECRET not in shown
        assert TOKEN not in shown
    assert hooks[2].describe() == "webhook https://hooks.example.com/…"
    assert hooks[0].describe() == 'command "notify-send"'


def test_projects_without_hooks_still_apply() -> None:
    wire = {"config_path": "/p/axme.toml", "project_dir": "/p", "digest": "d", "agents": []}
    assert ProjectIn(**wire).hooks == []


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        ({"command": ["x"], "webhook": "https://x.example"}, "exactly one of command and webhook"),
        ({"on": ["timeout"]}, "exactly one of command and webhook"),
        ({"command": ["x"], "secret": SECRET}, "only a webhook takes a secret"),
        ({"command": []}, "at least 1 item"),
        ({"command": ["x", ""]}, "non-empty"),
        ({"webhook": "ftp://x.example", "secret": SECRET}, "http:// or https:// URL"),
        ({"webhook": "https://x.example", "secret": ""}, "at least 1 character"),
        ({"webhook": "https://x.example", "secret": 7}, "valid string"),
        ({"webhook": "https://x.example", "on": ["assign"]}, "'assigned'"),
        ({"webhook": "https://x.example", "on": []}, "at least 1 item"),
        ({"webhook": "https://x.example", "shell": True}, "Extra inputs are not permitted"),
    ],
)
def test_bad_hooks_on_the_wire(hook: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        HookIn(**hook)
    # The API's 422 shows each error's msg (never its input, which may hold the secret).
    messages = "; ".join(e["msg"] for e in info.value.errors())
    assert expected in messages
    assert SECRET not in messages


def _hook(name: str) -> Hook:
    return Hook(on=frozenset(HOOK_EVENTS), command=(name,), source=name)


def test_which_hooks_fire_for_a_task() -> None:
    a1, a2, b1 = _hook("a1"), _hook("a2"), _hook("b1")
    projects = {"/a/axme.toml": [a1, a2], "/b/axme.toml": [b1], "/c/axme.toml": []}
    sources = {
        "agent://x/a": "/a/axme.toml",
        "agent://x/b": "/b/axme.toml",
        "agent://x/c": "/c/axme.toml",
        "agent://x/cli": "cli",
    }
    assert select_hooks("agent://x/a", sources, projects) == [a1, a2]
    assert select_hooks("agent://x/b", sources, projects) == [b1]
    assert select_hooks("agent://x/c", sources, projects) == []  # its project has no hooks
    # Declared by no project: an address nobody registered, or one `axme agents add`ed.
    assert select_hooks("agent://x/nobody", sources, projects) == [a1, a2, b1]
    assert select_hooks("agent://x/cli", sources, projects) == [a1, a2, b1]
    assert select_hooks("agent://x/nobody", {}, {}) == []


async def test_the_store_keeps_a_projects_hooks(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "axme.db")
    await store.open()
    try:
        spec = {"address": "agent://p/a", "command": ["x"], "cwd": "/"}
        hooks = [{"webhook": URL, "secret": SECRET, "on": ["assigned"]}]
        assert await store.put_agents("/p/axme.toml", "d1", [spec], True, hooks=hooks)
        assert await store.put_agents("/q/axme.toml", "d1", [], True)
        assert await store.put_agents("cli", None, [], False, hooks=[{"command": ["y"]}])
        projects = {p["config_path"]: p for p in await store.list_projects()}
        assert set(projects) == {"/p/axme.toml", "/q/axme.toml"}  # 'cli' is not a project
        assert projects["/p/axme.toml"]["hooks"] == hooks
        assert projects["/q/axme.toml"]["hooks"] == []
        # The same digest changes nothing; a new one replaces the hooks.
        assert not await store.put_agents("/p/axme.toml", "d1", [spec], True, hooks=[])
        assert (await store.list_projects())[0]["hooks"] == hooks
        assert await store.put_agents("/p/axme.toml", "d2", [spec], True, hooks=[])
        assert (await store.list_projects())[0]["hooks"] == []
    finally:
        await store.close()


# -- the Notifier ---------------------------------------------------------------------------------

TASK = {
    "task_id": "t-1",
    "intent_id": "i-1",
    "to_agent": ADDR,
    "title": "Ship it?",
    "status": "PENDING",
}


class Recorded:
    """A scripted webhook receiver (httpx.MockTransport): answers per URL path, records all."""

    def __init__(self, script: dict[str, list[int | Exception]] | None = None) -> None:
        self.script = script or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answers = self.script.get(request.url.path, [])
        answer = answers.pop(0) if answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)

    def on(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


@pytest.fixture
def quiet_backoff() -> tuple[float, ...]:
    return (0.01, 0.02, 0.04)


def _notifier(hooks: list[Hook], received: Recorded | None = None, **options: Any) -> Notifier:
    transport = None if received is None else httpx.MockTransport(received)
    return Notifier(
        lambda address: hooks if address == ADDR else [], transport=transport, **options
    )


async def _settle(notifier: Notifier, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while notifier.pending:
            await asyncio.sleep(0.01)


@pytest.fixture
def hook_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="axme_daemon.notify"):
        yield caplog


async def test_webhook_is_signed_retried_on_5xx_and_not_on_4xx(
    quiet_backoff: tuple[float, ...], hook_log: pytest.LogCaptureFixture
) -> None:
    received = Recorded(
        {
            "/flaky": [500, 503],
            f"/gone/{TOKEN}": [404],
            "/down": [httpx.ConnectError("refused")] * 9,
        }
    )
    hooks = [
        Hook(on=frozenset(HOOK_EVENTS), webhook="http://chat.test/flaky", secret=SECRET),
        Hook(on=frozenset(HOOK_EVENTS), webhook=f"http://chat.test/gone/{TOKEN}"),
        Hook(on=frozenset(HOOK_EVENTS), webhook="http://chat.test/down"),
        Hook(on=frozenset({"timeout"}), webhook="http://chat.test/timeouts"),
    ]
    notifier = _notifier(hooks, received, backoff=quiet_backoff)
    try:
        notifier({"event": "assigned", "task": TASK})
        assert notifier.pending == 3  # scheduled, not awaited: the caller goes on at once
        await _settle(notifier)
    finally:
        await notifier.close()

    flaky = received.on("/flaky")
    assert len(flaky) == 3
    assert len({r.content for r in flaky}) == 1, "every retry sends the same bytes"
    assert len({r.headers["x-axme-delivery"] for r in flaky}) == 1
    body = flaky[0].content
    assert json.loads(body)["event"] == "assigned" and json.loads(body)["task"] == TASK
    assert json.loads(body)["at"].endswith("Z")
    headers = flaky[0].headers
    assert headers["content-type"] == "application/json"
    assert headers["x-axme-event"] == "assigned"
    for attempt in flaky:  # each attempt signs its own time: a retry is not stale
        stamp = attempt.headers["x-axme-timestamp"]
        assert abs(time.time() - int(stamp)) < 60
        signed = stamp.encode() + b"." + body
        expected = hmac.new(SECRET.encode(), signed, "sha256").hexdigest()
        signature = attempt.headers["x-axme-signature"]
        assert signature == f"sha256={expected}" == sign(SECRET, stamp, body)
    assert len(received.on(f"/gone/{TOKEN}")) == 1, "a 4xx is not retried"
    assert "x-axme-signature" not in received.on(f"/gone/{TOKEN}")[0].headers
    assert len(received.on("/down")) == 4, "connection errors are retried, 4 attempts in all"
    assert received.on("/timeouts") == [], "a hook fires only for its events"

    text = hook_log.text
    assert "webhook http://chat.test/… answered 200 (assigned, task t-1, intent i-1)" in text
    assert "webhook http://chat.test/… answered 404, not retried" in text
    assert "webhook http://chat.test/… failed after 4 attempts, last: ConnectError" in text
    assert SECRET not in text and TOKEN not in text


async def test_command_hook_gets_the_notice_on_stdin_in_its_directory(
    tmp_path: Path, hook_log: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "seen.json"
    script = (
        "import json, os, sys; notice = json.load(sys.stdin); "
        "env = {k: v for k, v in os.environ.items() if k.startswith('AXME_')}; "
        f"open({str(out)!r}, 'w').write(json.dumps([notice, os.getcwd(), env]))"
    )
    hook = Hook(on=frozenset({"reminder"}), command=(PY, "-c", script), cwd=str(tmp_path))
    notifier = _notifier([hook])
    try:
        notifier({"event": "assigned", "task": TASK})  # not one of its events
        notifier({"event": "reminder", "task": {**TASK, "reminders_sent": 1}})
        await _settle(notifier)
    finally:
        await notifier.close()
    notice, cwd, env = json.loads(out.read_text())
    assert notice["event"] == "reminder"
    assert notice["task"] == {**TASK, "reminders_sent": 1}
    assert cwd == str(tmp_path)
    assert env == {
        "AXME_EVENT": "reminder",
        "AXME_TASK_ID": "t-1",
        "AXME_INTENT_ID": "i-1",
        "AXME_TASK_TITLE": "Ship it?",
    }
    assert f'command "{PY}" ran (reminder, task t-1, intent i-1)' in hook_log.text


async def test_failing_commands_are_logged_by_program_and_exit_code(
    tmp_path: Path, hook_log: pytest.LogCaptureFixture
) -> None:
    hooks = [
        Hook(
            on=frozenset(HOOK_EVENTS),
            command=(PY, "-c", "import sys; sys.stderr.write('no display\\n'); sys.exit(3)"),
        ),
        Hook(on=frozenset(HOOK_EVENTS), command=(str(tmp_path / "missing"), "--token", SECRET)),
        Hook(on=frozenset(HOOK_EVENTS), command=(PY, "-c", "import time; time.sleep(30)")),
    ]
    notifier = _notifier(hooks, command_timeout=0.5)
    try:
        notifier({"event": "timeout", "task": TASK})
        await _settle(notifier)
    finally:
        await notifier.close()
    text = hook_log.text
    assert f'command "{PY}" exited with 3 (timeout, task t-1, intent i-1); stderr: no display' in (
        text
    )
    assert f'command "{tmp_path}/missing" could not start (timeout, task t-1, intent i-1)' in text
    assert f'command "{PY}" timed out after 0.5 s and was killed' in text
    assert SECRET not in text and "sys.exit" not in text  # argv[0] only


async def test_a_broken_lookup_never_raises_into_the_engine(
    hook_log: pytest.LogCaptureFixture,
) -> None:
    def broken(address: str) -> list[Hook]:
        raise RuntimeError("registry gone")

    notifier = Notifier(broken)
    notifier({"event": "assigned", "task": TASK})  # logged, not raised
    notifier({"no": "event"})
    await notifier.close()
    assert "could not schedule a notice" in hook_log.text


async def test_close_cancels_pending_deliveries_and_kills_their_processes(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    received = Recorded({"/down": [httpx.ConnectError("refused")] * 9})
    hooks = [
        Hook(on=frozenset(HOOK_EVENTS), command=(PY, "-c", script)),
        Hook(on=frozenset(HOOK_EVENTS), webhook="http://chat.test/down"),
    ]
    notifier = _notifier(hooks, received, backoff=(30.0,))
    notifier({"event": "assigned", "task": TASK})
    async with asyncio.timeout(10):
        while not pid_file.exists() or not pid_file.read_text() or not received.requests:
            await asyncio.sleep(0.01)
    pid = int(pid_file.read_text())
    async with asyncio.timeout(5):  # not the 60 s sleep, nor the 30 s backoff
        await notifier.close(grace=0.1)
    assert notifier.pending == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    notifier({"event": "reminder", "task": TASK})  # after close: ignored
    assert notifier.pending == 0
