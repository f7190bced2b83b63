"""The workloads `axme bench` runs against a throwaway daemon on a temporary home.

Each workload adds `Metric`s to a `Results`: a throughput metric holds one figure per
repetition; a latency metric pools every sample of every repetition. `report()` turns them
into median, p99, min and max (and, for throughputs, the ratio to W0's single-row commits).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from axme_cli.bench import (
    AGENT_SCRIPT,
    APPROVAL_TYPE,
    CRASH_TYPE,
    LONG_TYPE,
    PIPELINE_TYPE,
    RUNS_FILE,
)
from axme_cli.client import DaemonClient
from axme_cli.errors import AxmeError
from axme_cli.paths import HomePaths

WORKLOADS = ("W0", "W1", "W1-seq", "W2", "W3", "W5", "CLI", "PG", "W4", "TUI")
#: Workloads a plain `axme bench` runs: PG needs `--store`, W4 `--scale`, TUI is asked for by
#: name.
DEFAULT_WORKLOADS = WORKLOADS[:-3]

PIPELINE_AGENT = "agent://bench/local/pipeline"
LAG_TYPE = "intent.bench.lag.v1"
CRASH_AGENT = "agent://bench/local/crash"
LONG_AGENT = "agent://bench/local/long"
#: W5's handlers: this many steps, killed as the last but one starts (the larger is the one
#: the figures name; the smaller shows whether replay costs the same per step).
LONG_STEPS = (50, 500)
APPROVAL_AGENT = "agent://bench/local/approval"
#: No agent serves it: creates only.
NOBODY = "agent://bench/local/nobody"

#: The store's settings (daemon/axme_daemon/store/sqlite.py), for W0's raw commits.
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL")


@dataclass(frozen=True)
class Plan:
    """What to run, and how much of it."""

    intents: int
    clients: int
    replicas: int
    repeat: int
    seq: int
    kills: int
    decisions: int
    cli_runs: int
    w0_commits: int
    only: tuple[str, ...]
    scale: int | None = None
    #: PG: the postgresql:// URL of an empty database, for the figures on PostgreSQL.
    store: str | None = None
    #: Intents each W1 agent process handles at once.
    concurrency: int = 8
    #: CPU-bound processes run alongside, to measure on a loaded machine.
    busy: int = 0
    #: TUI: the store it fills, the tasks among them, and how often each key is pressed.
    tui_intents: int = 10_000
    tui_tasks: int = 200
    tui_rounds: int = 20

    @classmethod
    def make(
        cls,
        *,
        quick: bool,
        tiny: bool,
        intents: int | None,
        clients: int,
        replicas: int,
        repeat: int | None,
        only: tuple[str, ...],
        scale: int | None = None,
        concurrency: int = 8,
        busy: int = 0,
        store: str | None = None,
    ) -> Plan:
        if tiny:
            sizes = dict(intents=20, seq=5, kills=1, decisions=2, cli_runs=2, w0_commits=50)
            tui = dict(tui_intents=200, tui_tasks=20, tui_rounds=2)
        elif quick:
            sizes = dict(intents=300, seq=30, kills=3, decisions=10, cli_runs=5, w0_commits=300)
            tui = dict(tui_intents=10_000, tui_tasks=200, tui_rounds=5)
        else:
            sizes = dict(intents=2000, seq=100, kills=5, decisions=50, cli_runs=10, w0_commits=1000)
            tui = dict(tui_intents=10_000, tui_tasks=200, tui_rounds=20)
        if intents is not None:
            sizes["intents"] = intents
        default_repeat = 1 if (quick or tiny) else 3
        return cls(
            clients=clients,
            replicas=replicas,
            concurrency=concurrency,
            repeat=repeat if repeat is not None else default_repeat,
            only=only,
            scale=scale,
            busy=busy,
            store=store,
            **sizes,
            **tui,
        )


@dataclass
class Metric:
    workload: str
    name: str
    unit: str  # "/s" (higher is better) or "ms"
    samples: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def throughput(self) -> bool:
        return self.unit.endswith("/s")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Results:
    def __init__(self) -> None:
        self.metrics: dict[tuple[str, str], Metric] = {}
        self.checks: dict[str, Any] = {}
        #: A figure measured on another store: the SQLite figure it is set beside.
        self.beside: dict[tuple[str, str], tuple[str, str]] = {}

    def metric(self, workload: str, name: str, unit: str, note: str = "") -> Metric:
        key = (workload, name)
        if key not in self.metrics:
            self.metrics[key] = Metric(workload, name, unit, note=note)
        return self.metrics[key]

    def add(self, workload: str, name: str, unit: str, *values: float, note: str = "") -> None:
        self.metric(workload, name, unit, note).samples.extend(values)

    def ceiling(self) -> float | None:
        m = self.metrics.get(("W0", "1-row commits"))
        return statistics.median(m.samples) if m and m.samples else None

    def report(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{workload: {metric: {unit, median, p99, min, max, n[, ratio_to_w0][, note]}}}."""
        ceiling = self.ceiling()
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for m in self.metrics.values():
            if not m.samples:
                continue
            row: dict[str, Any] = {
                "unit": m.unit,
                "median": round(statistics.median(m.samples), 3),
                "p99": round(percentile(m.samples, 99), 3),
                "min": round(min(m.samples), 3),
                "max": round(max(m.samples), 3),
                "n": len(m.samples),
            }
            if m.throughput and ceiling:
                row["ratio_to_w0"] = round(statistics.median(m.samples) / ceiling, 4)
            other = self.metrics.get(self.beside.get((m.workload, m.name), ("", "")))
            if other is not None and other.samples:
                ratio = statistics.median(m.samples) / statistics.median(other.samples)
                row["ratio_to_sqlite"] = round(ratio, 3)
            if m.note:
                row["note"] = m.note
            out.setdefault(m.workload, {})[m.name] = row
        return out


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["at"]).replace("Z", "+00:00")).timestamp()


def _is_final(api: DaemonClient, intent_id: str) -> bool:
    return api.get_intent(intent_id)["status"] in _FINAL


def _last_event(api: DaemonClient, intent_id: str, since: int) -> dict[str, Any]:
    """Follow the intent's event stream until a final event, and return that one."""
    events = list(api.follow(intent_id, since=since, timeout=60))
    return events[-1] if events else {}


def _wait(what: str, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AxmeError(f"axme bench: timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.005)


class _Watcher:
    """A client following an intent's events from a thread of its own, as `axme send
    --wait` does while a person decides: entered, its stream is open."""

    def __init__(self, socket: Path, intent_id: str, since: int) -> None:
        self._client = DaemonClient(socket, timeout=60.0)
        self._intent_id = intent_id
        self._since = since
        self._seen: queue.Queue[tuple[float, dict[str, Any]] | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> _Watcher:
        self._thread.start()
        self._next()  # the last event before: the stream is open
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=60)
        self._client.close()

    def final(self) -> tuple[float, dict[str, Any]]:
        """When the client saw the intent's final event (perf_counter), and that event."""
        while True:
            at, event = self._next()
            if event.get("status") in _FINAL:
                return at, event

    def _follow(self) -> None:
        try:
            for event in self._client.follow(self._intent_id, since=self._since - 1, timeout=60):
                self._seen.put((time.perf_counter(), event))
        except BaseException as exc:
            self._seen.put(exc)

    def _next(self) -> tuple[float, dict[str, Any]]:
        try:
            item = self._seen.get(timeout=60)
        except queue.Empty:
            raise AxmeError(f"axme bench: no event of intent {self._intent_id} in 60s") from None
        if isinstance(item, BaseException):
            raise item
        return item


def completed_times(api: DaemonClient, ids: list[str]) -> tuple[list[float], list[float]]:
    """Wait until every intent is final; when each was created and completed (event
    times). One that ended otherwise than COMPLETED stops the bench."""
    timeout = 60.0 + len(ids) * 0.1
    if ids:  # the last one on its event stream, as `axme wait` does: not a read every 5 ms
        for _ in api.follow(ids[-1], timeout=timeout):  # load on the daemon being measured
            pass
    for intent_id in reversed(ids):  # the rest are done by then, or nearly
        _wait(f"intent {intent_id} to finish", partial(_is_final, api, intent_id), timeout)
    created: list[float] = []
    completed: list[float] = []
    for intent_id in ids:
        kinds = {e["event_type"]: e for e in api.list_events(intent_id)}
        if "intent.completed" not in kinds:
            final = api.get_intent(intent_id)
            raise AxmeError(f"axme bench: intent {intent_id} ended {final['status']}")
        created.append(_at(kinds["intent.created"]))
        completed.append(_at(kinds["intent.completed"]))
    return created, completed


def submit(sockets: list[Path], intents: int, body: dict[str, Any]) -> tuple[float, list[str]]:
    """One client per socket in `sockets` (a daemon's may be named more than once), each
    creating its share of `intents` back to back, all starting at once: how long the
    creates took (s), and the ids."""
    per_client = max(1, intents // len(sockets))
    barrier = threading.Barrier(len(sockets) + 1)
    errors: list[BaseException] = []
    ids: list[str] = []

    def work(socket: Path) -> None:
        try:
            with DaemonClient(socket, timeout=60.0) as client:
                client.health()
                barrier.wait()
                for n in range(per_client):
                    created = client.create_intent({**body, "payload": {**body["payload"], "n": n}})
                    ids.append(str(created["intent_id"]))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in sockets]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    took = time.perf_counter() - began
    if errors:
        raise errors[0]
    return took, ids


def ran(workdir: Path, intent_id: str, step: str) -> list[int]:
    """The attempts in which the bench agent in `workdir` really ran `step` of the intent."""
    try:
        text = (workdir / RUNS_FILE).read_text()
    except FileNotFoundError:
        return []
    attempts = []
    for line in text.splitlines():
        try:
            run = json.loads(line)
        except ValueError:
            continue  # a line cut short by the kill
        if run.get("intent_id") == intent_id and run.get("step") == step:
            attempts.append(int(run["attempt"]))
    return attempts


class Bench:
    """One run: the temp home, its daemon, the agents; `close()` removes all of it."""

    def __init__(
        self,
        plan: Plan,
        tick: Callable[[str, float], None],
        *,
        store: str | None = None,
        home: Path | None = None,
        lease_grace: float | None = None,
    ) -> None:
        """A daemon on `home` (default: a new temp dir), on the store at `store` (default:
        the home's SQLite file), with `lease_grace` (default: the daemon's)."""
        import tempfile

        self.plan = plan
        self.tick = tick  # (what is running, units done) for the progress bar
        self.store = store
        self.lease_grace = lease_grace
        if home is not None:
            home.mkdir(mode=0o700)
        self.home = home or Path(tempfile.mkdtemp(prefix="axme-bench-"))
        self.paths = HomePaths(self.home)
        self.workdir = self.home / "agents"
        self.workdir.mkdir()
        self.client: DaemonClient | None = None
        self.daemon_pid: int | None = None
        self.results = Results()
        self._busy: list[subprocess.Popen[bytes]] = []

    # -- setup and cleanup ---------------------------------------------------------------

    def start(self) -> None:
        from axme_cli import daemonctl

        started = daemonctl.start(self.paths, store=self.store, lease_grace=self.lease_grace)
        self.daemon_pid = started.pid
        if self.client is not None:  # started again (`stop`, or the daemon was killed)
            self.client.close()
        self.client = DaemonClient(self.paths.socket, timeout=60.0)
        # Spin loops: the machine is busy, as under load (once, however often it starts).
        for _ in range(0 if self._busy else self.plan.busy):
            spin = [sys.executable, "-c", "while True: pass", str(self.home)]  # (named: ps)
            self._busy.append(subprocess.Popen(spin, stdin=subprocess.DEVNULL))

    def stop(self) -> None:
        """Stop the daemon (its agents with it), keeping the home: `start` runs it again."""
        from axme_cli import daemonctl

        if self.client is not None:
            self.client.close()
            self.client = None
        daemonctl.stop(self.paths)

    def close(self) -> None:
        import shutil

        from axme_cli import daemonctl

        for spin in self._busy:
            spin.kill()
            spin.wait()
        self._busy.clear()
        try:
            if self.client is not None:
                for agent in (PIPELINE_AGENT, CRASH_AGENT, APPROVAL_AGENT, LONG_AGENT):
                    try:
                        self.client.remove_agent(agent)
                    except AxmeError:
                        pass
                self.client.close()
                self.client = None
        finally:
            try:
                daemonctl.stop(self.paths)  # also one that was still starting
            finally:
                shutil.rmtree(self.home, ignore_errors=True)

    @property
    def api(self) -> DaemonClient:
        assert self.client is not None
        return self.client

    def add_agent(self, address: str, *, replicas: int, concurrency: int) -> None:
        self.api.add_agent(
            {
                "address": address,
                "command": [sys.executable, str(AGENT_SCRIPT)],
                "cwd": str(self.workdir),
                "env": {"AXME_BENCH_DIR": str(self.workdir)},
                "replicas": replicas,
                "concurrency": concurrency,
                "max_delivery_attempts": 5,
            }
        )
        self.wait_running(address, replicas)

    def wait_running(self, address: str, replicas: int) -> None:
        _wait(f"{address} to run", lambda: self.running_pids(address, replicas))

    def running_pids(self, address: str, replicas: int = 1) -> list[int]:
        agent = self.api.get_agent(address)
        if agent["state"] == "FATAL":
            raise AxmeError(f"axme bench: the bench agent {address} could not start")
        pids = [
            int(r["pid"])
            for r in agent.get("replicas") or []
            if r.get("state") == "RUNNING" and r.get("pid")
        ]
        return pids if len(pids) >= replicas else []

    # -- W0: the ceiling -------------------------------------------------------------------

    def w0(self) -> None:
        import sqlite3

        path = self.home / "w0.db"
        db = sqlite3.connect(path, isolation_level=None)
        try:
            for pragma in SQLITE_PRAGMAS:
                db.execute(pragma)
            db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            body = json.dumps({"intent_type": PIPELINE_TYPE, "payload": {"n": 0}})
            commits = self.plan.w0_commits
            for _ in range(self.plan.repeat):
                began = time.perf_counter()
                for _ in range(commits):
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("INSERT INTO t (body) VALUES (?)", (body,))
                    db.execute("COMMIT")
                took = time.perf_counter() - began
                self.results.add("W0", "1-row commits", "tx/s", commits / took)
                batches = max(5, commits // 10)
                began = time.perf_counter()
                for _ in range(batches):
                    db.execute("BEGIN IMMEDIATE")
                    db.executemany("INSERT INTO t (body) VALUES (?)", [(body,)] * 100)
                    db.execute("COMMIT")
                took = time.perf_counter() - began
                self.results.add("W0", "100-row commits", "rows/s", batches * 100 / took)
                self.tick("W0", 1)
        finally:
            db.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    # -- W1: throughput --------------------------------------------------------------------

    def w1(self) -> None:
        self.add_agent(
            PIPELINE_AGENT, replicas=self.plan.replicas, concurrency=self.plan.concurrency
        )
        for _ in range(self.plan.repeat):
            for steps in (3, 1):
                self.pipeline_run(steps)
                self.tick("W1", 1)
            for clients in (1, self.plan.clients):
                self._creates(clients)
                self.tick("W1", 1)

    def pipeline_run(self, steps: int) -> None:
        api = self.api
        body = {
            "intent_type": PIPELINE_TYPE,
            "to_agent": PIPELINE_AGENT,
            "payload": {"steps": steps},
        }
        before = api.health()["store"]
        ids = [str(api.create_intent(body)["intent_id"]) for _ in range(self.plan.intents)]
        created, completed = completed_times(api, ids)
        after = api.health()["store"]
        took = max(completed) - min(created)
        label = f"{steps}-step"
        n = len(ids)
        self.results.add("W1", f"{label} intents", "intents/s", n / took)
        self.results.add("W1", f"{label} steps", "steps/s", n * steps / took)
        self.results.add(
            "W1",
            f"{label} latency",
            "ms",
            *((c - s) * 1000 for s, c in zip(created, completed, strict=True)),
            note="per intent: intent.created to intent.completed (event times)",
        )
        self.results.add(
            "W1",
            f"{label} syncs",
            "per intent",
            (after["syncs"] - before["syncs"]) / n,
            note="waits for the disk per intent (/health store.syncs): group commit at work",
        )

    def _creates(self, clients: int) -> None:
        """Create-only throughput (no agent serves the address), and syncs to disk per create."""
        before = self.api.health()["store"]["syncs"]
        rate, count = self._create_run(clients)
        syncs = (self.api.health()["store"]["syncs"] - before) / count
        who = f"{clients} client{'s' if clients > 1 else ''}"
        self.results.add("W1", f"creates ({who})", "intents/s", rate)
        self.results.add("W1", f"syncs ({who})", "per create", syncs)

    def _create_run(self, clients: int) -> tuple[float, int]:
        body = {"intent_type": PIPELINE_TYPE, "to_agent": NOBODY, "payload": {}}
        took, ids = submit([self.paths.socket] * clients, self.plan.intents, body)
        return len(ids) / took, len(ids)

    # -- W1-seq: one at a time ---------------------------------------------------------------

    def w1_seq(self) -> None:
        api = self.api
        if not self._has(PIPELINE_AGENT):
            self.add_agent(
                PIPELINE_AGENT, replicas=self.plan.replicas, concurrency=self.plan.concurrency
            )
        body = {"intent_type": PIPELINE_TYPE, "to_agent": PIPELINE_AGENT, "payload": {"steps": 1}}
        for _ in range(3):  # warm up
            list(api.follow(str(api.create_intent(body)["intent_id"]), since=2, timeout=30))
        for _ in range(self.plan.repeat):
            for _ in range(self.plan.seq):
                began = time.perf_counter()
                intent_id = str(api.create_intent(body)["intent_id"])
                last = _last_event(api, intent_id, 2)
                took = (time.perf_counter() - began) * 1000
                if last.get("status") != "COMPLETED":
                    raise AxmeError(f"axme bench: intent {intent_id} ended {last.get('status')}")
                self.results.add(
                    "W1-seq",
                    "latency",
                    "ms",
                    took,
                    note="one at a time: submit to COMPLETED seen on the event stream",
                )
            self._step_lag()
            self.tick("W1-seq", 1)

    def _step_lag(self) -> None:
        """How long a finished step's record takes to be in the store when plain code, not
        another step, follows it: the window in which a process's death re-runs that step."""
        api = self.api
        body = {"intent_type": LAG_TYPE, "to_agent": PIPELINE_AGENT, "payload": {}}
        for _ in range(self.plan.seq):
            intent_id = str(api.create_intent(body)["intent_id"])
            last = _last_event(api, intent_id, 2)
            if last.get("status") != "COMPLETED":
                raise AxmeError(f"axme bench: intent {intent_id} ended {last.get('status')}")
            (step,) = api.list_steps(intent_id)
            lag = (_at(step) - float(step["result"]["ended"])) * 1000
            self.results.add(
                "W1-seq",
                "step record lag",
                "ms",
                lag,
                note="a step's end to its record in the store, plain code after it",
            )

    def _has(self, address: str) -> bool:
        return any(a["address"] == address for a in self.api.list_agents())

    # -- W2: crash recovery ------------------------------------------------------------------

    def w2(self) -> None:
        api = self.api
        self.add_agent(CRASH_AGENT, replicas=1, concurrency=1)
        body = {"intent_type": CRASH_TYPE, "to_agent": CRASH_AGENT, "payload": {}}
        step1_reruns = 0
        for _ in range(self.plan.repeat):
            for _ in range(self.plan.kills):
                (pid,) = _wait("the crash agent to run", lambda: self.running_pids(CRASH_AGENT))
                intent_id = str(api.create_intent(body)["intent_id"])
                killed = 0.0
                events: list[dict[str, Any]] = []
                for event in api.follow(intent_id, timeout=60):
                    events.append(event)
                    details = event.get("details") or {}
                    if (
                        not killed
                        and event.get("event_type") == "intent.progress"
                        and details.get("message") == "before s2"
                    ):
                        _wait("step 2 to start", partial(self._ran, intent_id, "s2"), 10)
                        killed = time.time()
                        os.kill(pid, signal.SIGKILL)
                if events[-1].get("status") != "COMPLETED" or not killed:
                    raise AxmeError(f"axme bench: crash intent {intent_id} did not complete")
                redelivered = next(
                    e
                    for e in events
                    if e["event_type"] == "intent.delivered"
                    and int((e.get("details") or {}).get("delivery_attempt") or 0) >= 2
                )
                started = next(
                    e
                    for e in events[events.index(redelivered) :]
                    if e["event_type"] == "intent.in_progress"
                )
                self.results.add(
                    "W2",
                    "kill to redelivery",
                    "ms",
                    (_at(redelivered) - killed) * 1000,
                    note="SIGKILL to intent.delivered attempt 2",
                )
                self.results.add(
                    "W2",
                    "kill to pickup",
                    "ms",
                    (_at(started) - killed) * 1000,
                    note="SIGKILL to intent.in_progress after it",
                )
                self.results.add("W2", "kill to completed", "ms", (_at(events[-1]) - killed) * 1000)
                step1_reruns += len(self._ran(intent_id, "s1")) - 1
            self.tick("W2", 1)
        self.results.checks["W2 step 1 re-runs"] = step1_reruns
        if step1_reruns:
            raise AxmeError(f"axme bench: step 1 ran again after a crash ({step1_reruns} times)")

    def _ran(self, intent_id: str, step: str) -> list[int]:
        return ran(self.workdir, intent_id, step)

    # -- W5: hundreds of steps ---------------------------------------------------------------

    def w5(self) -> None:
        """A handler of many steps in a loop, SIGKILLed as its last step but one starts: the
        redelivery replays every recorded step and completes. Replay costs per recorded step
        at each size: flat when it is linear in the number of steps."""
        api = self.api
        self.add_agent(LONG_AGENT, replicas=1, concurrency=1)
        per_step: dict[int, list[float]] = {}
        for _ in range(self.plan.repeat):
            for steps in LONG_STEPS:
                payload = {"steps": steps, "kill_at": steps - 1}
                body = {"intent_type": LONG_TYPE, "to_agent": LONG_AGENT, "payload": payload}
                _wait("the long agent to run", lambda: self.running_pids(LONG_AGENT))
                intent_id = str(api.create_intent(body)["intent_id"])
                last = _last_event(api, intent_id, 2)
                if last.get("status") != "COMPLETED":
                    raise AxmeError(f"axme bench: intent {intent_id} ended {last.get('status')}")
                done = api.get_intent(intent_id)
                result = done["result"]
                if result["replayed"] != steps - 2 or done["delivery_attempt"] != 2:
                    raise AxmeError(
                        f"axme bench: {intent_id} replayed {result['replayed']} steps in "
                        f"{done['delivery_attempt'] - 1} redeliveries (expected {steps - 2} in 1)"
                    )
                cost = result["replay_s"] * 1e6 / result["replayed"]
                per_step.setdefault(steps, []).append(cost)
                self.results.add(
                    "W5",
                    f"replay per step @{steps}",
                    "us",
                    cost,
                    note=f"handler time per recorded step replayed ({steps - 2} of {steps})",
                )
                if steps == max(LONG_STEPS):
                    killed = self._killed(intent_id)
                    self.results.add(
                        "W5",
                        f"kill to completed @{steps}",
                        "ms",
                        (_at(last) - killed) * 1000,
                        note=f"SIGKILL at step {steps - 1} to COMPLETED, {steps - 2} replayed",
                    )
            self.tick("W5", 1)
        small, large = (statistics.median(per_step[n]) for n in LONG_STEPS)
        self.results.checks["W5 replay per step, largest/smallest"] = round(large / small, 2)

    def _killed(self, intent_id: str) -> float:
        for line in (self.workdir / RUNS_FILE).read_text().splitlines():
            run = json.loads(line)
            if run.get("intent_id") == intent_id and "killed" in run:
                return float(run["killed"])
        raise AxmeError(f"axme bench: {intent_id} was not killed")

    # -- W3: a person in the loop ------------------------------------------------------------

    def w3(self) -> None:
        api = self.api
        self.add_agent(APPROVAL_AGENT, replicas=1, concurrency=8)
        body = {"intent_type": APPROVAL_TYPE, "to_agent": APPROVAL_AGENT, "payload": {}}
        for _ in range(self.plan.repeat):
            for _ in range(self.plan.decisions):
                intent_id = str(api.create_intent(body)["intent_id"])
                (task,) = _wait(
                    "the approval task",
                    partial(api.list_tasks, intent_id=intent_id),
                    30,
                )
                since = max(int(e["seq"]) for e in api.list_events(intent_id))
                with _Watcher(self.paths.socket, intent_id, since) as watcher:
                    began = time.perf_counter()
                    api.decide_task(str(task["task_id"]), "approved", actor="axme bench")
                    seen, last = watcher.final()
                if last.get("status") != "COMPLETED":
                    raise AxmeError(f"axme bench: intent {intent_id} ended {last.get('status')}")
                self.results.add(
                    "W3",
                    "decision to done",
                    "ms",
                    (seen - began) * 1000,
                    note="POST decision to COMPLETED seen by a client following the intent",
                )
            self.tick("W3", 1)

    # -- CLI -----------------------------------------------------------------------------

    def cli(self) -> None:
        """Each command's wall time as a subprocess, as a script or a person runs it."""
        exe = Path(sys.executable).with_name("axme")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "axme_cli"]
        # Bytecode as an installed axme has it (pip compiles it): with PYTHONDONTWRITEBYTECODE
        # set, every run of a checkout would compile its modules again (about 30 ms).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AXME_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env["AXME_HOME"] = str(self.home)
        done = self._decided_intent()
        self._decided_intent(decide=False)  # one in the inbox
        argvs = {
            "axme --version": ["--version"],
            "axme send": ["send", PIPELINE_TYPE, "--to", NOBODY, "--payload", "{}"],
            "axme list": ["list"],
            "axme show": ["show", done],
            "axme inbox": ["inbox"],
            "axme wait (done)": ["wait", done],
            "axme agents list": ["agents", "list"],
            "axme --help": ["--help"],
            "axme daemon status": ["daemon", "status"],
            "axme keys list": ["keys", "list"],
        }
        for argv in argvs.values():  # once untimed: bytecode written, files in the page cache
            _run_timed([*command, *argv], env, self.home)
        for _ in range(self.plan.repeat):
            for name, argv in argvs.items():
                for _ in range(self.plan.cli_runs):
                    began = time.perf_counter()
                    _run_timed([*command, *argv], env, self.home)  # cwd: no project axme.toml
                    took = (time.perf_counter() - began) * 1000
                    self.results.add("CLI", name, "ms", took, note="wall time of a subprocess")
            self.tick("CLI", 1)

    def _decided_intent(self, *, decide: bool = True) -> str:
        """An approval's id: COMPLETED (approved), or waiting for a person."""
        task = {"title": "axme bench", "task_type": "approval"}
        body = {"intent_type": APPROVAL_TYPE, "to_agent": NOBODY, "payload": {}, "human_task": task}
        intent_id: str = self.api.create_intent(body)["intent_id"]
        if decide:
            (pending,) = _wait(
                "the approval's task", lambda: self.api.list_tasks(intent_id=intent_id)
            )
            self.api.decide_task(pending["task_id"], "approved", actor="axme bench")
            _wait(
                "the approved intent to complete",
                lambda: self.api.get_intent(intent_id)["status"] == "COMPLETED",
            )
        return intent_id

    # -- PG: the same on PostgreSQL ----------------------------------------------------------

    def pg(self) -> None:
        from axme_cli.bench import postgres

        postgres.run(self)

    # -- W4: growth ------------------------------------------------------------------------

    def w4(self) -> None:
        """Fill a second home's store to each size, start its daemon, time what users do."""
        from axme_cli import daemonctl
        from axme_cli.bench import growth

        assert self.plan.scale is not None
        paths = HomePaths(self.home / "w4")
        filler = growth.Filler(paths, PIPELINE_TYPE)
        medians: dict[str, list[float]] = {}
        try:
            for size in growth.sizes(self.plan.scale):
                filler.grow_to(size)
                began = time.perf_counter()
                pid = daemonctl.start(paths).pid
                started = (time.perf_counter() - began) * 1000
                with DaemonClient(paths.socket, timeout=60.0) as api:
                    figures = self._w4_figures(api, filler)
                figures["daemon start"] = ("ms", [started])
                figures["daemon RSS"] = ("MB", [growth.rss_mb(pid)])
                stored = growth.store_bytes(paths.database)
                figures["store size"] = ("bytes/intent", [stored / filler.count])
                daemonctl.stop(paths)
                for name, (unit, values) in figures.items():
                    self.results.add("W4", f"{name} @{growth.label(size)}", unit, *values)
                    medians.setdefault(name, []).append(statistics.median(values))
                self.tick("W4", 1)
        finally:
            daemonctl.stop(paths)
        self.results.checks["W4 largest/smallest median"] = {
            name: round(max(m) / min(m), 2) for name, m in medians.items() if min(m) > 0
        }

    def _w4_figures(self, api: DaemonClient, filler: Any) -> dict[str, tuple[str, list[float]]]:
        import random

        from axme_cli.bench.growth import SAMPLES, timed

        body = {"intent_type": PIPELINE_TYPE, "to_agent": NOBODY, "payload": {}}
        picks = iter(random.choices(filler.sample_ids, k=SAMPLES + 1))

        def show() -> None:  # what `axme show` asks for
            intent_id = next(picks)
            api.get_intent(intent_id)
            api.list_events(intent_id)

        return {
            "list first page": ("ms", timed(SAMPLES, lambda: api.list_intents(limit=50))),
            # 100 tasks: as many as the smallest store holds, so every size reads one page.
            "inbox": ("ms", timed(SAMPLES, lambda: api.list_tasks(limit=100))),
            "show": ("ms", timed(SAMPLES, show)),
            "create": ("ms", timed(SAMPLES, lambda: api.create_intent(body))),
        }

    # -- TUI: keys answered with a big store -----------------------------------------------

    def tui(self) -> None:
        """`axme tui` headless against this daemon, filled with a backlog and pending tasks."""
        from axme_cli.bench import tui

        plan = self.plan
        tui.fill(self.paths.socket, plan.tui_intents, plan.tui_tasks, self.tick)
        note = f"{plan.tui_intents} intents, {plan.tui_tasks} pending tasks in the store"
        for what, samples in tui.measure(self.paths.socket, plan.tui_rounds).items():
            self.results.add("TUI", what, "ms", *samples, note=note)

    # -- all of it -------------------------------------------------------------------------

    def units(self) -> dict[str, int]:
        """Progress units per selected workload."""
        per_rep = {"W0": 1, "W1": 4, "W1-seq": 1, "W2": 1, "W3": 1, "W5": 1, "CLI": 1, "PG": 2}
        units = {w: per_rep[w] * self.plan.repeat for w in per_rep if w in self.plan.only}
        if "PG" in units:
            units["PG"] += 1  # W2 with a daemon killed
        if "W4" in self.plan.only and self.plan.scale:
            from axme_cli.bench.growth import sizes

            units["W4"] = len(sizes(self.plan.scale))
        if "TUI" in self.plan.only:
            units["TUI"] = self.plan.tui_intents
        return units

    def run(self) -> None:
        steps: dict[str, Callable[[], None]] = {
            "W0": self.w0,
            "W1": self.w1,
            "W1-seq": self.w1_seq,
            "W2": self.w2,
            "W3": self.w3,
            "W5": self.w5,
            "CLI": self.cli,
            "PG": self.pg,
            "W4": self.w4,
            "TUI": self.tui,
        }
        for workload in WORKLOADS:
            if workload in self.plan.only:
                self.tick(workload, 0)
                steps[workload]()


def _run_timed(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    """Run a command to its end. Not `subprocess.run(timeout=...)`: its wait polls with sleeps
    of up to 50 ms, which rounded every CLI timing up to the next step of that schedule; a
    blocking wait returns when the process does, and a timer kills a hung one."""
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        code = proc.wait()
    finally:
        watchdog.cancel()
    if code != 0:
        raise subprocess.CalledProcessError(code, argv)


_FINAL = frozenset({"COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"})
