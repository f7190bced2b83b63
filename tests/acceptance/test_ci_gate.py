"""`axme send --approval ... --wait` as a CI gate, from a shell: the exit code is the verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.daemon import env_for, run_cli, wait_for

GATE = (
    f'"{sys.executable}" -m axme_cli send intent.release.gate.v1 --to agent://ci/gate '
    '--approval "Ship 1.2?" --wait --timeout 60s {extra}; echo "exit=$?"'
)


def _gate(home: Path, extra: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "-c", GATE.format(extra=extra)],
        env=env_for(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _pending(home: Path) -> list[dict]:
    """Pending gates without a deadline (the third one times out by itself)."""
    inbox = run_cli(home, "inbox", "--json")
    tasks = [json.loads(line) for line in inbox.stdout.splitlines()]
    return [t for t in tasks if t["deadline_at"] is None]


def test_the_exit_code_says_approved_rejected_or_timed_out(cli_home: Path) -> None:
    assert run_cli(cli_home, "daemon", "start").returncode == 0
    approve, reject = _gate(cli_home), _gate(cli_home)
    timeout = _gate(cli_home, "--deadline 1s --on-timeout fail")
    try:
        wait_for(lambda: len(_pending(cli_home)) >= 2, timeout=30, what="two pending gates")
        first, second = [t["task_id"] for t in _pending(cli_home)][:2]
        # Which gate is which does not matter: decide one each way and match the outputs.
        assert run_cli(cli_home, "approve", first, "-c", "ship it").returncode == 0
        assert run_cli(cli_home, "reject", second, "-c", "not today").returncode == 0
        outputs = [p.communicate(timeout=60)[0] for p in (approve, reject, timeout)]
    finally:
        for p in (approve, reject, timeout):
            if p.poll() is None:
                p.kill()
                p.communicate()
    codes = sorted(out.strip().splitlines()[-1] for out in outputs)
    assert codes == ["exit=0", "exit=7", "exit=8"], outputs
    bad = run_cli(cli_home, "send", "t.v1", "--to", "agent://ci/gate", "--deadline", "1h")
    assert bad.returncode == 2 and "--approval" in bad.stderr
    bad = run_cli(
        cli_home, "send", "t.v1", "--to", "agent://ci/gate", "--approval", "x", "--deadline", "soon"
    )
    assert bad.returncode == 2 and "--deadline" in bad.stderr
