"""Step records leave in batches: with the handler's next report, or shortly after."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from axme_cli.agent.outbox import Outbox
from axme_cli.errors import Conflict


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, list[dict[str, Any]]]] = []
        self.fail = fail
        self.landed = threading.Event()

    def record_steps(self, intent_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        self.sent.append((intent_id, records))
        self.landed.set()
        if self.fail:
            raise Conflict("lease lost")
        return {"ok": True}


def _step(n: int) -> dict[str, Any]:
    return {"ordinal": n, "key": f"s{n}", "result": n}


def test_quick_steps_ride_with_the_outcome() -> None:
    recorder = Recorder()
    outbox = Outbox(lambda: recorder, delay=5.0)  # type: ignore[arg-type,return-value]
    outbox.add("i1", _step(1))
    outbox.add("i1", _step(2))
    assert outbox.take("i1") == [_step(1), _step(2)]
    assert outbox.take("i1") == []
    assert recorder.sent == []


def test_a_step_followed_by_slow_work_is_sent_in_the_background() -> None:
    recorder = Recorder()
    outbox = Outbox(lambda: recorder, delay=0.01)  # type: ignore[arg-type,return-value]
    outbox.add("i1", _step(1))
    assert recorder.landed.wait(5)
    assert recorder.sent == [("i1", [_step(1)])]
    assert outbox.take("i1") == []


def test_a_refused_background_send_surfaces_at_the_next_step() -> None:
    recorder = Recorder(fail=True)
    outbox = Outbox(lambda: recorder, delay=0.0)  # type: ignore[arg-type,return-value]
    outbox.add("i1", _step(1))
    assert recorder.landed.wait(5)
    deadline = time.monotonic() + 5
    with pytest.raises(Conflict):
        while time.monotonic() < deadline:
            outbox.add("i1", _step(2))
            time.sleep(0.01)
