"""W4 growth: does axme stay as quick with a million intents in its store as with ten thousand?

The store is filled through the store API, with the daemon stopped: `python -m
axme_daemon.growth` (the CLI never opens the store) writes finished 1-step pipelines as the
daemon writes an agent's work (created, delivered, reported done with their step), many to a
transaction, and one in a hundred waiting for a person (WAITING_FOR_HUMAN, with a PENDING
task), so the inbox grows with the store. After each fill the daemon starts on it and the
bench measures what a user does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axme_cli.errors import AxmeError
from axme_cli.paths import HomePaths

#: Smallest size measured; then every power of ten up to the requested scale.
FIRST_SIZE = 10_000
#: Requests timed per figure and size.
SAMPLES = 30


def sizes(scale: int) -> list[int]:
    """10^4, 10^5, ... up to `scale` (and `scale` itself)."""
    out = []
    size = FIRST_SIZE
    while size < scale:
        out.append(size)
        size *= 10
    return [*out, scale]


def label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000}k"
    return str(size)


@dataclass
class Filler:
    """Grows one home's store; remembers a few ids to `show`."""

    paths: HomePaths
    intent_type: str
    count: int = 0
    sample_ids: list[str] = field(default_factory=list)

    def grow_to(self, size: int) -> None:
        """Add intents until the store holds `size`, in a process of the daemon's package
        that holds the home's lock meanwhile."""
        command = [sys.executable, "-m", "axme_daemon.growth", "--home", str(self.paths.home)]
        command += ["--count", str(size - self.count), "--intent-type", self.intent_type]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise AxmeError(f"axme bench: filling the growth store failed: {said}")
        self.sample_ids += json.loads(done.stdout)["samples"][: 1000 - len(self.sample_ids)]
        self.count = size


def timed(samples: int, call: Callable[[], Any]) -> list[float]:
    """Milliseconds of `samples` calls, after one warm-up call."""
    call()
    out = []
    for _ in range(samples):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def store_bytes(database: Path) -> int:
    return sum(
        p.stat().st_size
        for p in (database, database.with_name(database.name + "-wal"))
        if p.exists()
    )
