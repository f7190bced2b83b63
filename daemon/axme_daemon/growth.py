"""Fill a store through the `Store` API: `axme bench`'s growth workload (W4), and tests that
need a big store.

The intents are written as the daemon writes them for an agent: created, delivered to a
worker, reported done with one step, so each has its whole timeline, and one in a hundred
waits for a person (its own `human_task`, PENDING), so the inbox grows with the store.
Writes are issued a chunk at a time, so they share transactions (group commit): the
lifecycle rules' own cost per intent, not a commit each. Nothing here knows the schema.

`python -m axme_daemon.growth --home H --count N` grows H's store (its daemon stopped, the
home's lock held meanwhile) by N intents and prints a JSON line: the total and a few ids of
finished intents, for `show`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from axme_cli.paths import PRIVATE_UMASK, home_paths
from axme_daemon.intents import NewIntent
from axme_daemon.store import Store, WorkerReport, open_store

#: Intents written per round of writes (each round: creates, a lease, a report).
CHUNK = 500
#: The worker the fill's intents are delivered to; it exists only in their timelines.
WORKER = "growth-fill"
#: Ids of finished intents kept for `show`, at most.
SAMPLES = 1000
TASK = {"task_type": "approval", "title": "bench: approve?", "on_timeout": "reject"}


async def fill(
    store: Store,
    count: int,
    *,
    intent_type: str,
    to_agent: str,
    samples: list[str] | None = None,
    tick: Callable[[int], None] = lambda n: None,
) -> None:
    """Add `count` intents to the open `store`: finished 1-step ones, and every hundredth
    waiting for a person. Ids of finished ones go to `samples` (up to `SAMPLES`)."""
    done = 0
    while done < count:
        n = min(CHUNK, count - done)
        new = NewIntent(intent_type, to_agent, {"steps": 1})
        waits = NewIntent(intent_type, to_agent, {"steps": 1}, human_task=TASK)
        creates: list[Awaitable[object]] = [
            store.create_task_intent(waits, str(uuid.uuid4()))
            if (done + i) % 100 == 99
            else store.create_intent(new, str(uuid.uuid4()))
            for i in range(n)
        ]
        await asyncio.gather(*creates)
        plain = n - sum((done + i) % 100 == 99 for i in range(n))
        leased = await store.lease(to_agent, WORKER, plain, {})
        reports = [
            WorkerReport(
                intent.intent_id,
                steps=[(1, "s1", {"step": 1, "ok": True})],
                completed=True,
                result={"steps": 1},
            )
            for intent, _ in leased
        ]
        answers = await store.report(reports, WORKER)
        refused = [a for a in answers if isinstance(a, Exception)]
        if refused:
            raise RuntimeError(f"the store refused a fill report: {refused[0]}")
        if samples is not None:
            room = max(0, SAMPLES - len(samples))
            samples.extend(r.intent_id for r in reports[::100][:room])
        done += n
        tick(n)


async def _grow(
    url: str, key_file: Path, count: int, intent_type: str, to_agent: str
) -> dict[str, Any]:
    store = open_store(url, key_file=key_file)
    await store.open()
    samples: list[str] = []
    try:
        await fill(store, count, intent_type=intent_type, to_agent=to_agent, samples=samples)
    finally:
        await store.close()
    return {"added": count, "samples": samples}


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    parser = argparse.ArgumentParser(prog="python -m axme_daemon.growth", description=__doc__)
    parser.add_argument("--home", type=Path, help="axme home (default: $AXME_HOME or XDG)")
    parser.add_argument("--store", metavar="URL", help="default: the home's axme.db")
    parser.add_argument("--count", type=int, required=True, metavar="N")
    parser.add_argument("--intent-type", default="intent.bench.pipeline.v1")
    parser.add_argument("--to-agent", default="agent://bench/local/growth")
    args = parser.parse_args(argv)
    from axme_daemon.server import AlreadyRunning, acquire_lock

    paths = home_paths(args.home)
    try:
        lock = acquire_lock(paths)
    except AlreadyRunning:
        print(f"axme daemon: already running for {paths.home}", file=sys.stderr)
        return 3
    try:
        url = args.store or f"sqlite:///{paths.database}"
        out = asyncio.run(
            _grow(url, paths.secrets_key, args.count, args.intent_type, args.to_agent)
        )
    finally:
        os.close(lock)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
