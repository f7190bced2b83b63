"""Step records leave in batches: with the handler's next report, or shortly after; and the
reports of handlers running side by side share requests."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from axme_cli.agent.outbox import Outbox
from axme_cli.errors import Conflict, DaemonUnreachable
from tests.daemon import wait_for

COMPLETE = {"action": "complete", "result": {"ok": True}}


class Recorder:
    """Stands in for the daemon's `POST /v1/reports`: keeps every request it was sent."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.sent: list[list[dict[str, Any]]] = []
        self.refuse = refuse or set()
        self.landed = threading.Event()
        self.hold: threading.Event | None = None  # set: the first request waits for it
        self.arrived = threading.Event()
        self.broken = False

    def report(self, reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.sent.append(reports)
        self.arrived.set()
        if self.hold is not None and len(self.sent) == 1:
            assert self.hold.wait(5)
        self.landed.set()
        if self.broken:
            raise DaemonUnreachable("the daemon went away")
        return [
            {
                "intent_id": r["intent_id"],
                "ok": False,
                "status_code": 409,
                "error": {"code": "conflict", "message": "lease lost", "details": {}},
            }
            if r["intent_id"] in self.refuse
            else {"intent_id": r["intent_id"], "ok": True}
            for r in reports
        ]


def _step(n: int) -> dict[str, Any]:
    return {"ordinal": n, "key": f"s{n}", "result": n}


def _outbox(recorder: Recorder, delay: float = 5.0) -> Outbox:
    return Outbox(lambda: recorder, delay=delay)  # type: ignore[arg-type,return-value]


def test_quick_steps_ride_with_the_outcome() -> None:
    recorder = Recorder()
    outbox = _outbox(recorder)
    outbox.add("i1", _step(1))
    outbox.add("i1", _step(2))
    assert recorder.sent == []
    outbox.finish("i1", COMPLETE)
    assert recorder.sent == [
        [{"intent_id": "i1", "steps": [_step(1), _step(2)], "outcome": COMPLETE}]
    ]
    assert outbox.take("i1") == []


def test_flush_sends_what_is_queued_and_nothing_when_empty() -> None:
    recorder = Recorder()
    outbox = _outbox(recorder)
    outbox.flush("i1")
    assert recorder.sent == []
    outbox.add("i1", _step(1))
    outbox.flush("i1")
    assert recorder.sent == [[{"intent_id": "i1", "steps": [_step(1)]}]]


def test_a_step_followed_by_slow_work_is_sent_in_the_background() -> None:
    recorder = Recorder()
    outbox = _outbox(recorder, delay=0.01)
    outbox.add("i1", _step(1))
    assert recorder.landed.wait(5)
    assert recorder.sent == [[{"intent_id": "i1", "steps": [_step(1)]}]]
    assert outbox.take("i1") == []


def test_a_refused_background_send_surfaces_at_the_next_step() -> None:
    recorder = Recorder(refuse={"i1"})
    outbox = _outbox(recorder, delay=0.0)
    outbox.add("i1", _step(1))
    assert recorder.landed.wait(5)
    deadline = time.monotonic() + 5
    with pytest.raises(Conflict):
        while time.monotonic() < deadline:
            outbox.add("i1", _step(2))
            time.sleep(0.01)


def test_reports_ready_while_one_is_in_flight_leave_together() -> None:
    recorder = Recorder()
    recorder.hold = threading.Event()
    outbox = _outbox(recorder)
    first = threading.Thread(target=outbox.finish, args=("i0", COMPLETE))
    first.start()
    assert recorder.arrived.wait(5)  # i0's request is in flight, held
    others = [threading.Thread(target=outbox.finish, args=(f"i{n}", COMPLETE)) for n in range(1, 6)]
    for t in others:
        t.start()
    wait_for(  # all five queued behind the held request
        lambda: len(outbox._sender._waiting) == 5, timeout=5, interval=0.005, what="5 queued"
    )
    recorder.hold.set()
    for t in [first, *others]:
        t.join(5)
        assert not t.is_alive()
    assert len(recorder.sent) == 2
    assert [r["intent_id"] for r in recorder.sent[0]] == ["i0"]
    assert sorted(r["intent_id"] for r in recorder.sent[1]) == [f"i{n}" for n in range(1, 6)]


def test_a_refused_part_fails_only_its_own_handler() -> None:
    recorder = Recorder(refuse={"lost"})
    recorder.hold = threading.Event()
    outbox = _outbox(recorder)
    outcomes: dict[str, BaseException | None] = {}

    def finish(intent_id: str) -> None:
        try:
            outbox.finish(intent_id, COMPLETE)
            outcomes[intent_id] = None
        except BaseException as exc:
            outcomes[intent_id] = exc

    threads = [threading.Thread(target=finish, args=(i,)) for i in ("held", "lost", "kept")]
    threads[0].start()
    assert recorder.arrived.wait(5)
    for t in threads[1:]:
        t.start()
    wait_for(lambda: len(outbox._sender._waiting) == 2, timeout=5, interval=0.005)
    recorder.hold.set()
    for t in threads:
        t.join(5)
    assert outcomes["held"] is None and outcomes["kept"] is None
    assert isinstance(outcomes["lost"], Conflict)
    assert outcomes["lost"].message == "lease lost"


def test_a_failed_request_reaches_every_report_in_it() -> None:
    recorder = Recorder()
    recorder.broken = True
    outbox = _outbox(recorder)
    with pytest.raises(DaemonUnreachable):
        outbox.finish("i1", COMPLETE)
    recorder.broken = False
    outbox.finish("i2", COMPLETE)  # the next request goes out as usual
    assert [r[0]["intent_id"] for r in recorder.sent] == ["i1", "i2"]


def test_a_quick_handler_says_it_started_with_its_first_report() -> None:
    recorder = Recorder()
    outbox = Outbox(lambda: recorder, delay=5.0, start_delay=5.0)  # type: ignore[arg-type,return-value]
    outbox.start("i1")
    outbox.flush("i1")  # a step starts: no report of its own
    outbox.add("i1", _step(1))
    outbox.finish("i1", COMPLETE)
    assert recorder.sent == [[{"intent_id": "i1", "steps": [_step(1)], "outcome": COMPLETE}]]


def test_a_handler_with_a_long_first_step_says_it_started_on_its_own() -> None:
    recorder = Recorder()
    outbox = Outbox(lambda: recorder, delay=5.0, start_delay=0.01)  # type: ignore[arg-type,return-value]
    outbox.start("i1")
    outbox.flush("i1")  # the first step starts, and takes long
    assert recorder.landed.wait(5)
    assert recorder.sent == [[{"intent_id": "i1", "steps": [], "started": True}]]
    outbox.add("i1", _step(1))
    outbox.finish("i1", COMPLETE)  # the rest as before
    assert recorder.sent[1:] == [[{"intent_id": "i1", "steps": [_step(1)], "outcome": COMPLETE}]]
