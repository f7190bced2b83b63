"""The no-op agent `axme bench` runs: steps that return small dicts, and nothing else.

- `intent.bench.pipeline.v1`: `payload.steps` steps (default 3), each returning a small dict.
- `intent.bench.crash.v1`: 3 steps; a progress event right before step 2, which sleeps 2 s on
  attempt 1 (the bench SIGKILLs the process there). Every real step execution is appended to
  `$AXME_BENCH_DIR/runs.jsonl`, so the bench can check step 1 did not run again.
- `intent.bench.approval.v1`: waits for a person (`ctx.request_approval`), then completes.
- `intent.bench.lag.v1`: one step that returns when it ended, then 20 ms of plain code (no
  step after it), so its record leaves on its own: the bench reads how long after the step's
  end it was in the store.
- `intent.bench.long.v1`: `payload.steps` steps in a loop (one name: `s`, `s#2`, ...); on
  attempt 1 the process notes the time and SIGKILLs itself as step `payload.kill_at` starts.
  The redelivery replays the recorded ones and returns how long that took.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from axme_cli.agent import Agent, Context

agent = Agent(os.environ.get("AXME_AGENT") or "agent://bench/local/agent")


def noop(n: int) -> dict[str, Any]:
    return {"step": n, "ok": True}


@agent.handler("intent.bench.pipeline.v1")
def pipeline(ctx: Context) -> dict[str, Any]:
    steps = int(ctx.payload.get("steps", 3))
    for n in range(steps):
        ctx.step(f"s{n + 1}", noop, n + 1)
    return {"steps": steps}


def _ran(intent_id: str, step: str, attempt: int) -> None:
    """Note one real execution of `step` (appended and closed: a SIGKILL loses nothing)."""
    directory = Path(os.environ.get("AXME_BENCH_DIR") or ".")
    line = {"intent_id": intent_id, "step": step, "attempt": attempt}
    with open(directory / "runs.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def crash_step(intent_id: str, step: str, attempt: int, sleep: float) -> dict[str, Any]:
    _ran(intent_id, step, attempt)
    if sleep:
        time.sleep(sleep)
    return {"step": step}


@agent.handler("intent.bench.crash.v1")
def crash(ctx: Context) -> dict[str, Any]:
    ctx.step("s1", crash_step, ctx.intent_id, "s1", ctx.attempt, 0.0)
    ctx.progress("before s2")
    slow = 2.0 if ctx.attempt == 1 else 0.0
    ctx.step("s2", crash_step, ctx.intent_id, "s2", ctx.attempt, slow)
    ctx.step("s3", crash_step, ctx.intent_id, "s3", ctx.attempt, 0.0)
    return {"attempt": ctx.attempt}


@agent.handler("intent.bench.approval.v1")
def approval(ctx: Context) -> dict[str, Any]:
    decision = ctx.request_approval("bench: approve?")
    return {"approved": decision.approved}


def ended() -> dict[str, float]:
    return {"ended": time.time()}


@agent.handler("intent.bench.lag.v1")
def lag(ctx: Context) -> dict[str, Any]:
    ctx.step("s1", ended)
    time.sleep(0.02)  # plain code after the step: its record does not ride with a next one
    return {"ok": True}


def die(intent_id: str) -> None:
    """Note the time, then SIGKILL this process (in a step: the ones before are recorded)."""
    directory = Path(os.environ.get("AXME_BENCH_DIR") or ".")
    with open(directory / "runs.jsonl", "a") as f:
        f.write(json.dumps({"intent_id": intent_id, "killed": time.time()}) + "\n")
    os.kill(os.getpid(), signal.SIGKILL)


@agent.handler("intent.bench.long.v1")
def long(ctx: Context) -> dict[str, Any]:
    began = time.perf_counter()
    steps, kill_at = int(ctx.payload["steps"]), int(ctx.payload["kill_at"])
    replay = None
    for n in range(1, steps + 1):
        before = time.perf_counter()
        if ctx.attempt == 1 and n == kill_at:
            ctx.step("s", die, ctx.intent_id)
        ctx.step("s", noop, n)
        if replay is None and ctx.replayed_steps < n:  # this one ran: the replay is over
            replay = before - began
    return {"replayed": ctx.replayed_steps, "replay_s": replay}


if __name__ == "__main__":
    agent.run()
