"""PG: `axme bench --store postgresql://...`: W1 and W1-seq with a daemon on PostgreSQL,
set beside SQLite's figures of the same run (`ratio_to_sqlite`); W1 with two daemons on the
database beside one; W2 with a daemon (not an agent) SIGKILLed: kill to COMPLETED on the
survivor.

Two throwaway homes run daemons with `--store URL` and `--lease-grace GRACE`, each with the
bundled agent under it. The database must hold no intents (the bench refuses one that does,
so that no one's store is mixed with its work) and keeps the bench's intents after: give it
a database of its own and drop it after.

- One daemon (home A alone): the very W1 (3-step intents, one client) and W1-seq code the
  SQLite figures come from; then CLIENTS clients submitting at once, all to A.
- Two daemons: B starts on its home, its own agent beside A's, and the same CLIENTS clients
  are split between A and B; B stops again before the next repetition, so the one- and
  two-daemon runs alternate under the same load of the machine.
- A daemon killed: both run the crash agent (step 2 sleeps 2 s on a first attempt); one
  daemon's room of intents is created on A and B in turn, and A is SIGKILLed once A's and
  B's agents are in step 2 of every one (step 1 recorded). Its agents die with it; B ends
  A's deliveries once A's heartbeat is GRACE old, and its workers, which have room for
  every one, run them again (step 1 replayed, never run). Per intent A held: kill to
  redelivery, kill to COMPLETED.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axme_cli.errors import AxmeError, Conflict

if TYPE_CHECKING:
    from axme_cli.bench.workloads import Bench, Results

#: The lease grace of the bench's PG daemons (`--lease-grace`): a killed daemon's deliveries
#: go back to the queue once its last heartbeat is this old.
GRACE = 2.0
#: Clients submitting at once in the one-against-two-daemons runs (split evenly over two).
CLIENTS = 4

#: W2's figures with a daemon killed, and the event on the survivor each is timed to.
_KILL_TO = (
    ("daemon kill to redelivery", "intent.delivered again"),
    ("daemon kill to completed", "intent.completed"),
)

#: SQLite's figure (workload, name) → its name on PostgreSQL, one daemon.
FIGURES = {
    ("W1", "3-step intents"): "3-step intents (1 daemon)",
    ("W1", "3-step latency"): "3-step latency (1 daemon)",
    ("W1", "3-step syncs"): "3-step commits (1 daemon)",  # each waits for the server's fsync
    ("W1-seq", "latency"): "seq latency (1 daemon)",
    ("W1-seq", "step record lag"): "step record lag (1 daemon)",
}


def run(bench: Bench) -> None:
    """The PG figures, into `bench.results`."""
    from axme_cli.bench.workloads import PIPELINE_AGENT, Bench

    plan = bench.plan
    assert plan.store is not None

    def tick(_: str, done: float) -> None:
        bench.tick("PG", done)

    def daemon(name: str) -> Bench:
        return Bench(plan, tick, store=plan.store, home=bench.home / name, lease_grace=GRACE)

    a, b = daemon("pg"), daemon("pg-b")
    try:
        a.start()
        if a.api.list_intents(limit=1)["intents"]:
            raise Conflict(
                "axme bench: --store: that database already holds intents; give the bench an"
                " empty database of its own (createdb), and drop it after"
            )
        database = a.api.health()["database"]
        a.add_agent(PIPELINE_AGENT, replicas=plan.replicas, concurrency=plan.concurrency)
        for n in range(plan.repeat):
            a.pipeline_run(3)
            _clients_run(bench.results, [a])
            b.start()
            if n == 0:
                b.add_agent(PIPELINE_AGENT, replicas=plan.replicas, concurrency=plan.concurrency)
                bench.results.checks["PG daemons sharing"] = a.api.health()["daemons"]
            else:
                b.wait_running(PIPELINE_AGENT, plan.replicas)
            _clients_run(bench.results, [a, b])
            b.stop()
            bench.tick("PG", 1)
        a.w1_seq()
        b.start()
        _daemon_kills(bench, a, b)
        bench.tick("PG", 1)
    finally:
        try:
            b.close()
        finally:
            a.close()
    checks = bench.results.checks
    checks["PG store"] = database
    checks["PG lease grace (s)"] = GRACE
    one, two = (
        bench.results.metrics[("PG", f"3-step intents ({who}, {CLIENTS} clients)")].samples
        for who in ("1 daemon", "2 daemons")
    )
    checks["PG 2 daemons / 1 daemon"] = round(statistics.median(two) / statistics.median(one), 3)
    for (workload, name), label in FIGURES.items():
        measured = a.results.metrics.get((workload, name))
        if measured is not None:
            bench.results.add("PG", label, measured.unit, *measured.samples, note=measured.note)
            bench.results.beside[("PG", label)] = (workload, name)


def _clients_run(results: Results, daemons: list[Bench]) -> None:
    """CLIENTS clients, split over `daemons`, submit the plan's W1 intents (3 steps) back to
    back: intents/s from the first created to the last completed, and each one's latency."""
    from axme_cli.bench import PIPELINE_TYPE
    from axme_cli.bench.workloads import PIPELINE_AGENT, completed_times, submit

    body = {"intent_type": PIPELINE_TYPE, "to_agent": PIPELINE_AGENT, "payload": {"steps": 3}}
    sockets = [daemons[n % len(daemons)].paths.socket for n in range(CLIENTS)]
    _, ids = submit(sockets, daemons[0].plan.intents, body)
    created, completed = completed_times(daemons[0].api, ids)
    who = f"{len(daemons)} daemon{'s' if len(daemons) > 1 else ''}, {CLIENTS} clients"
    results.add(
        "PG",
        f"3-step intents ({who})",
        "intents/s",
        len(ids) / (max(completed) - min(created)),
        note=f"{CLIENTS} clients at once, split over the daemons; each daemon its own agent",
    )
    results.add(
        "PG",
        f"3-step latency ({who})",
        "ms",
        *((c - s) * 1000 for s, c in zip(created, completed, strict=True)),
        note="per intent: intent.created to intent.completed (event times)",
    )


def _daemon_kills(bench: Bench, a: Bench, b: Bench) -> None:
    """W2 with daemon A SIGKILLed mid-step (`plan.kills` times, A started again between):
    per intent A held, the kill to its redelivery and to COMPLETED on B."""
    from axme_cli.bench import CRASH_TYPE
    from axme_cli.bench.workloads import CRASH_AGENT, _wait, completed_times, ran

    plan, results = bench.plan, bench.results
    for d in (a, b):
        d.add_agent(CRASH_AGENT, replicas=1, concurrency=plan.concurrency)
    body = {"intent_type": CRASH_TYPE, "to_agent": CRASH_AGENT, "payload": {}}
    held = step1_reruns = total = 0
    for _ in range(plan.kills):
        # One daemon's room, created on A and B in turn: each delivers to its own agent at
        # once, and B's agent has room for all of A's when they come back.
        ids = [
            str(d.api.create_intent(body)["intent_id"])
            for d in [a, b] * (plan.concurrency // 2) + [a] * (plan.concurrency % 2)
        ]
        total += len(ids)

        # Every one in step 2 (its step 1 recorded), on A or on B: A's are all in flight.
        mid_step = partial(_in_s2, [a.workdir, b.workdir], ids)
        _wait("step 2 to start on both daemons", mid_step, 30)
        assert a.daemon_pid is not None
        killed = time.time()
        os.kill(a.daemon_pid, signal.SIGKILL)
        completed_times(b.api, ids)  # every one COMPLETED (or the bench stops)
        for intent_id in ids:
            step1_reruns += sum(len(ran(d.workdir, intent_id, "s1")) for d in (a, b)) - 1
            again = _redelivered(b.api.list_events(intent_id))
            if again is None:
                continue  # on B all along, or done on A before the kill
            held += 1
            note = f"per intent A held: SIGKILL of its daemon to {{}} on B; lease grace {GRACE:g} s"
            for (name, event), at in zip(_KILL_TO, again, strict=True):
                results.add("PG", name, "ms", (at - killed) * 1000, note=note.format(event))
        a.start()  # for the next kill, and so that `close` stops its agents
        a.wait_running(CRASH_AGENT, 1)
    checks = results.checks
    checks["PG W2 intents / in flight on the killed daemon"] = f"{total} / {held}"
    checks["PG W2 step 1 re-runs"] = step1_reruns
    if not held:
        raise AxmeError("axme bench: no intent was in flight on the killed daemon")
    if step1_reruns:
        raise AxmeError(f"axme bench: step 1 ran again after a crash ({step1_reruns} times)")
    worst = max(results.metrics[("PG", "daemon kill to completed")].samples) / 1000
    checks["PG W2 max kill to completed within lease grace + 1 s"] = worst <= GRACE + 1


def _in_s2(workdirs: list[Path], ids: list[str]) -> bool:
    """Whether the agents in `workdirs` have started step 2's first attempt of every intent."""
    from axme_cli.bench.workloads import ran

    return all(any(1 in ran(w, i, "s2") for w in workdirs) for i in ids)


def _redelivered(events: list[dict[str, Any]]) -> tuple[float, float] | None:
    """When the intent was delivered again (attempt 2 or later) and completed, if it was."""
    from axme_cli.bench.workloads import _at

    again = [
        e
        for e in events
        if e["event_type"] == "intent.delivered"
        and int((e.get("details") or {}).get("delivery_attempt") or 0) >= 2
    ]
    done = [e for e in events if e["event_type"] == "intent.completed"]
    if not again or not done:
        return None
    return _at(again[0]), _at(done[-1])
