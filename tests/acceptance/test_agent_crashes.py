"""Supervised agents survive crashes: a SIGKILLed agent or daemon costs a redelivery, and
steps that finished are replayed from the record, never run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.agents import (
    add_agent,
    agent_status,
    assert_finished_steps_not_rerun,
    events,
    running_pids,
    send,
    step_log,
    wait_final,
)
from tests.daemon import Daemon, env_for, wait_for

ADDRESS = "agent://test/crash/steps"
TYPE = "intent.test.steps.v1"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _started(log: Path, intent_id: str, step: int, attempt: int = 1) -> bool:
    return any(
        e["intent"] == intent_id and e["step"] == step and e["attempt"] == attempt
        for e in step_log(log)
        if e["event"] == "start"
    )


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_sigkill_during_step_k_reruns_only_step_k(daemon: Daemon, axme_home: Path, k: int) -> None:
    log = axme_home / "steps.log"
    with daemon.client() as client:
        add_agent(client, ADDRESS, "steps_agent.py", axme_home, env={"STEP_LOG": str(log)})
        pid = wait_for(lambda: running_pids(client, ADDRESS), timeout=20, what="the agent")[0]
        intent_id = send(client, ADDRESS, TYPE, {"block_at": k})
        wait_for(lambda: _started(log, intent_id, k), timeout=20, what=f"step {k} to start")
        os.kill(pid, signal.SIGKILL)
        final = wait_final(daemon, [intent_id], timeout=30)[intent_id]
        assert final["status"] == "COMPLETED"
        assert final["result"] == {"done": True, "attempt": 2}

        runs = step_log(log)
        for n in range(1, 5):
            starts = [e for e in runs if e["step"] == n and e["event"] == "start"]
            ends = [e for e in runs if e["step"] == n and e["event"] == "end"]
            if n < k:
                assert len(starts) == len(ends) == 1, f"step {n} ran {len(starts)} times"
            elif n == k:
                assert [e["attempt"] for e in starts] == [1, 2]  # interrupted, then re-run
                assert [e["attempt"] for e in ends] == [2]
            else:
                assert [e["attempt"] for e in starts] == [2]
        assert_finished_steps_not_rerun(client, intent_id, log)
        timeline = events(client, intent_id)
        redelivery = [e for e in timeline if e["event_type"] == "intent.submitted" and e["seq"] > 2]
        assert len(redelivery) == 1
        assert "killed by SIGKILL" in redelivery[0]["details"]["reason"]
        delivered = [e for e in timeline if e["event_type"] == "intent.delivered"]
        assert [e["details"]["delivery_attempt"] for e in delivered] == [1, 2]
        assert "killed by SIGKILL" in delivered[1]["details"]["reason"]
        assert [e["event_type"] for e in timeline].count("intent.completed") == 1


def test_fifty_intents_on_two_replicas_survive_repeated_kills(
    daemon: Daemon, axme_home: Path
) -> None:
    log = axme_home / "steps.log"
    with daemon.client() as client:
        add_agent(
            client,
            ADDRESS,
            "steps_agent.py",
            axme_home,
            env={"STEP_LOG": str(log)},
            replicas=2,
            concurrency=4,
            max_delivery_attempts=10,
        )
        wait_for(lambda: _two(client), timeout=20, what="2 replicas")
        ids = [send(client, ADDRESS, TYPE, {"step_seconds": 0.05}) for _ in range(50)]
        for round_ in range(3):
            # Kill a replica while it is in the middle of steps, three times over.
            seen = len(step_log(log))
            wait_for(lambda s=seen: len(step_log(log)) > s + 10, timeout=30, what="progress")
            pids = wait_for(lambda: running_pids(client, ADDRESS), timeout=20, what="replicas")
            os.kill(pids[round_ % len(pids)], signal.SIGKILL)
        final = wait_final(daemon, ids, timeout=120)
        assert {i["status"] for i in final.values()} == {"COMPLETED"}
        for intent_id in ids:
            assert_finished_steps_not_rerun(client, intent_id, log)
            assert [e["event_type"] for e in events(client, intent_id)].count(
                "intent.completed"
            ) == 1
        restarts = sum(r["restarts"] for r in agent_status(client, ADDRESS)["replicas"])
        assert restarts == 3


def _two(client: httpx.Client) -> list[int]:
    pids = running_pids(client, ADDRESS)
    return pids if len(pids) == 2 else []


def test_sigkill_of_the_daemon_loses_nothing_and_leaves_no_orphans(axme_home: Path) -> None:
    log = axme_home / "steps.log"
    daemon = Daemon(axme_home).start()
    try:
        with daemon.client() as client:
            add_agent(
                client,
                ADDRESS,
                "steps_agent.py",
                axme_home,
                env={"STEP_LOG": str(log)},
                replicas=2,
                concurrency=3,
                max_delivery_attempts=5,
            )
            old_pids = wait_for(
                lambda: (
                    running_pids(client, ADDRESS) if len(running_pids(client, ADDRESS)) == 2 else []
                ),
                timeout=20,
                what="2 replicas",
            )
            ids = [send(client, ADDRESS, TYPE, {"step_seconds": 0.2}) for _ in range(10)]
            wait_for(lambda: len(step_log(log)) >= 8, timeout=30, what="agents at work")
        daemon.kill()
        # The agents die with the daemon that started them: no orphans.
        wait_for(lambda: not any(_alive(p) for p in old_pids), timeout=10, what="agents to exit")

        daemon = Daemon(axme_home).start()
        with daemon.client() as client:
            final = wait_final(daemon, ids, timeout=90)
            assert {i["status"] for i in final.values()} == {"COMPLETED"}
            new_pids = running_pids(client, ADDRESS)
            assert new_pids and not set(new_pids) & set(old_pids)
            for intent_id in ids:
                assert_finished_steps_not_rerun(client, intent_id, log)
            requeued = [
                e
                for intent_id in ids
                for e in events(client, intent_id)
                if e["event_type"] == "intent.submitted" and e["seq"] > 2
            ]
            assert any(e["details"]["reason"] == "the daemon restarted" for e in requeued)
    finally:
        daemon.stop()


def _unsupervised_worker(daemon: Daemon, log: Path) -> subprocess.Popen[bytes]:
    """The steps agent run by hand, not by the daemon: its lease lives by its stream."""
    from tests.agents import AGENTS

    env = {
        **env_for(daemon.home),
        "AXME_SOCKET": str(daemon.socket),
        "AXME_AGENT": ADDRESS,
        "STEP_LOG": str(log),
    }
    return subprocess.Popen(
        [sys.executable, str(AGENTS / "steps_agent.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_an_unsupervised_workers_lease_lapses_when_its_stream_drops(axme_home: Path) -> None:
    log = axme_home / "steps.log"
    daemon = Daemon(axme_home, env={"AXME_LEASE_GRACE_SECONDS": "1"}).start()
    first = second = None
    try:
        first = _unsupervised_worker(daemon, log)
        with daemon.client() as client:
            intent_id = send(client, ADDRESS, TYPE, {"block_at": 2})
            wait_for(lambda: _started(log, intent_id, 2), timeout=20, what="step 2 to start")
            first.kill()
            first.wait(10)
            killed = time.monotonic()
            second = _unsupervised_worker(daemon, log)
            final = wait_final(daemon, [intent_id], timeout=30)[intent_id]
            assert final["status"] == "COMPLETED" and final["delivery_attempt"] == 2
            assert time.monotonic() - killed >= 1.0, "redelivered before the lease grace"
            timeline = events(client, intent_id)
            requeue = [
                e for e in timeline if e["event_type"] == "intent.submitted" and e["seq"] > 2
            ]
            assert "stopped listening" in requeue[0]["details"]["reason"]
            assert_finished_steps_not_rerun(client, intent_id, log)
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait(10)
        daemon.stop()
