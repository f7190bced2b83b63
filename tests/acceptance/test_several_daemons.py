"""Several daemons on one PostgreSQL database (two homes, one store), as real processes.

Each daemon supervises its own agents; an intent for an address goes to a listening worker
of that address on either daemon; a daemon SIGKILLed mid-load loses nothing acknowledged,
and its in-flight work finishes on the other within the lease grace plus a little; a cancel
asked on one daemon stops a handler running under the other; an agent one daemon serves is
known to the other; `axme daemon list` shows them all.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents import (
    add_agent,
    agent_status,
    events,
    intent,
    running_pids,
    send,
    step_log,
    wait_final,
)
from tests.daemon import Daemon, run_cli, wait_for

#: A short lease grace, so a test sees a dead daemon's leases lapse in seconds.
GRACE = 3.0
STEPS = "agent://test/shared/steps"
WAITS = "agent://test/shared/waits"
CLIENTS = 20
PER_CLIENT = 8


@pytest.fixture
def pair(axme_home: Path, postgresql_url: str) -> Iterator[tuple[Daemon, Daemon]]:
    """Daemons A and B: two homes on one fresh PostgreSQL database."""
    env = {"AXME_STORE": postgresql_url, "AXME_LEASE_GRACE_SECONDS": f"{GRACE:g}"}
    both = []
    for name in ("a", "b"):
        home = axme_home / name
        home.mkdir()
        both.append(Daemon(home, env=env).start())
    a, b = both
    try:
        yield a, b
    finally:
        for d in both:
            if d.proc is not None and d.proc.poll() is None:
                d.stop()


def _serve(daemon: Daemon, address: str, script: str, log: Path, **options: Any) -> list[int]:
    """Run the agent under `daemon` (its own registry): the pids of its replicas."""
    with daemon.client() as client:
        add_agent(client, address, script, log.parent, env={"STEP_LOG": str(log)}, **options)
        pids: list[int] = wait_for(
            lambda: running_pids(client, address), timeout=30, what=f"{address} to run"
        )
    return pids


def _create(client: httpx.Client, key: str) -> httpx.Response:
    body = {
        "intent_type": "intent.test.steps.v1",
        "to_agent": STEPS,
        "payload": {"key": key, "steps": 3, "step_seconds": 0.02},
    }
    return client.post("/v1/intents", json=body, headers={"Idempotency-Key": key})


def _follow(client: httpx.Client, intent_id: str) -> str:
    """Follow the intent's events until the stream ends: the last event's type."""
    last = ""
    url = f"/v1/intents/{intent_id}/events/stream"
    with client.stream("GET", url, params={"wait_seconds": 60}) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                last = line.removeprefix("event: ")
    return last


def _client(daemon: Daemon) -> httpx.Client:
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(daemon.socket)), base_url="http://axme", timeout=30
    )


def _health(daemon: Daemon) -> dict[str, Any]:
    with daemon.client() as client:
        body: dict[str, Any] = client.get("/health").json()
    return body


def test_health_names_each_daemon_and_counts_the_live_ones(
    pair: tuple[Daemon, Daemon],
) -> None:
    a, b = pair
    for d in pair:
        seen = _health(d)
        assert seen["daemon_id"] == (d.home / "daemon.id").read_text().strip()
        assert seen["lease_grace"] == GRACE
        assert seen["daemons"] == {"live": 2, "registered": 2}
    assert _health(a)["daemon_id"] != _health(b)["daemon_id"]
    a.kill()  # its row stays, its heartbeat lapses
    wait_for(
        lambda: _health(b)["daemons"] == {"live": 1, "registered": 2},
        timeout=GRACE + 5,
        what="B to see A's heartbeat lapse",
    )


# Clients that connect to the dead daemon get refused; httpcore leaves those sockets to the
# garbage collector, which warns. That is the clients' business, not the daemons'.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_daemon_killed_mid_load_loses_nothing_and_the_other_finishes_its_work(
    pair: tuple[Daemon, Daemon], axme_home: Path
) -> None:
    a, b = pair
    log = axme_home / "steps.log"
    a_pids = set(_serve(a, STEPS, "steps_agent.py", log, replicas=2, concurrency=4))
    _serve(b, STEPS, "steps_agent.py", log, replicas=2, concurrency=4)
    acked: dict[str, str] = {}
    completed: dict[str, float] = {}  # intent id -> when its client saw it COMPLETED
    killed = threading.Event()

    def creator(worker: int) -> None:
        """A client that sends an intent and follows it to its end, then the next, alternating
        daemons; when one dies under it, it sends again (same key) or follows on the other."""
        with _client(a) as to_a, _client(b) as to_b:
            for n in range(PER_CLIENT):
                if killed.is_set():
                    return
                key = f"w{worker}-n{n}"
                first = to_a if (worker + n) % 2 == 0 else to_b
                try:
                    response = _create(first, key)
                except httpx.TransportError:
                    # A died under this request: whether it committed or not, B answers with
                    # the one intent for this key.
                    first, response = to_b, _create(to_b, key)
                assert response.status_code == 200, response.text
                intent_id = acked[key] = response.json()["intent_id"]
                try:
                    end = _follow(first, intent_id)
                except httpx.TransportError:
                    end = _follow(to_b, intent_id)
                assert end == "intent.completed", (intent_id, end)
                completed[intent_id] = time.monotonic()

    threads = [threading.Thread(target=creator, args=(w,)) for w in range(CLIENTS)]
    for t in threads:
        t.start()
    total = CLIENTS * PER_CLIENT
    wait_for(lambda: len(acked) >= total // 3, timeout=60, what="a third of the creates")
    with a.client() as client:  # A is mid-load: its agents hold deliveries right now
        wait_for(
            lambda: client.get(f"/v1/agents/{STEPS[8:]}").json()["agent"]["in_flight"] > 0,
            what="A's workers to hold deliveries",
        )
    killed.set()
    a.kill()
    killed_at = time.monotonic()
    for t in threads:
        t.join(60)
    # Every intent acknowledged before the kill, on either daemon, was completed by B within
    # the lease grace (A's leases lapse) plus 2 s (B's next heartbeat, then the work).
    assert set(completed) == set(acked.values())
    took = max(completed.values()) - killed_at
    assert took <= GRACE + 2, f"the survivor finished {took:.1f}s after the kill"

    with b.client() as client:
        # Every acknowledged intent is in the store once, with the id its client was given.
        listed = client.get("/v1/intents", params={"limit": 500}).json()["intents"]
        by_key = {i["payload"]["key"]: i["intent_id"] for i in listed}
        assert by_key == acked
        runs = [e for e in step_log(log) if e["event"] == "start"]
        redelivered = 0
        for intent_id in acked.values():
            recorded = client.get(f"/v1/intents/{intent_id}/steps").json()["steps"]
            assert [s["key"] for s in recorded] == ["s1", "s2", "s3"]
            mine = [e for e in runs if e["intent"] == intent_id]
            again = []
            for step in recorded:
                n = int(step["key"][1:])
                started = [e for e in mine if e["step"] == n]
                # A recorded step never starts again in a later attempt...
                assert all(e["attempt"] <= step["attempt"] for e in started), (intent_id, n)
                assert 1 <= len(started) <= 2, (intent_id, n, started)
                if len(started) == 2:
                    again.append((n, started))
            # ...so only the step running on A at the kill (or finished a moment before, its
            # record not yet sent: a step never starts before the last one is recorded) runs
            # twice: once on A, cut off, once on B.
            assert len(again) <= 1, (intent_id, again)
            for n, (first, second) in again:
                assert first["pid"] in a_pids and second["pid"] not in a_pids
                assert n == max(e["step"] for e in mine if e["pid"] in a_pids)
            if intent(client, intent_id)["delivery_attempt"] > 1:
                redelivered += 1
        assert redelivered > 0, "the kill should catch A's workers mid-intent"


def _task(client: httpx.Client, intent_id: str) -> dict[str, Any]:
    tasks = client.get("/v1/tasks", params={"intent_id": intent_id}).json()["tasks"]
    return tasks[0] if tasks else {}


def _approve_at_once(pair: tuple[Daemon, Daemon], task_id: str) -> dict[str, int]:
    """Alice approves on A and Bob on B at the same moment: each one's HTTP status."""
    answers: dict[str, int] = {}
    go = threading.Barrier(2)

    def approve(daemon: Daemon, who: str) -> None:
        with daemon.client() as client:
            go.wait()
            decision = {"outcome": "approved", "actor": who, "comment": "ship"}
            answers[who] = client.post(f"/v1/tasks/{task_id}/decision", json=decision).status_code

    people = [
        threading.Thread(target=approve, args=(daemon, who))
        for daemon, who in zip(pair, ("alice", "bob"), strict=True)
    ]
    for t in people:
        t.start()
    for t in people:
        t.join(30)
    return answers


def test_two_people_approving_at_once_on_two_daemons_one_wins(
    pair: tuple[Daemon, Daemon],
) -> None:
    a, b = pair
    body = {
        "intent_type": "intent.test.approval.v1",
        "to_agent": "agent://test/shared/people",
        "payload": {},
        "human_task": {"title": "Ship it?", "task_type": "approval"},
    }
    for _ in range(5):
        with a.client() as client:
            response = client.post("/v1/intents", json=body)
            assert response.status_code == 200, response.text
            intent_id = response.json()["intent_id"]
        with b.client() as client:  # B reads the task A created: one store
            task_id = _task(client, intent_id)["task_id"]
        answers = _approve_at_once(pair, task_id)
        assert sorted(answers.values()) == [200, 409], answers
        winner = next(who for who, code in answers.items() if code == 200)
        with b.client() as client:
            decided = [
                e
                for e in events(client, intent_id)
                if e["event_type"] == "intent.human_task_decided"
            ]
            assert [e["actor"] for e in decided] == [winner]


def test_a_timer_due_while_both_daemons_run_fires_once(
    pair: tuple[Daemon, Daemon], axme_home: Path
) -> None:
    a, b = pair
    log = axme_home / "steps.log"
    for d in pair:
        _serve(d, WAITS, "waiting_agent.py", log, concurrency=4)
    with a.client() as client:
        naps = [send(client, WAITS, "intent.test.sleep.v1", {"seconds": 1.5}) for _ in range(10)]
    final = wait_final(b, naps, timeout=30)
    assert {i["status"] for i in final.values()} == {"COMPLETED"}
    with b.client() as client:
        for nap in naps:
            ended = [
                e
                for e in events(client, nap)
                if (e.get("details") or {}).get("reason") == "sleep ended"
            ]
            assert len(ended) == 1, (nap, ended)
    for nap in naps:
        runs = [e["step"] for e in step_log(log) if e["intent"] == nap]
        assert sorted(runs) == ["after", "before"], (nap, runs)


def test_a_decision_on_one_daemon_wakes_a_handler_served_by_the_other(
    pair: tuple[Daemon, Daemon], axme_home: Path
) -> None:
    a, b = pair
    log = axme_home / "steps.log"
    _serve(b, WAITS, "waiting_agent.py", log, concurrency=2)  # only B runs it
    with a.client() as client:
        assert client.get(f"/v1/agents/{WAITS[8:]}").status_code == 404, "not A's agent"
        intent_id = send(client, WAITS, "intent.test.approval.v1", {})  # B's worker takes it
        task_id = wait_for(lambda: _task(client, intent_id).get("task_id"), what="the task")
        decided_at = time.monotonic()
        body = {"outcome": "approved", "actor": "alice", "comment": "go"}
        response = client.post(f"/v1/tasks/{task_id}/decision", json=body)
        assert response.status_code == 200, response.text
        done = wait_for(
            lambda: (i := intent(client, intent_id))["status"] == "COMPLETED" and i,
            timeout=10,
            what="B's worker to finish after A's decision",
        )
    took = time.monotonic() - decided_at
    assert done["result"] == {"status": "apply", "by": "alice", "comment": "go"}
    assert took < 5, f"the decision reached B's worker after {took:.1f}s"
    runs = [e["step"] for e in step_log(log) if e["intent"] == intent_id]
    assert sorted(runs) == ["apply", "validate"]


def _cancel_on(daemon: Daemon, intent_id: str) -> str:
    """`axme cancel` on `daemon`'s home: what it printed."""
    canceled = run_cli(daemon.home, "cancel", intent_id, "--reason", "not needed")
    assert canceled.returncode == 0, canceled.stderr
    return canceled.stdout


def test_a_cancel_asked_on_one_daemon_stops_a_handler_running_on_the_other(
    pair: tuple[Daemon, Daemon], axme_home: Path
) -> None:
    a, b = pair
    log = axme_home / "steps.log"
    _serve(b, STEPS, "steps_agent.py", log)  # only B runs it
    with a.client() as client:
        intent_id = send(client, STEPS, "intent.test.long.v1", {"ticks": 1200})  # a minute
        wait_for(
            lambda: any(e["intent"] == intent_id for e in step_log(log)),
            timeout=20,
            what="B's handler to start",
        )
    asked_at = time.monotonic()
    said = _cancel_on(a, intent_id)
    stopped = wait_for(
        lambda: [e for e in step_log(log) if e.get("event") == "stopped"],
        timeout=10,
        what="the handler on B to stop",
    )
    final = wait_final(a, [intent_id], timeout=10)[intent_id]
    took = time.monotonic() - asked_at
    assert "cancel asked" in said, said
    assert final["status"] == "CANCELED"
    assert took < 5, f"the handler on B stopped {took:.1f}s after the cancel on A"
    assert [e["intent"] for e in stopped] == [intent_id]
    mine = [e for e in step_log(log) if e["intent"] == intent_id]
    assert mine[-1]["event"] == "stopped", "a step started after the handler stopped"
    with b.client() as client:
        kinds = [e["event_type"] for e in events(client, intent_id)]
        assert kinds.index("intent.cancel_requested") < kinds.index("intent.canceled")
        assert events(client, intent_id)[-1]["details"]["reason"] == "not needed"


def test_a_cancel_on_one_daemon_frees_the_slot_of_a_worker_on_the_other_at_once(
    pair: tuple[Daemon, Daemon], axme_home: Path
) -> None:
    """An AXME SDK agent hears no cancel: its intent ends at once, and the daemon it runs
    under, told by the other, frees its slot without waiting for its report."""
    a, b = pair
    address = "agent://test/shared/platform"
    with b.client() as client:
        add_agent(client, address, "axme_sdk_agent.py", axme_home)
        wait_for(lambda: running_pids(client, address), timeout=30, what="the agent")
        log_path = Path(agent_status(client, address)["log_path"])
    with a.client() as client:
        intent_id = send(client, address, "intent.test.echo.v1", {"hang": True})
    wait_for(
        lambda: log_path.exists() and f"hanging on {intent_id}" in log_path.read_text(),
        timeout=20,
        what="B's worker to hang in its delivery",
    )
    with b.client() as client:
        assert agent_status(client, address)["in_flight"] == 1
        said = _cancel_on(a, intent_id)
        assert "CANCELED" in said and "cancel asked" not in said, said
        assert intent(client, intent_id)["status"] == "CANCELED"
        wait_for(
            lambda: agent_status(client, address)["in_flight"] == 0,
            timeout=5,
            what="B to free its worker's slot",
        )


def _daemon_id(daemon: Daemon) -> str:
    return (daemon.home / "daemon.id").read_text().strip()


def _listed(daemon: Daemon) -> dict[str, dict[str, Any]]:
    """`axme daemon list --json` on `daemon`'s home, by daemon id."""
    listed = run_cli(daemon.home, "daemon", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    return {r["daemon_id"]: r for r in rows}


def test_daemon_list_shows_both_daemons_what_they_hold_and_one_that_lapsed(
    pair: tuple[Daemon, Daemon], axme_home: Path
) -> None:
    a, b = pair
    _serve(b, STEPS, "steps_agent.py", axme_home / "steps.log")
    with a.client() as client:  # B's worker takes it and holds it a minute
        send(client, STEPS, "intent.test.long.v1", {"ticks": 1200})
    rows = wait_for(
        lambda: (r := _listed(a))[_daemon_id(b)]["leases"] == 1 and r,
        timeout=20,
        what="B's worker to hold the intent",
    )
    mine, theirs = rows[_daemon_id(a)], rows[_daemon_id(b)]
    assert list(rows) == [_daemon_id(a), _daemon_id(b)]  # oldest first
    assert mine["this"] and not theirs["this"]
    assert mine["live"] and theirs["live"]
    assert mine["leases"] == 0 and mine["listening"] == []
    assert theirs["listening"] == [STEPS] and theirs["pid"] == b.proc.pid  # type: ignore[union-attr]
    assert theirs["home"] == str(b.home) and theirs["lease_grace"] == GRACE
    assert 0 <= theirs["heartbeat_age"] < GRACE and theirs["heartbeat_at"].endswith("Z")

    b.kill()
    wait_for(
        lambda: not _listed(a)[_daemon_id(b)]["live"],
        timeout=GRACE + 5,
        what="A to list B as lapsed",
    )
    text = run_cli(a.home, "daemon", "list")
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line for line in text.stdout.splitlines()[1:]}
    assert "(this)" in lines[_daemon_id(a)] and " live " in lines[_daemon_id(a)]
    assert " lapsed " in lines[_daemon_id(b)]
    assert "1 live of 2 registered on this store" in text.stderr


def test_an_agent_only_the_other_daemon_serves_is_known_here(
    pair: tuple[Daemon, Daemon], axme_home: Path
) -> None:
    """An intent with a human task goes to a known agent first (AXME's order), else to the
    person at once; a scenario may name a known agent without provisioning one."""
    a, b = pair
    _serve(b, WAITS, "waiting_agent.py", axme_home / "steps.log")  # registered on B only
    free = "agent://test/shared/free"  # registered nowhere: a worker listens on B's API
    stop = threading.Event()

    def listen() -> None:
        with b.client(timeout=30) as client:
            while not stop.is_set():
                client.get(
                    f"/v1/agents/{free[8:]}/intents/stream",
                    params={"wait_seconds": 1},
                    headers={"X-Axme-Worker": "free-1"},
                )

    listener = threading.Thread(target=listen)
    listener.start()
    try:
        wait_for(
            lambda: free in _listed(a)[_daemon_id(b)]["listening"],
            timeout=10,
            what="B to say its worker listens",
        )
        with a.client() as client:
            for address, first in ((WAITS, "SUBMITTED"), (free, "SUBMITTED"), (STEPS, "WAITING")):
                body = {
                    "intent_type": "intent.test.quick.v1",
                    "to_agent": address,
                    "payload": {},
                    "human_task": {"title": "Fine?"},
                }
                created = client.post("/v1/intents", json=body)
                assert created.status_code == 200, created.text
                assert created.json()["status"] == first, address
            bundle = {
                "scenario_id": "shared.check.v1",
                "agents": [{"role": "checker", "address": WAITS}],
                "workflow": {
                    "steps": [
                        {
                            "step_id": "check",
                            "tool_id": "tool.agent.task.v1",
                            "assigned_to": "checker",
                        }
                    ]
                },
                "intent": {"type": "intent.test.quick.v1", "payload": {}},
            }
            checked = client.post("/v1/scenarios/validate", json=bundle).json()
            assert checked["valid"], checked["errors"]
    finally:
        stop.set()
        listener.join(30)
