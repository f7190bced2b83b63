"""Choosing the store: `axme daemon start --store URL` (or `AXME_STORE`, or the older
`AXME_STORE_URL`) runs the daemon on it, `axme daemon status` names it without its password,
and a URL no backend serves or a server that does not answer is one line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from axme_cli.errors import EXIT_UNREACHABLE
from axme_daemon.config import load_settings
from axme_daemon.store import shown_url
from tests.daemon import run_cli

SECRET = "s3cret-pw"


def _with_password(url: str) -> str:
    """The same URL with a password (the test server trusts local users, so it is ignored)."""
    user, _, rest = url.removeprefix("postgresql://").partition("@")
    return f"postgresql://{user}:{SECRET}@{rest}"


def test_a_daemon_started_with_store_keeps_intents_in_postgresql(
    cli_home: Path, postgresql_url: str
) -> None:
    url = _with_password(postgresql_url)
    started = run_cli(cli_home, "daemon", "start", "--store", url, "--lease-grace", "3")
    assert started.returncode == 0, started.stderr
    sent = run_cli(cli_home, "send", "demo.v1", "--to", "agent://t/p/a", "--payload", '{"n": 1}')
    assert sent.returncode == 0, sent.stderr
    intent_id = sent.stdout.strip()
    shown = run_cli(cli_home, "show", intent_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["intent"]["payload"] == {"n": 1}
    with psycopg.connect(postgresql_url) as db:  # there, not in a SQLite file
        row = db.execute("SELECT count(*) FROM intents WHERE intent_id = %s", (intent_id,))
        assert row.fetchone() == (1,)
        # The daemon registered itself, with the lease grace it was given.
        daemons = db.execute("SELECT home, lease_grace FROM daemons").fetchall()
        assert daemons == [(str(cli_home), 3.0)]
    assert not (cli_home / "axme.db").exists()

    status = run_cli(cli_home, "daemon", "status")
    assert status.returncode == 0, status.stderr
    assert shown_url(url) in status.stdout and "postgresql://" in status.stdout
    as_json = run_cli(cli_home, "daemon", "status", "--json")
    assert SECRET not in status.stdout + as_json.stdout + status.stderr
    health = json.loads(as_json.stdout)
    assert health["database"] == shown_url(url)
    # Which daemon this is, and how many share the store: itself alone, live.
    daemon_id = (cli_home / "daemon.id").read_text().strip()
    assert (health["daemon_id"], health["lease_grace"]) == (daemon_id, 3.0)
    assert health["daemons"] == {"live": 1, "registered": 1}
    assert f"daemon   {daemon_id}, 1 live of 1 registered" in status.stdout


def test_status_names_the_daemon_of_a_sqlite_home(cli_home: Path) -> None:
    started = run_cli(cli_home, "daemon", "start")
    assert started.returncode == 0, started.stderr
    status = run_cli(cli_home, "daemon", "status")
    health = json.loads(run_cli(cli_home, "daemon", "status", "--json").stdout)
    daemon_id = (cli_home / "daemon.id").read_text().strip()
    assert health["daemon_id"] == daemon_id
    assert "daemons" not in health  # one daemon per file: nobody to share it with
    assert f"  daemon   {daemon_id}\n" in status.stdout


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u:pw@127.0.0.1/db", "unsupported store URL"),
        ("postgresql://u:pw@127.0.0.1:1/db", "cannot reach the PostgreSQL store"),
    ],
)
def test_a_bad_store_is_one_line_and_a_non_zero_exit(cli_home: Path, url: str, says: str) -> None:
    run = run_cli(cli_home, "daemon", "start", "--store", url)
    assert run.returncode == EXIT_UNREACHABLE
    assert run.stderr.count("\n") == 1 and says in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and ":pw@" not in run.stderr
    assert run_cli(cli_home, "daemon", "status").returncode == EXIT_UNREACHABLE


def test_store_from_the_environment(monkeypatch: pytest.MonkeyPatch, axme_home: Path) -> None:
    monkeypatch.setenv("AXME_STORE_URL", "sqlite:///old.db")
    assert load_settings(axme_home).database_url == "sqlite:///old.db"
    monkeypatch.setenv("AXME_STORE", "sqlite:///new.db")
    assert load_settings(axme_home).database_url == "sqlite:///new.db"
    assert load_settings(axme_home, store_url="sqlite:///flag.db").store_url == "sqlite:///flag.db"
    monkeypatch.setenv("AXME_STORE", "redis://x")
    with pytest.raises(SystemExit, match="AXME_STORE: unsupported store URL 'redis://x'"):
        load_settings(axme_home)


def test_shown_url_hides_only_the_password() -> None:
    assert shown_url("postgresql://u:pw@h:5/db?sslmode=require") == (
        "postgresql://u:***@h:5/db?sslmode=require"
    )
    assert shown_url("postgresql://u@/db?host=%2Ftmp") == "postgresql://u@/db?host=%2Ftmp"
    assert shown_url("sqlite:////a/b.db") == "sqlite:////a/b.db"


def test_lease_grace_from_the_flag_the_environment_or_the_default(
    monkeypatch: pytest.MonkeyPatch, axme_home: Path
) -> None:
    assert load_settings(axme_home).lease_grace == 10.0
    monkeypatch.setenv("AXME_LEASE_GRACE_SECONDS", "2.5")
    assert load_settings(axme_home).lease_grace == 2.5
    assert load_settings(axme_home, lease_grace=4).lease_grace == 4
    for bad in ("0", "-1", "soon", "inf"):
        monkeypatch.setenv("AXME_LEASE_GRACE_SECONDS", bad)
        with pytest.raises(SystemExit, match="AXME_LEASE_GRACE_SECONDS must be positive seconds"):
            load_settings(axme_home)
