"""Create throughput against a throwaway daemon: intents/s and store commits, 1 vs N clients.

    python scripts/bench_create.py [--intents 2000] [--clients 20] [--repeat 3]

Starts `python -m axme_daemon` on a temporary home, so it measures the real socket, API and
durable SQLite commits on this machine's disk. Prints medians over the repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from axme_cli.client import socket_accepts
from axme_cli.paths import HomePaths


def _run(socket: Path, total: int, clients: int) -> float:
    per_client = total // clients
    barrier = threading.Barrier(clients + 1)

    def work() -> None:
        transport = httpx.HTTPTransport(uds=str(socket))
        with httpx.Client(transport=transport, base_url="http://axme") as client:
            barrier.wait()
            for n in range(per_client):
                body = {"intent_type": "intent.bench.v1", "to_agent": "agent://bench/a"}
                body["payload"] = {"n": n}
                client.post("/v1/intents", json=body).raise_for_status()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return per_client * clients / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="axme-bench-", dir="/tmp"))
    paths = HomePaths(home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "axme_daemon", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not socket_accepts(paths.socket):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the daemon did not start")
            time.sleep(0.02)
        transport = httpx.HTTPTransport(uds=str(paths.socket))
        with httpx.Client(transport=transport, base_url="http://axme") as health:
            for clients in (1, args.clients):
                rates, commits = [], []
                for _ in range(args.repeat):
                    before = health.get("/health").json()["store"]["commits"]
                    rates.append(_run(paths.socket, args.intents, clients))
                    commits.append(health.get("/health").json()["store"]["commits"] - before)
                print(
                    f"{clients:>3} client(s): {statistics.median(rates):7.0f} creates/s "
                    f"(median of {args.repeat}; runs {', '.join(f'{r:.0f}' for r in rates)}), "
                    f"{statistics.median(commits):.0f} commits per {args.intents} creates"
                )
    finally:
        proc.terminate()
        proc.wait(20)


if __name__ == "__main__":
    main()
