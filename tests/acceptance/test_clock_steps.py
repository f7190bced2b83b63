"""Timers fire on time when the wall clock steps, with the daemon's clock really moved.

libfaketime (Debian package `faketime`; `.ci/run` installs it) is preloaded into the daemon
only: it reads its clock offset from a file on every call, so the test moves the daemon's wall
clock while it runs. The monotonic clock is left alone, as a real clock step leaves it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents import intent
from tests.daemon import Daemon, wait_for

LIBFAKETIME = next(
    (
        p
        for p in (
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/faketime/libfaketime.so.1",
        )
        if Path(p).exists()
    ),
    None,
)

if LIBFAKETIME is None:
    if os.environ.get("CI"):
        raise RuntimeError("libfaketime is missing: .ci/run installs the faketime package")
    pytest.skip("needs libfaketime (apt-get install faketime)", allow_module_level=True)

HOUR = 3600


class Clock:
    """The daemon's wall clock, as an offset from the real one."""

    def __init__(self, home: Path) -> None:
        self.file = home / "clock-offset"
        self.set(0)

    def set(self, seconds: int) -> None:
        self.file.write_text(f"{seconds:+d}\n")

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }


@pytest.fixture
def clock(axme_home: Path) -> Clock:
    return Clock(axme_home)


@pytest.fixture
def faked(axme_home: Path, clock: Clock) -> Iterator[Daemon]:
    d = Daemon(axme_home, env=clock.env()).start()
    yield d
    d.stop()


def _waiting_on_a_person(daemon: Daemon, deadline_seconds: float) -> str:
    """An intent whose human task times it out (TIMED_OUT) after `deadline_seconds`."""
    body = {
        "intent_type": "intent.test.approval.v1",
        "to_agent": "agent://test/clock/nobody",
        "human_task": {
            "title": "Ship it?",
            "deadline_seconds": deadline_seconds,
            "on_timeout": "fail",
        },
    }
    with daemon.client() as client:
        response = client.post("/v1/intents", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["intent_id"])


def _status(client: httpx.Client, intent_id: str) -> str:
    return str(intent(client, intent_id)["status"])


def _timed_out(daemon: Daemon, intent_id: str, timeout: float) -> dict[str, Any]:
    """Wait for the deadline to end the intent; its task, as it was then."""
    with daemon.client() as client:
        wait_for(
            lambda: _status(client, intent_id) == "TIMED_OUT",
            timeout=timeout,
            interval=0.1,
            what="the deadline to fire",
        )
        params = {"intent_id": intent_id, "status": ""}
        tasks = client.get("/v1/tasks", params=params).json()["tasks"]
        return tasks[0]  # type: ignore[no-any-return]


def _moved_back(task: dict[str, Any]) -> bool:
    """The task's deadline was moved with the clock: an hour before the real time."""
    deadline = datetime.fromisoformat(task["deadline_at"].replace("Z", "+00:00"))
    return deadline.timestamp() < time.time() - HOUR / 2


def test_clock_stepped_forward_fires_an_overdue_deadline(faked: Daemon, clock: Clock) -> None:
    intent_id = _waiting_on_a_person(faked, HOUR)
    with faked.client() as client:
        assert _status(client, intent_id) == "WAITING"
    clock.set(2 * HOUR)  # nothing else happens: no other write wakes the timer loop
    _timed_out(faked, intent_id, timeout=15)


def test_clock_stepped_back_fires_after_the_deadline_not_the_step(
    faked: Daemon, clock: Clock
) -> None:
    intent_id = _waiting_on_a_person(faked, 4)
    clock.set(-HOUR)
    assert _moved_back(_timed_out(faked, intent_id, timeout=30))


def test_clock_stepped_back_across_a_restart_fires_after_the_deadline(
    axme_home: Path, clock: Clock
) -> None:
    daemon = Daemon(axme_home, env=clock.env()).start()
    try:
        intent_id = _waiting_on_a_person(daemon, 4)
        daemon.stop()
        clock.set(-HOUR)
        stopped = time.monotonic()
        daemon = Daemon(axme_home, env=clock.env()).start()
        assert _moved_back(_timed_out(daemon, intent_id, timeout=30))
        # Brought forward to its full duration from the restart, not fired at once.
        assert time.monotonic() - stopped >= 3.5
    finally:
        daemon.stop()
