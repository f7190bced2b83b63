"""Supervised-agent latencies against a throwaway daemon, medians of repeated runs.

    python scripts/bench_agents.py [--sends 50] [--kills 10]

- send-to-completed: one client sends a one-step intent and waits for COMPLETED on the event
  stream, one intent at a time.
- kill-to-pickup: an agent is SIGKILLed in the middle of a step; time from the kill until the
  intent is delivered again (`intent.delivered`, attempt 2) and until the restarted worker
  starts on it (`intent.in_progress`).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from axme_cli.client import DaemonClient, socket_accepts
from axme_cli.paths import HomePaths

ADDRESS = "agent://bench/dev/one"


def _at(event: dict) -> float:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


def _pid(client: DaemonClient) -> int | None:
    replicas = client.get_agent(ADDRESS)["replicas"]
    if replicas and replicas[0]["state"] == "RUNNING" and replicas[0]["pid"]:
        return int(replicas[0]["pid"])
    return None


def _wait(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise SystemExit("timed out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=50)
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="axme-bench-", dir="/tmp"))
    paths = HomePaths(home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "axme_daemon", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: socket_accepts(paths.socket), 20)
        with DaemonClient(paths.socket) as client:
            script = Path(__file__).with_name("bench_agent.py")
            client.add_agent(
                {"address": ADDRESS, "command": [sys.executable, str(script)], "cwd": str(home)}
            )
            _wait(lambda: _pid(client))
            body = {"intent_type": "intent.bench.one.v1", "to_agent": ADDRESS, "payload": {}}
            for _ in range(3):  # warm up
                intent_id = client.create_intent(body)["intent_id"]
                list(client.follow(intent_id, timeout=30))
            latencies = []
            for _ in range(args.sends):
                began = time.perf_counter()
                intent_id = client.create_intent(body)["intent_id"]
                for _event in client.follow(intent_id, since=2, timeout=30):
                    pass
                latencies.append((time.perf_counter() - began) * 1000)
            print(
                f"send-to-completed, one-step intent: median {statistics.median(latencies):.1f} ms"
                f" (p90 {statistics.quantiles(latencies, n=10)[-1]:.1f} ms, n={len(latencies)})"
            )
            pickups, starts = [], []
            hang = {**body, "payload": {"hang": True}}
            for _ in range(args.kills):
                pid = _wait(lambda: _pid(client))
                intent_id = client.create_intent(hang)["intent_id"]
                _wait(
                    lambda i=intent_id: any(
                        e["event_type"] == "intent.progress" for e in client.list_events(i)
                    )
                )
                killed = time.time()
                os.kill(pid, signal.SIGKILL)
                events = list(client.follow(intent_id, timeout=30))
                delivered = [
                    e
                    for e in events
                    if e["event_type"] == "intent.delivered"
                    and e["details"]["delivery_attempt"] == 2
                ]
                started = [e for e in events if e["event_type"] == "intent.in_progress"]
                pickups.append((_at(delivered[0]) - killed) * 1000)
                starts.append((_at(started[-1]) - killed) * 1000)
            print(
                f"SIGKILL to redelivery (intent.delivered, attempt 2): median "
                f"{statistics.median(pickups):.0f} ms; to the new worker starting on it "
                f"(intent.in_progress): median {statistics.median(starts):.0f} ms "
                f"(n={args.kills}; runs {', '.join(f'{p:.0f}' for p in pickups)})"
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


if __name__ == "__main__":
    main()
