"""PG: `axme bench --store postgresql://...`: W1 and W1-seq with a daemon on PostgreSQL,
set beside SQLite's figures of the same run (`ratio_to_sqlite`).

A second throwaway home runs a daemon with `--store URL`, the bundled agent beside it, and
the very W1 (3-step intents) and W1-seq code the SQLite figures come from. The database must
hold no intents (the bench refuses one that does, so that no one's store is mixed with its
work) and keeps the bench's intents after: give it a database of its own and drop it after.

Figures that need several daemons on one database (W1 with two, W2 with a daemon rather than
an agent SIGKILLed: kill to COMPLETED on the survivor) come only once the store lets daemons
share it: `several_daemons` is that check. Until then a second daemon starting on the database
would take the first one's leases, so the bench starts none and says so in its checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from axme_cli.errors import Conflict

if TYPE_CHECKING:
    from axme_cli.bench.workloads import Bench

#: SQLite's figure (workload, name) → its name on PostgreSQL, one daemon.
FIGURES = {
    ("W1", "3-step intents"): "3-step intents (1 daemon)",
    ("W1", "3-step latency"): "3-step latency (1 daemon)",
    ("W1", "3-step syncs"): "3-step commits (1 daemon)",  # each waits for the server's fsync
    ("W1-seq", "latency"): "seq latency (1 daemon)",
    ("W1-seq", "step record lag"): "step record lag (1 daemon)",
}


def several_daemons(health: dict[str, Any]) -> bool:
    """Whether daemons may share this daemon's store: each then registers itself in the
    database and says so in `/health` (`daemon_id`), its leases carry it as their owner."""
    return bool(health.get("daemon_id"))


def run(bench: Bench) -> None:
    """The PG figures, into `bench.results`."""
    from axme_cli.bench.workloads import PIPELINE_AGENT, Bench

    plan = bench.plan
    assert plan.store is not None
    pg = Bench(
        plan, lambda _, done: bench.tick("PG", done), store=plan.store, home=bench.home / "pg"
    )
    try:
        pg.start()
        if pg.api.list_intents(limit=1)["intents"]:
            raise Conflict(
                "axme bench: --store: that database already holds intents; give the bench an"
                " empty database of its own (createdb), and drop it after"
            )
        health = pg.api.health()
        pg.add_agent(PIPELINE_AGENT, replicas=plan.replicas, concurrency=plan.concurrency)
        for _ in range(plan.repeat):
            pg.pipeline_run(3)
            bench.tick("PG", 1)
        pg.w1_seq()
    finally:
        pg.close()
    bench.results.checks["PG store"] = health["database"]
    bench.results.checks["PG several daemons"] = (
        "supported, not measured yet"
        if several_daemons(health)
        else "not measured: the store serves one daemon at a time"
    )
    for (workload, name), label in FIGURES.items():
        measured = pg.results.metrics.get((workload, name))
        if measured is not None:
            bench.results.add("PG", label, measured.unit, *measured.samples, note=measured.note)
            bench.results.beside[("PG", label)] = (workload, name)
