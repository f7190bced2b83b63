"""The agent `axme demo` runs: a 3-step pipeline whose finished steps survive a crash.

    extract   -> reads the rows (here: random order amounts; random is fine, the result is
                 recorded, and a redelivery gets the same rows back)
    transform -> slow on the first attempt, so the demo can SIGKILL the process mid-step
    load      -> writes the totals

Each `ctx.step` result is recorded by the daemon before the handler goes on. When the process
dies, the supervisor restarts it and redelivers the intent: `extract` comes back from the
record without running, `transform` (interrupted, so never recorded) runs again.

Every real execution of a step appends one line to `$AXME_DEMO_DIR/runs.jsonl`, so the demo
can count them: a replayed step never gets there.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axme_cli.agent import Agent, Context

ADDRESS = "agent://axme/demo/pipeline"

agent = Agent(ADDRESS)


@dataclass(frozen=True)
class Run:
    """The delivery a step runs in."""

    intent_id: str
    attempt: int

    def ran(self, step: str) -> None:
        """Note one real execution of `step` (appended and closed: a SIGKILL loses nothing)."""
        directory = Path(os.environ.get("AXME_DEMO_DIR") or ".")
        line = {"intent_id": self.intent_id, "step": step, "attempt": self.attempt}
        with open(directory / "runs.jsonl", "a") as f:
            f.write(json.dumps({**line, "pid": os.getpid()}) + "\n")


def extract(run: Run, source: str, count: int) -> list[int]:
    """Read `count` order amounts, in cents, from `source`."""
    run.ran("extract")
    time.sleep(0.3)
    return [random.randint(100, 50_000) for _ in range(count)]


def transform(run: Run, amounts: list[int]) -> dict[str, int]:
    """Aggregate the rows; slow on the first attempt (the demo kills the agent here)."""
    run.ran("transform")
    time.sleep(2.0 if run.attempt == 1 else 0.3)
    return {"rows": len(amounts), "total_cents": sum(amounts)}


def load(run: Run, totals: dict[str, int]) -> dict[str, Any]:
    """Write the totals to the warehouse."""
    run.ran("load")
    time.sleep(0.2)
    return {"rows": totals["rows"], "table": "demo.daily_orders"}


@agent.handler("intent.demo.pipeline.v1")
def pipeline(ctx: Context) -> dict[str, Any]:
    run = Run(ctx.intent_id, ctx.attempt)
    source = str(ctx.payload.get("source", "orders.csv"))
    count = int(ctx.payload.get("rows", 1200))

    amounts = ctx.step("extract", extract, run, source, count)
    if ctx.attempt > 1:
        replayed = ctx.replayed_steps
        ctx.progress(f"resumed: {replayed} finished step(s) replayed from the record, not re-run")
    else:
        ctx.progress(f"extracted {len(amounts)} rows")

    ctx.progress(f"transforming {len(amounts)} rows")
    totals = ctx.step("transform", transform, run, amounts)
    loaded = ctx.step("load", load, run, totals)
    ctx.progress(f"loaded {loaded['rows']} rows into {loaded['table']}")
    return {"loaded_rows": loaded["rows"], "attempt": ctx.attempt}


if __name__ == "__main__":
    agent.run()
