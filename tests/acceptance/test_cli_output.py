"""What the CLI prints for people and for pipes: next-page hints, whole values when piped,
one line per row in a terminal, and an agent's traceback as the lines Python printed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.test_cli import ok
from tests.agents import AGENTS
from tests.daemon import env_for, run_cli, stop_home_daemon
from tests.terminal import run_in_terminal

TYPE = "intent.pipeline.process.v1"
AGENT = "agent://myorg/production/data-pipeline"
LONG_AGENT = "agent://myorg/production/postgres-maintenance-window-coordinator"
LONG_TITLE = "Apply the prod-postgres-main schema migration during the maintenance window?"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def sent(home: Path, *args: str) -> str:
    return ok(run_cli(home, *args)).stdout.strip()


# -- pagination ------------------------------------------------------------------------------


@pytest.fixture
def spaced_home() -> Iterator[Path]:
    """A home whose path a shell must have quoted (and not the one AXME_HOME names)."""
    home = Path(tempfile.mkdtemp(prefix="axme x-", dir="/tmp"))
    yield home
    stop_home_daemon(home)
    shutil.rmtree(home, ignore_errors=True)


def _follow(home: Path, hint: str) -> subprocess.CompletedProcess[str]:
    """Run a printed `more: axme ...` hint through a shell, as a person pastes it."""
    env = env_for(home)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    assert shutil.which("axme", path=env["PATH"]), "axme is not installed next to python"
    return ok(subprocess.run(["sh", "-c", hint], env=env, capture_output=True, text=True))


def _pages(home: Path, first: subprocess.CompletedProcess[str], as_json: bool) -> list[str]:
    """The intent ids on every page, following each page's hint to the next."""
    ids: list[str] = []
    page = ok(first)
    while True:
        if as_json:
            rows = [json.loads(line) for line in page.stdout.splitlines()]
            assert all(set(row) >= {"intent_id", "status"} for row in rows), page.stdout
            ids += [row["intent_id"] for row in rows]
        else:
            ids += re.findall(rf"^({UUID})\s", page.stdout, re.M)
        hints = re.findall(r"^more: (.+)$", page.stderr, re.M)
        if not hints:
            return ids
        assert len(hints) == 1 and page.stderr.rstrip().endswith(hints[0]), page.stderr
        assert ("--json" in hints[0]) == as_json, hints[0]
        page = _follow(home, hints[0])


def test_next_page_hints_keep_every_filter_quoted_for_the_shell(
    cli_home: Path, spaced_home: Path
) -> None:
    at = ("--home", str(spaced_home))

    def send(agent: str = AGENT, intent_type: str = TYPE) -> str:
        return sent(cli_home, *at, "send", intent_type, "--to", agent)

    wanted: list[str] = []
    for _ in range(3):
        wanted.insert(0, send())  # newest first
        ok(run_cli(cli_home, *at, "cancel", wanted[0]))
    send()  # SUBMITTED: not CANCELED
    for other in (send(agent="agent://myorg/production/other"), send(intent_type="intent.x.v1")):
        ok(run_cli(cli_home, *at, "cancel", other))

    filters = ("--status", "canceled", "--agent", AGENT, "--type", TYPE, "--limit", "1")
    first = run_cli(cli_home, *at, "list", *filters)
    assert f"--home '{spaced_home}'" in first.stderr, first.stderr
    assert _pages(cli_home, first, as_json=False) == wanted
    first = run_cli(cli_home, *at, "list", "--json", *filters)
    assert _pages(cli_home, first, as_json=True) == wanted
    # The home AXME_HOME names is another one: nothing there.
    assert ok(run_cli(cli_home, "list", "--json")).stdout == ""


# -- piped or in a terminal ------------------------------------------------------------------


def test_piped_output_is_whole_and_a_terminal_gets_one_line_per_row(cli_home: Path) -> None:
    intent_id = sent(cli_home, "send", TYPE, "--to", LONG_AGENT)
    waiting_id = sent(cli_home, "send", TYPE, "--to", LONG_AGENT, "--approval", LONG_TITLE)
    (task,) = [
        json.loads(line) for line in ok(run_cli(cli_home, "inbox", "--json")).stdout.splitlines()
    ]
    short_agent = LONG_AGENT.removeprefix("agent://")

    # Piped (a script, `| grep`, a CI log): whole ids, addresses and titles, a row per line.
    listed = ok(run_cli(cli_home, "list")).stdout.splitlines()
    assert len(listed) == 3, listed
    row = next(line for line in listed if line.startswith(intent_id))
    assert short_agent in row and "…" not in row, row
    inbox = ok(run_cli(cli_home, "inbox")).stdout.splitlines()
    assert len(inbox) == 2, inbox
    assert inbox[1].startswith(task["task_id"] + " "), inbox[1]
    for whole in (LONG_TITLE, waiting_id, short_agent):
        assert whole in inbox[1], inbox[1]
    shown = ok(run_cli(cli_home, "show", waiting_id)).stdout
    assigned = next(line for line in shown.splitlines() if "intent.human_task_assigned" in line)
    assert f"task {task['task_id']} approval: {LONG_TITLE!r}" in assigned, assigned

    # An 80-column terminal: each row on one line within it; what is too long ends in `…`.
    code, shown, _ = run_in_terminal(cli_home, "inbox", columns=80)
    assert code == 0
    lines = shown.rstrip("\n").splitlines()
    assert len(lines) == 2 and all(len(line.rstrip()) <= 80 for line in lines), shown
    assert lines[1].startswith(task["task_id"][:8] + " "), lines[1]
    title = lines[1][9 : lines[1].index(" " + waiting_id[:8] + " ")].rstrip()
    assert title.endswith("…") and LONG_TITLE.startswith(title[:-1]), lines[1]
    assert len(title) >= 20, f"the title gets most of the room: {lines[1]!r}"
    code, shown, _ = run_in_terminal(cli_home, "list", columns=80)
    assert code == 0
    lines = shown.rstrip("\n").splitlines()
    assert len(lines) == 3 and all(len(line.rstrip()) <= 80 for line in lines), shown
    assert lines[2].split()[0] == intent_id[:8]
    # And a wide one has room for all of it.
    code, shown, _ = run_in_terminal(cli_home, "inbox", columns=200)
    assert LONG_TITLE in shown and short_agent in shown, shown


# -- failures --------------------------------------------------------------------------------


def test_a_failed_intents_traceback_reads_as_text_in_show_and_wait(
    cli_home: Path, tmp_path: Path
) -> None:
    agent = "agent://test/cli/handlers"
    script = str(AGENTS / "handlers_agent.py")
    ok(
        run_cli(
            cli_home, "agents", "add", agent, "--cwd", str(tmp_path), "--", sys.executable, script
        )
    )
    send = ("send", "intent.test.boom.v1", "--to", agent, "-p", '{"row": 7}')
    waited = run_cli(cli_home, *send, "--wait", "--timeout", "60s")
    assert waited.returncode == 6, waited.stderr
    intent_id = waited.stdout.split()[0]
    shown = ok(run_cli(cli_home, "show", intent_id)).stdout
    error = shown[shown.index("\nerror\n") : shown.index("\ntimeline\n")]
    for text in (waited.stdout, error):
        lines = text.splitlines()
        assert "ValueError: bad row 7" in lines, text
        assert "Traceback (most recent call last):" in lines, text
        assert any(line.strip().startswith('raise ValueError(f"bad row') for line in lines), text
        assert "\\n" not in text and '"traceback"' not in text, text
    failed = next(line for line in shown.splitlines() if "intent.failed" in line)
    assert failed.rstrip().endswith("FAILED ValueError: bad row 7"), failed
    # Scripts still get the record as it is.
    record = json.loads(ok(run_cli(cli_home, "show", intent_id, "--json")).stdout)
    assert record["intent"]["error"]["traceback"].startswith("Traceback (most recent call last):")
