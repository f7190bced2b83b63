"""The README's agents run as written: its `agents/pipeline.py`, its `axme.toml` and the
command after them, taken from the README's fenced code blocks, on a fresh home, with a
venv that is not activated (the `python` on PATH cannot import axme_cli), end COMPLETED
with the result the README shows; its saga (`agents/trip.py`) ends FAILED, undone as its
timeline shows."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from datetime import datetime
from pathlib import Path

from markdown_it import MarkdownIt

from axme_cli.errors import EXIT_FAILED
from tests.daemon import REPO, run_cli

README = REPO / "README.md"


def fences() -> list[tuple[str, str]]:
    """Every fenced code block of the README: (its language, its text)."""
    tokens = MarkdownIt().parse(README.read_text())
    return [(t.info.strip(), t.content) for t in tokens if t.type == "fence"]


def the_agent_example() -> tuple[str, str, str, str]:
    """The agent, its axme.toml, the command that sends it work and the output shown."""
    blocks = fences()
    agent = next(i for i, (lang, text) in enumerate(blocks) if text.startswith("# agents/"))
    config, commands, shown = blocks[agent + 1 : agent + 4]
    assert blocks[agent][0] == "python"
    assert config[0] == "toml" and config[1].startswith("# axme.toml")
    assert commands[0] == "sh" and shown[0] == "text"
    return blocks[agent][1], config[1], commands[1], shown[1]


def command_lines(text: str) -> list[list[str]]:
    """The shell lines of a block as argv lists (continuations joined, comments dropped)."""
    joined = text.replace("\\\n", " ")
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def axme_command() -> list[str]:
    """The venv's `axme` script, run by path as the README's set-up does (not activated)."""
    script = Path(sys.executable).parent / "axme"
    return [str(script)] if script.exists() else [sys.executable, "-m", "axme_cli"]


def assert_like(shown: object, got: object) -> None:
    """`got` is what the README shows; a timestamp shown stands for any timestamp."""
    if isinstance(shown, dict):
        assert isinstance(got, dict) and got.keys() == shown.keys(), (shown, got)
        for key, value in shown.items():
            assert_like(value, got[key])
    elif isinstance(shown, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+", shown):
        assert isinstance(got, str)
        datetime.fromisoformat(got)
    else:
        assert got == shown


def project_of(tmp_path: Path, agent: str, config: str) -> Path:
    """A project directory with the agent (at the path its first line names) and axme.toml."""
    project = tmp_path / "project"
    script = project / agent.splitlines()[0].removeprefix("# ")
    script.parent.mkdir(parents=True)
    script.write_text(agent)
    (project / "axme.toml").write_text(config)
    return project


def test_the_readme_agent_completes_with_the_result_shown(cli_home: Path, tmp_path: Path) -> None:
    agent, config, commands, shown = the_agent_example()
    project = project_of(tmp_path, agent, config)

    # A `python` on PATH that is not axme's, as on a machine whose venv is not activated.
    other_bin = tmp_path / "bin"
    other_bin.mkdir()
    other_python = other_bin / "python"
    other_python.write_text(
        "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'axme_cli'\" >&2\nexit 1\n"
    )
    other_python.chmod(0o755)
    path = os.pathsep.join([str(other_bin), "/usr/bin", "/bin"])

    lines = command_lines(commands)
    assert lines and all(argv[0] == "axme" for argv in lines)
    for argv in lines:
        result = run_cli(
            cli_home, *argv[1:], cwd=project, env={"PATH": path}, program=axme_command()
        )
        assert result.returncode == 0, (argv, result.stdout, result.stderr)

    first, _, rest = shown.partition("\n")
    head, _, body = result.stdout.partition("\n")
    assert re.fullmatch(r"[0-9a-f-]{36} COMPLETED", first)
    assert re.fullmatch(r"[0-9a-f-]{36} COMPLETED", head), result.stdout
    assert_like(json.loads(rest), json.loads(body))


def the_saga_example() -> tuple[str, str, str, str]:
    """The Sagas section's agent, its axme.toml, its command and the timeline shown."""
    blocks = fences()
    agent = next(i for i, (_, text) in enumerate(blocks) if text.startswith("# agents/trip.py"))
    config, commands, shown = blocks[agent + 1 : agent + 4]
    assert blocks[agent][0] == "python" and config[0] == "toml"
    assert commands[0] == "sh" and shown[0] == "text"
    return blocks[agent][1], config[1], commands[1], shown[1]


def test_the_readme_saga_undoes_its_steps_as_shown(cli_home: Path, tmp_path: Path) -> None:
    agent, config, commands, shown = the_saga_example()
    project = project_of(tmp_path, agent, config)

    (argv,) = command_lines(commands)
    sent = run_cli(cli_home, *argv[1:], cwd=project, program=axme_command())
    assert sent.returncode == EXIT_FAILED, (sent.stdout, sent.stderr)
    intent_id = sent.stdout.split()[0]
    final = json.loads(run_cli(cli_home, "show", "--json", intent_id, cwd=project).stdout)
    assert final["intent"]["status"] == "FAILED" and final["intent"]["compensated"] is True

    # The timeline has the README's lines in that order (the clock, seq and the delivery of
    # the compensations aside), and ends with its last.
    timeline = run_cli(cli_home, "show", intent_id, cwd=project).stdout.splitlines()
    lines = iter(" ".join(line.split()) for line in timeline if " intent." in line)
    expected = [line.split(None, 1) for line in shown.strip().splitlines()]
    for kind, text in expected:
        want = " ".join(text.split())
        assert any(f" {kind} " in got and want in got for got in lines), (kind, text, timeline)
    assert next(lines, None) is None, timeline

    logs = run_cli(cli_home, "agents", "logs", "trips", cwd=project).stdout
    assert logs.index("refunded ch_1042") < logs.index("released h-paris-4711"), logs
