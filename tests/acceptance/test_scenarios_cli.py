"""`axme scenarios validate | apply [--watch] | key` as a user runs them, against the daemon the
CLI starts in its home."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.acceptance.test_scenarios import bundle
from tests.daemon import env_for, run_cli, wait_for
from tests.integration.test_scenarios_api import BAD_BUNDLE, BAD_MENTIONS

SIGN_ONLY: dict[str, Any] = {
    "scenario_id": "release.gate.v1",
    "humans": [{"role": "ops"}],
    "workflow": {
        "steps": [
            {
                "step_id": "sign",
                "tool_id": "tool.approval.human_signoff",
                "assigned_to": "ops",
                "human_task": {"title": "Release 1.2?"},
            }
        ]
    },
    "intent": {"type": "intent.release.gate.v1", "payload": {}},
}


def _file(tmp_path: Path, name: str, body: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return str(path)


def test_validate_lists_every_error_on_stderr_and_exits_2(cli_home: Path, tmp_path: Path) -> None:
    bad = run_cli(cli_home, "scenarios", "validate", _file(tmp_path, "bad.json", BAD_BUNDLE))
    assert bad.returncode == 2, bad.stderr
    missing = [m for m in BAD_MENTIONS if m not in bad.stderr]
    assert not missing, bad.stderr
    good = run_cli(cli_home, "scenarios", "validate", _file(tmp_path, "ok.json", SIGN_ONLY))
    assert good.returncode == 0 and "valid: 1 steps" in good.stdout, good.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    answer = run_cli(cli_home, "scenarios", "validate", str(broken))
    assert answer.returncode == 2 and "not JSON" in answer.stderr
    applied = run_cli(cli_home, "scenarios", "apply", _file(tmp_path, "bad.json", BAD_BUNDLE))
    assert applied.returncode == 2 and len(applied.stderr.strip().splitlines()) == 1
    assert run_cli(cli_home, "list", "--json").stdout.strip() == ""  # nothing created


def test_apply_says_where_the_keys_are_and_how_to_start_each_agent(
    cli_home: Path, tmp_path: Path
) -> None:
    path = _file(tmp_path, "scenario.json", bundle("deploy.readiness.v1", {}))
    applied = run_cli(cli_home, "scenarios", "apply", path)
    assert applied.returncode == 0, applied.stderr
    keys_file = cli_home / "scenario-agents.json"
    assert f"agent keys written to {keys_file} (mode 0600)" in applied.stdout
    assert "start agent deploy-readiness-checker (checker) with its key:" in applied.stdout
    assert 'AXME_API_KEY="$(axme scenarios key deploy-readiness-checker)"' in applied.stdout
    assert "AXME_BASE_URL=http://127.0.0.1:" in applied.stdout
    key = run_cli(cli_home, "scenarios", "key", "deploy-readiness-checker")
    stored = json.loads(keys_file.read_text())["agents"]["agent://deploy-readiness-checker"]
    assert key.stdout.strip() == stored["api_key"]
    assert run_cli(cli_home, "scenarios", "key", "nobody").returncode != 0


def test_apply_watch_follows_until_a_person_decides(cli_home: Path, tmp_path: Path) -> None:
    path = _file(tmp_path, "gate.json", SIGN_ONLY)
    watching = subprocess.Popen(
        [sys.executable, "-m", "axme_cli", "scenarios", "apply", path, "--watch", "--json"],
        env=env_for(cli_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watching.stdout is not None
        applied = json.loads(watching.stdout.readline())
        assert applied["status"] == "WAITING" and applied["current_step"] == "sign"
        wait_for(
            lambda: "WAITING" in run_cli(cli_home, "show", applied["intent_id"][:8]).stdout,
            what="the sign-off",
        )
        shown = run_cli(cli_home, "show", applied["intent_id"][:8]).stdout
        assert "release.gate.v1: step 1 of 1 sign, with a person: ops" in shown
        decided = run_cli(cli_home, "approve", applied["intent_id"][:8])
        assert decided.returncode == 0, decided.stderr
        out, err = watching.communicate(timeout=30)
        assert watching.returncode == 0, err
        kinds = [json.loads(line)["event_type"] for line in out.splitlines() if line]
        assert kinds[-2:] == ["intent.human_task_decided", "intent.completed"]
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.communicate()
