"""Agents' secrets reach their processes and nothing else: not a command line (`ps` shows
every user those), not the bytes of `axme.db`, not an older database that kept them plain."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.agents import add_agent, agent_status, running_pids, send, wait_final
from tests.daemon import Daemon, env_for, stop_home_daemon, wait_for

pytestmark = pytest.mark.acceptance

PY = sys.executable
SLEEPER = [PY, "-c", "import time; time.sleep(600)"]


def secret(name: str) -> str:
    return f"{name}-{os.urandom(12).hex()}"


def store_bytes(home: Path) -> bytes:
    """Every byte of the database's files as they are on disk now."""
    return b"".join(p.read_bytes() for p in sorted(home.glob("axme.db*")))


def cmdline(pid: int) -> bytes:
    """What `ps` shows any user of the machine for `pid`."""
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def environ(pid: int) -> dict[str, str]:
    """The process's own environment (only its user may read it)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = [item.decode().partition("=") for item in raw if item]
    return {key: value for key, _, value in pairs}


def wait_pid(client: httpx.Client, address: str) -> int:
    pids = wait_for(lambda: running_pids(client, address), timeout=20, what=f"{address} running")
    return int(pids[0])


def test_agents_add_env_file_and_env_name_keep_secrets_out_of_argv_and_the_store(
    cli_home: Path, tmp_path: Path
) -> None:
    home = cli_home
    token, password, plain = secret("tok"), secret("pw"), "not-a-secret"
    env_file = tmp_path / "agent.env"
    env_file.write_text(f'# the agent\'s keys\nAPI_TOKEN={token}\nexport REGION="eu west"\n')
    address = "agent://test/secrets/env"
    options = ["--env-file", str(env_file), "--env", "DB_PASSWORD", "-e", f"MODE={plain}"]
    cli = subprocess.Popen(
        [PY, "-m", "axme_cli", "agents", "add", address, *options, "--", *SLEEPER],
        env={**env_for(home), "DB_PASSWORD": password},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = wait_for(
            lambda: b"--env-file" in (line := cmdline(cli.pid)) and line, what="the CLI's argv"
        )
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 0, err
    assert f"added {address}" in out
    assert token.encode() not in seen and password.encode() not in seen
    assert f"MODE={plain}".encode() in seen, "NAME=VALUE is in argv, as --help says"

    daemon = Daemon(home)
    with daemon.client() as client:
        pid = wait_pid(client, address)
        described = json.dumps(agent_status(client, address))
    env = environ(pid)
    assert (env["API_TOKEN"], env["DB_PASSWORD"]) == (token, password)
    assert (env["REGION"], env["MODE"]) == ("eu west", plain)
    everyone = subprocess.run(
        ["ps", "-eww", "-o", "args="], capture_output=True, text=True, check=True
    ).stdout
    for value in (token, password):
        assert value not in everyone
        assert value.encode() not in cmdline(pid)
        assert value not in described
        assert value.encode() not in store_bytes(home)
    assert stat.S_IMODE((home / "secrets.key").stat().st_mode) == 0o600
    stop_home_daemon(home)
    for value in (token, password):  # nor after the last checkpoint
        assert value.encode() not in store_bytes(home)


def _plain_rows(home: Path, env: dict[str, str], hook: dict[str, str]) -> None:
    """Rewrite the stored agent and hook as a version before sealing kept them."""
    with sqlite3.connect(home / "axme.db") as db:
        (spec,) = db.execute("SELECT spec FROM agents").fetchone()
        spec = {k: v for k, v in json.loads(spec).items() if not k.endswith("_sealed")}
        db.execute("UPDATE agents SET spec = ?", (json.dumps({**spec, "env": env}),))
        (hooks,) = db.execute("SELECT hooks FROM projects").fetchone()
        kept = {k: v for k, v in json.loads(hooks)[0].items() if not k.endswith("_sealed")}
        db.execute("UPDATE projects SET hooks = ?", (json.dumps([{**kept, **hook}]),))
    db.close()


def test_secrets_an_older_version_stored_plain_are_sealed_when_the_store_opens(
    axme_home: Path, tmp_path: Path
) -> None:
    address = "agent://test/secrets/old"
    token, hook_secret, url_token = secret("tok"), secret("whsec"), secret("path")
    hook = {"webhook": f"https://chat.example/hooks/{url_token}", "secret": hook_secret}
    project = {
        "config_path": str(tmp_path / "axme.toml"),
        "project_dir": str(tmp_path),
        "digest": "d1",
        "agents": [{"address": address, "command": SLEEPER, "cwd": str(tmp_path)}],
        "hooks": [{**hook, "on": ["assigned"]}],
    }
    daemon = Daemon(axme_home).start()
    try:
        with daemon.client() as client:
            applied = client.post("/v1/projects/apply", json=project)
            assert applied.status_code == 200, applied.text
            wait_pid(client, address)
    finally:
        daemon.stop()
    for value in (hook_secret, url_token):
        assert value.encode() not in store_bytes(axme_home), "sealed from the first write"

    # Large enough to spill into overflow pages, which a rewrite frees rather than reuses.
    _plain_rows(axme_home, {"CERT": "c" * 9000, "API_TOKEN": token}, hook)
    assert token.encode() in store_bytes(axme_home), "the older version's plain row"

    daemon = Daemon(axme_home).start()
    try:
        with daemon.client() as client:
            pid = wait_pid(client, address)
        assert environ(pid)["API_TOKEN"] == token, "the sealed env still reaches the agent"
        for value in (token, hook_secret, url_token):
            assert value.encode() not in store_bytes(axme_home)
        assert "sealed the secrets of 2 rows stored in plain text" in daemon.log()
    finally:
        daemon.stop()


def test_keys_and_secrets_never_reach_the_logs_or_error_messages(
    axme_home: Path, tmp_path: Path
) -> None:
    static, wrong, env_secret = secret("static"), secret("wrong"), secret("env")
    address = "agent://test/secrets/sdk"
    daemon = Daemon(axme_home, env={"AXME_API_KEYS": static}).start()
    try:
        with daemon.client() as client:
            add_agent(client, address, "axme_sdk_agent.py", tmp_path, env={"TOKEN": env_secret})
            pid = wait_pid(client, address)
            agent_key = environ(pid)["AXME_API_KEY"]
            done = wait_final(daemon, [send(client, address, "t.echo.v1", {"n": 1})])
            assert [d["status"] for d in done.values()] == ["COMPLETED"], "its key works"
            refused = client.post(
                "/v1/agents",
                json={"address": address, "command": SLEEPER, "cwd": "/", "env": [env_secret]},
            )
            assert refused.status_code == 422 and env_secret not in refused.text
        tcp = daemon.health()["tcp"]
        answers = [
            httpx.get(f"{tcp}/v1/intents", headers={"x-api-key": static}, timeout=10),
            httpx.get(f"{tcp}/health", headers={"authorization": f"Bearer {agent_key}"}),
            httpx.get(f"{tcp}/v1/intents", headers={"x-api-key": wrong}, timeout=10),
            httpx.get(f"{tcp}/health", headers={"authorization": f"Bearer {wrong}"}),
            httpx.get(f"{tcp}/health", headers={"x-api-key": static, "host": "evil.example"}),
        ]
        assert [a.status_code for a in answers] == [200, 200, 401, 401, 421]
        for answer in answers:
            for key in (static, wrong, agent_key):
                assert key not in answer.text and key not in str(answer.headers)
        os.kill(pid, 9)  # its exit is logged, in the daemon's log and the agent's
        with daemon.client() as client:
            wait_for(lambda: running_pids(client, address) not in ([], [pid]), timeout=20)
    finally:
        daemon.stop()
    logs = [p for p in (axme_home / "logs").rglob("*") if p.is_file()]
    assert {p.name for p in logs} >= {"daemon.log", "test.secrets.sdk.log"}
    written = "\n".join(p.read_text(errors="replace") for p in logs)
    assert "axme sdk agent listening" in written and "killed by SIGKILL" in written
    for value in (static, wrong, agent_key, env_secret):
        assert value not in written
    for path in logs:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_damaged_key_file_stops_the_daemon_with_one_clear_line(axme_home: Path) -> None:
    key = axme_home / "secrets.key"
    key.write_text("not a key\n")
    key.chmod(0o644)
    proc = subprocess.run(
        [PY, "-m", "axme_daemon", "--home", str(axme_home)],
        env=env_for(axme_home),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 4  # the daemon cannot serve this home
    assert proc.stderr.strip().splitlines() == [
        f"axme daemon: {key} holds no valid key; restore it from a backup (without it, the"
        " secrets sealed in axme.db cannot be read: move both aside to start afresh)"
    ]
    assert key.read_text() == "not a key\n", "never replaced: it may be restored"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_an_agent_whose_secrets_another_key_sealed_is_left_out_until_added_again(
    axme_home: Path, tmp_path: Path
) -> None:
    from cryptography.fernet import Fernet

    address, token = "agent://test/secrets/rekeyed", secret("tok")
    spec = {"address": address, "command": SLEEPER, "cwd": str(tmp_path), "env": {"T": token}}
    daemon = Daemon(axme_home).start()
    try:
        with daemon.client() as client:
            assert client.post("/v1/agents", json=spec).status_code == 200
            wait_pid(client, address)
    finally:
        daemon.stop()
    (axme_home / "secrets.key").write_bytes(Fernet.generate_key())  # a key from elsewhere

    daemon = Daemon(axme_home).start()
    try:
        with daemon.client() as client:
            assert client.get("/v1/agents").json()["agents"] == []
            key = axme_home / "secrets.key"
            said = f"agent {address} is left out: env: sealed with a key other than the one"
            said += f" in {key}"
            assert said in daemon.log()
            assert token not in daemon.log()
            assert client.post("/v1/agents", json=spec).status_code == 200
            assert environ(wait_pid(client, address))["T"] == token
    finally:
        daemon.stop()
