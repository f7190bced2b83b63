"""A broken axme.toml above the working directory blocks only the commands that need it:
`send` (it declares the agents sends go to) fails; on-call work warns once and goes on; and
`--no-config` or AXME_NO_CONFIG=1 leaves the file out altogether."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon import Daemon, env_for

pytestmark = pytest.mark.acceptance

BROKEN = '[agents."agent://p/dev/x"\ncommand = ["true"]\n'  # no closing bracket
APPROVAL = ["send", "intent.p.v1", "--to", "agent://p/dev/gate", "--approval", "Ship?"]


def axme(
    home: Path, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "axme_cli", *args],
        env={**env_for(home), **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A working directory two levels under a broken axme.toml."""
    (tmp_path / "axme.toml").write_text(BROKEN)
    work = tmp_path / "service" / "src"
    work.mkdir(parents=True)
    return work


def test_send_needs_the_project_and_says_what_is_wrong(daemon: Daemon, project: Path) -> None:
    result = axme(daemon.home, project, *APPROVAL)
    assert result.returncode == 2
    assert "axme.toml" in result.stderr and "not valid TOML" in result.stderr
    with daemon.client() as client:
        assert client.get("/v1/intents").json()["intents"] == []


@pytest.mark.parametrize(
    "how", [["--no-config"], ["AXME_NO_CONFIG=1"]], ids=["--no-config", "AXME_NO_CONFIG"]
)
def test_no_config_leaves_the_file_out(daemon: Daemon, project: Path, how: list[str]) -> None:
    flags = [h for h in how if h.startswith("--")]
    env = dict(h.split("=", 1) for h in how if not h.startswith("--"))
    sent = axme(daemon.home, project, *flags, *APPROVAL, env=env)
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr == ""
    for args in (["list"], ["inbox"], ["approve", sent.stdout.strip()]):
        result = axme(daemon.home, project, *flags, *args, env=env)
        assert (result.returncode, result.stderr) == (0, ""), args


def test_commands_that_do_not_need_the_project_warn_once_and_go_on(
    daemon: Daemon, project: Path
) -> None:
    sent = axme(daemon.home, project, "--no-config", *APPROVAL)
    intent_id = sent.stdout.strip()
    for args in (
        ["list"],
        ["list", "--json"],
        ["show", intent_id],
        ["inbox"],
        ["agents", "list"],
        ["approve", intent_id[:8], "--json"],
        ["wait", intent_id, "--json"],
    ):
        result = axme(daemon.home, project, *args)
        assert result.returncode == 0, (args, result.stderr)
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1, (args, result.stderr)
        assert str(project.parent.parent / "axme.toml") in warnings[0]
        assert "not valid TOML" in warnings[0] and "--no-config" in warnings[0]
    assert json.loads(axme(daemon.home, project, "show", intent_id, "--json").stdout)["intent"][
        "status"
    ] == ("COMPLETED")


def test_a_named_config_must_be_valid(daemon: Daemon, project: Path) -> None:
    named = project.parent.parent / "axme.toml"
    result = axme(daemon.home, project, "--config", str(named), "list")
    assert result.returncode == 2
    assert "not valid TOML" in result.stderr and "warning" not in result.stderr


def test_config_and_no_config_conflict(daemon: Daemon, project: Path) -> None:
    for args in (["list"], ["approve", "3f2a"]):
        result = axme(daemon.home, project, "--config", "axme.toml", "--no-config", *args)
        assert result.returncode == 2
        assert result.stderr.strip() == "error: --config and --no-config: give one or the other"
