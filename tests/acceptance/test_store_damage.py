"""A damaged store file is noticed, refused with a message that says what to do, and
recovered without deleting anything: the damaged file is kept beside the new store."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from axme_cli.errors import EXIT_CONFLICT, EXIT_UNREACHABLE
from axme_cli.paths import HomePaths
from tests.daemon import Daemon, run_cli

INTENTS = 300
BODY = {"intent_type": "intent.test.v1", "to_agent": "agent://test/dev/nobody"}


def _fill(daemon: Daemon) -> list[str]:
    with daemon.client() as client:
        return [
            client.post("/v1/intents", json={**BODY, "payload": {"n": n, "pad": "x" * 400}}).json()[
                "intent_id"
            ]
            for n in range(INTENTS)
        ]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("stop", ["kill", "clean"])
def test_a_store_cut_in_half_is_refused_then_recovered_keeping_the_damaged_file(
    axme_home: Path, stop: str
) -> None:
    first = Daemon(axme_home).start()
    _fill(first)
    first.stop()  # a clean stop: every page in the file, no WAL
    daemon = Daemon(axme_home).start()
    if stop == "kill":  # the WAL holds what changed since the last start
        with daemon.client() as client:
            client.post("/v1/intents", json=BODY)
        daemon.kill()
    else:
        daemon.stop()
    db = HomePaths(axme_home).database
    assert Path(f"{db}-wal").exists() == (stop == "kill")  # kill: the WAL is still there
    os.truncate(db, db.stat().st_size // 2)
    damaged = _digest(db)

    for command in (["list"], ["daemon", "start"]):
        refused = run_cli(axme_home, *command)
        if refused.returncode == 0:  # it should not have started; do not leave it running
            run_cli(axme_home, "daemon", "stop")
        assert refused.returncode == EXIT_UNREACHABLE, refused.stdout
        line = _one_line(refused.stderr)
        assert f"the store {db} is damaged" in line and "axme daemon recover" in line

    checked = run_cli(axme_home, "daemon", "check")
    assert checked.returncode == 1 and "damaged:" in checked.stdout

    recovered = run_cli(axme_home, "daemon", "recover")
    assert recovered.returncode == 0, recovered.stderr
    kept = re.search(r"kept the damaged store as (\S+)", recovered.stdout)
    assert kept is not None, recovered.stdout
    assert re.fullmatch(r"axme\.db\.damaged-\d{8}T\d{6}Z", Path(kept[1]).name)
    assert _digest(Path(kept[1])) == damaged  # kept as it was, byte for byte
    saved = re.search(r"saved: (\d+) intents", recovered.stdout)
    assert saved is not None and 0 < int(saved[1]) < INTENTS, recovered.stdout

    assert run_cli(axme_home, "daemon", "check").returncode == 0
    listed = run_cli(axme_home, "list", "--json", "--limit", "500")
    try:
        assert listed.returncode == 0, listed.stderr
        assert len(listed.stdout.splitlines()) == int(saved[1])
        created = run_cli(axme_home, "send", BODY["intent_type"], "--to", BODY["to_agent"])
        assert created.returncode == 0, created.stderr
    finally:
        run_cli(axme_home, "daemon", "stop")


def test_damage_found_while_running_refuses_writes_and_health_says_why(axme_home: Path) -> None:
    first = Daemon(axme_home).start()
    ids = _fill(first)
    first.stop()  # a clean stop: every page is in the file, none in a WAL
    daemon = Daemon(axme_home).start()
    try:
        db = HomePaths(axme_home).database
        page = 4096
        pages = db.stat().st_size // page
        # The schema's pages come first (made in one go): recovery reads the tables through
        # it, so the damage starts past them (a store whose schema is lost is unreadable).
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as ro:
            schema_end = ro.execute("SELECT max(rootpage) FROM sqlite_master").fetchone()[0]
        first = max(pages // 3, schema_end + 1)
        assert first + pages // 3 < pages, "fill more intents: the damage would reach the end"
        with db.open("r+b") as f:  # zero a third of the pages, as a bad disk might
            f.seek(first * page)
            f.write(bytes(page * (pages // 3)))

        with daemon.client() as client:
            answers = [client.get(f"/v1/intents/{i}") for i in ids]
            statuses = {a.status_code for a in answers}
            assert 500 not in statuses
            assert 503 in statuses, statuses
            refused = next(a for a in answers if a.status_code == 503).json()
            assert refused["error"]["code"] == "store_damaged"
            assert "axme daemon recover" in refused["error"]["message"]

            health = client.get("/health").json()
            assert health["ok"] is False and "is damaged" in health["problem"]

            create = client.post("/v1/intents", json=BODY)
            assert create.status_code == 503, create.text
            assert create.json()["error"]["code"] == "store_damaged"

        status = run_cli(axme_home, "daemon", "status", "--json")
        assert json.loads(status.stdout)["ok"] is False
    finally:
        daemon.stop()

    recovered = run_cli(axme_home, "daemon", "recover")
    assert recovered.returncode == 0, recovered.stdout
    assert "skipped unreadable stretches" in recovered.stdout
    saved = re.search(r"saved: (\d+) intents", recovered.stdout)
    assert saved is not None and 0 < int(saved[1]) < INTENTS, recovered.stdout
    assert run_cli(axme_home, "daemon", "check").returncode == 0


def test_check_and_recover_wait_for_the_daemon_to_stop(daemon: Daemon) -> None:
    for action in ("check", "recover"):
        refused = run_cli(daemon.home, "daemon", action)
        assert refused.returncode == EXIT_CONFLICT
        assert "stop it first" in _one_line(refused.stderr)
    assert daemon.health()["ok"]


def _set_index_sql(db: Path, name: str, sql: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = ?", (sql, name))
    conn.close()


def _break_an_index(db: Path) -> None:
    """Rows gone from a table but still in one of its indexes: what a torn write can leave,
    and what only the full check sees (quick_check does not match indexes to tables)."""
    name = "intents_status"
    conn = sqlite3.connect(db, isolation_level=None)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    conn.close()
    _set_index_sql(db, name, f"{sql} WHERE 0")  # for a moment, the index takes no rows
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DELETE FROM intents WHERE pos % 30 = 1")
    conn.close()
    _set_index_sql(db, name, sql)


def test_a_wal_cut_mid_frame_gets_the_full_check_which_refuses_a_broken_index(
    axme_home: Path,
) -> None:
    first = Daemon(axme_home).start()
    _fill(first)
    first.stop()
    db = HomePaths(axme_home).database
    _break_an_index(db)
    crashed = Daemon(axme_home).start()  # a clean stop before: only the length is checked
    with crashed.client() as client:
        client.post("/v1/intents", json=BODY)
    crashed.kill()
    wal = Path(f"{db}-wal")
    assert wal.stat().st_size > 4096, wal.stat().st_size
    os.truncate(wal, wal.stat().st_size - 100)  # cut in the middle of its last frame

    refused = run_cli(axme_home, "daemon", "start")
    if refused.returncode == 0:  # it should not have started; do not leave it running
        run_cli(axme_home, "daemon", "stop")
    assert refused.returncode == EXIT_UNREACHABLE
    line = _one_line(refused.stderr)
    assert "wrong # of entries in index intents_status" in line
    assert "axme daemon recover" in line
    assert "partial frame" in HomePaths(axme_home).daemon_log.read_text()
