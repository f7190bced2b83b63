"""Sharp edges a new user meets in the first hour: one rule for agent addresses, removing a
declared agent, and the small things (empty keys, statuses, messages, exit codes, help)."""

from __future__ import annotations

from pathlib import Path

from tests.daemon import run_cli


def one_error_line(result: object, code: int = 2) -> str:
    import subprocess

    assert isinstance(result, subprocess.CompletedProcess)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


# -- 6. one rule for an agent's address -----------------------------------------------------------


def test_agents_add_and_axme_toml_take_the_same_addresses(cli_home: Path, tmp_path: Path) -> None:
    (tmp_path / "axme.toml").write_text('[agents."bad-address"]\ncommand = ["python"]\n')
    config = str(tmp_path / "axme.toml")
    declared = one_error_line(
        run_cli(cli_home, "--config", config, "send", "t.v1", "--to", "agent://a/b")
    )
    added = one_error_line(run_cli(cli_home, "agents", "add", "bad-address", "--", "python"))
    reason = (
        'not an agent address (expected agent://org/env/name); did you mean "agent://bad-address"?'
    )
    assert declared.endswith(f'agents."bad-address": {reason}'), declared
    assert added == f'error: "bad-address": {reason}', added
    assert not (cli_home / "run" / "axme.sock").exists(), "a refused add reached the daemon"
