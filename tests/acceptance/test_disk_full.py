"""A full disk: writes say so (507 `store_full`), reads keep working, and writes work again
by themselves once there is room, with every acknowledged intent still there.

The disk is real: a small tmpfs mounted for the test (root only; skipped elsewhere), so the
daemon meets the ENOSPC a full disk gives, not a simulation of it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon

PAYLOAD = {"blob": "x" * 16 * 1024}
BODY = {"intent_type": "intent.test.v1", "to_agent": "agent://test/dev/nobody"}


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """An 8 MiB filesystem of its own."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="axme-full-", dir="/tmp"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
        mount.rmdir()


def test_a_full_disk_is_named_reads_go_on_and_writes_come_back(small_disk: Path) -> None:
    home = small_disk / "home"
    ballast = small_disk / "ballast"
    ballast.write_bytes(bytes(3 * 1024 * 1024))  # room the test gives back later
    daemon = Daemon(home).start()
    try:
        acked: list[str] = []
        with daemon.client() as client:
            for _ in range(500):
                answer = client.post("/v1/intents", json={**BODY, "payload": PAYLOAD})
                if answer.status_code != 200:
                    break
                acked.append(answer.json()["intent_id"])
            assert answer.status_code == 507, answer.text
            error = answer.json()["error"]
            assert error["code"] == "store_full"
            assert "the disk holding AXME_HOME" in error["message"]
            assert "is full" in error["message"]
            assert acked, "the disk filled before the first create"

            assert client.get(f"/v1/intents/{acked[0]}").status_code == 200
            assert client.get("/v1/intents", params={"limit": 5}).status_code == 200
            again = client.post("/v1/intents", json={**BODY, "payload": PAYLOAD})
            assert again.status_code == 507  # still full: still said plainly

            ballast.unlink()  # space returns; nothing is restarted
            back = client.post("/v1/intents", json={**BODY, "payload": PAYLOAD})
            assert back.status_code == 200, back.text
            acked.append(back.json()["intent_id"])
            assert daemon.health()["ok"]
    finally:
        daemon.stop()

    restarted = Daemon(home).start()
    try:
        with restarted.client() as client:
            for intent_id in acked:
                assert client.get(f"/v1/intents/{intent_id}").status_code == 200
    finally:
        restarted.stop()
