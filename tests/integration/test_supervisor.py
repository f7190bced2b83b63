"""The supervisor with real processes: states, classified exits, restarts, logs, secrets, scaling.

Every wait is on a condition with a deadline (`eventually`), never a bare sleep.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest

from axme_daemon.supervisor import (
    TRANSITIONS,
    AgentSpec,
    ExitInfo,
    IllegalTransition,
    ProcState,
    Supervisor,
    WorkerInfo,
    check_transition,
)

ADDR = "agent://myorg/test/worker"
SLEEPER = "import time\nwhile True: time.sleep(1)"
SECRET = "s3cr3t-value-9f2c"

T = TypeVar("T")


async def eventually(
    cond: Callable[[], T | Literal[False] | None], what: str, timeout: float = 5.0
) -> T:
    """Poll `cond` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (PID 1 in a container may not reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    if not Path("/proc/self/stat").exists():
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Recorder:
    """The daemon's side of the callbacks, recording everything in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, WorkerInfo, ExitInfo | None]] = []

    def worker_env(self, spec: AgentSpec, worker: WorkerInfo) -> dict[str, str]:
        return {"AXME_WORKER_ID": worker.worker_id, "AXME_API_KEY": worker.api_key}

    def on_started(self, worker: WorkerInfo) -> None:
        self.events.append(("started", worker, None))

    async def on_exited(self, worker: WorkerInfo, exit: ExitInfo) -> None:
        await asyncio.sleep(0.02)  # a slow release must still finish before the restart
        self.events.append(("exited", worker, exit))

    def exits(self) -> list[tuple[WorkerInfo, ExitInfo]]:
        return [(w, e) for kind, w, e in self.events if kind == "exited" and e is not None]

    def started(self) -> list[WorkerInfo]:
        return [w for kind, w, _ in self.events if kind == "started"]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
async def make_sup(axme_home: Path, rec: Recorder) -> AsyncIterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def make(**kw: Any) -> Supervisor:
        kw = {"backoff_base": 0.01, "jitter": 0.0, **kw}
        sup = Supervisor(
            axme_home / "logs",
            worker_env=rec.worker_env,
            on_started=rec.on_started,
            on_exited=rec.on_exited,
            **kw,
        )
        made.append(sup)
        return sup

    yield make
    for sup in made:
        await sup.close()


@pytest.fixture
def sup(make_sup: Callable[..., Supervisor]) -> Supervisor:
    return make_sup()


@pytest.fixture
def spec(axme_home: Path) -> Callable[..., AgentSpec]:
    def make(code: str = SLEEPER, **kw: Any) -> AgentSpec:
        kw = {"address": ADDR, "start_seconds": 0.2, "stop_grace_seconds": 2.0, **kw}
        return AgentSpec(command=(sys.executable, "-c", code), cwd=str(axme_home), **kw)

    return make


def agent(sup: Supervisor, address: str = ADDR) -> dict[str, Any]:
    return next(a for a in sup.status() if a["address"] == address)


def replica(sup: Supervisor, n: int = 1, address: str = ADDR) -> dict[str, Any]:
    r: dict[str, Any] = agent(sup, address)["replicas"][n - 1]
    return r


def running_pid(sup: Supervisor, n: int = 1, address: str = ADDR) -> int | None:
    r = replica(sup, n, address)
    return r["pid"] if r["state"] == "RUNNING" else None


async def test_running_agent_logs_its_output_and_never_its_secrets(
    sup: Supervisor,
    rec: Recorder,
    spec: Callable[..., AgentSpec],
    axme_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AXME_LEAK", "the daemon's own setting")
    seen = axme_home / "seen.json"
    code = textwrap.dedent(f"""
        import json, os, sys, time
        keys = ("SECRET_TOKEN", "AXME_WORKER_ID", "AXME_API_KEY", "AXME_LEAK")
        with open({str(seen)!r} + ".tmp", "w") as f:
            json.dump({{k: os.environ[k] for k in keys if k in os.environ}}, f)
        os.replace({str(seen)!r} + ".tmp", {str(seen)!r})
        print("hello from agent", flush=True)
        print("and from stderr", file=sys.stderr, flush=True)
        while True:
            time.sleep(1)
    """)
    s = spec(code, env={"SECRET_TOKEN": SECRET})
    await sup.apply([s])

    pid = await eventually(lambda: running_pid(sup), "RUNNING")
    assert os.getpgid(pid) == pid  # its own process group
    (worker,) = rec.started()
    assert worker.pid == pid and replica(sup)["worker_id"] == worker.worker_id

    got = json.loads(await eventually(lambda: seen.exists() and seen.read_text(), "env file"))
    assert got == {
        "SECRET_TOKEN": SECRET,
        "AXME_WORKER_ID": worker.worker_id,
        "AXME_API_KEY": worker.api_key,
    }  # and no AXME_* leaked from the daemon's environment

    log_path = sup.log_path(ADDR)
    assert log_path == axme_home / "logs" / "agents" / "myorg.test.worker.log"
    text = await eventually(
        lambda: "and from stderr" in log_path.read_text() and log_path.read_text(), "output"
    )
    for line in ("hello from agent", "and from stderr"):
        assert re.search(rf"^\S+Z \[r1 pid {pid}\] {line}$", text, re.M), text
    assert f"started pid {pid}" in text

    status = agent(sup)
    assert status["state"] == "RUNNING"
    assert status["env_keys"] == ["SECRET_TOKEN"]
    assert status["command"] == list(s.command) and status["cwd"] == str(axme_home)
    assert status["log_path"] == str(log_path)
    assert replica(sup)["uptime_seconds"] >= 0.2
    for shown in (text, json.dumps(sup.status()), repr(s), repr(worker)):
        assert SECRET not in shown and worker.api_key not in shown


async def test_a_crash_is_released_then_restarted_at_once(
    make_sup: Callable[..., Supervisor], rec: Recorder, spec: Callable[..., AgentSpec]
) -> None:
    sup = make_sup(backoff_base=10.0)  # a crash after RUNNING must not wait for any backoff
    await sup.apply([spec()])
    first = await eventually(lambda: running_pid(sup), "RUNNING")

    os.kill(first, signal.SIGKILL)
    t0 = time.monotonic()
    second = await eventually(
        lambda: running_pid(sup) not in (None, first) and running_pid(sup), "restart"
    )
    assert time.monotonic() - t0 < 3.0

    ((gone, ex),) = rec.exits()
    assert gone.pid == first
    assert (ex.signal, ex.returncode, ex.requested, ex.fast) == (signal.SIGKILL, None, False, False)
    assert ex.describe().startswith("killed by SIGKILL after ")
    order = [(kind, w.pid) for kind, w, _ in rec.events]
    assert order == [("started", first), ("exited", first), ("started", second)]
    r = replica(sup)
    assert r["restarts"] == 1
    assert r["last_exit"]["description"].startswith("killed by SIGKILL")
    assert r["last_exit"]["at"].endswith("Z")
    assert rec.started()[0].worker_id != rec.started()[1].worker_id
    assert rec.started()[0].api_key != rec.started()[1].api_key
    assert "; restarting" in sup.log_path(ADDR).read_text()


async def test_a_crash_is_seen_even_when_a_grandchild_holds_its_output(
    sup: Supervisor, rec: Recorder, spec: Callable[..., AgentSpec], axme_home: Path
) -> None:
    grandchild = axme_home / "grandchild"
    code = textwrap.dedent(f"""
        import pathlib, subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pathlib.Path({str(grandchild)!r}).write_text(str(p.pid))
        while True:
            time.sleep(1)
    """)
    await sup.apply([spec(code)])
    first = await eventually(lambda: grandchild.exists() and running_pid(sup), "RUNNING")
    straggler = int(grandchild.read_text())

    os.kill(first, signal.SIGKILL)  # the grandchild keeps the agent's stdout open
    await eventually(lambda: rec.exits(), "the crash to be seen")
    assert not alive(straggler)  # it went with its process group


async def test_fast_failures_end_in_fatal_and_restart_gets_out(
    sup: Supervisor, rec: Recorder, spec: Callable[..., AgentSpec], axme_home: Path
) -> None:
    fixed = axme_home / "fixed"
    code = f"import os, sys, time\nif not os.path.exists({str(fixed)!r}): sys.exit(3)\n{SLEEPER}"
    await sup.apply([spec(code, start_retries=3)])

    await eventually(lambda: agent(sup)["state"] == "FATAL", "FATAL")
    r = replica(sup)
    assert r["restarts"] == 2 and r["pid"] is None
    assert re.fullmatch(r"exited with code 3 after \d+\.\ds", r["last_exit"]["description"])
    await eventually(lambda: len(rec.exits()) == 3, "three releases")
    assert all(e.fast and e.returncode == 3 and not e.requested for _, e in rec.exits())
    assert len(rec.started()) == 3
    assert f"FATAL after 3 fast failures; fix it and run: axme agents restart {ADDR}" in (
        sup.log_path(ADDR).read_text()
    )

    fixed.touch()
    await sup.restart(ADDR)
    await eventually(lambda: running_pid(sup), "RUNNING after restart")
    assert agent(sup)["state"] == "RUNNING"


async def test_a_command_that_cannot_start_is_fatal_with_a_clear_message(
    sup: Supervisor, rec: Recorder, axme_home: Path
) -> None:
    s = AgentSpec(ADDR, ("axme-no-such-command",), str(axme_home), start_retries=2)
    await sup.apply([s])

    await eventually(lambda: agent(sup)["state"] == "FATAL", "FATAL")
    message = "cannot start: No such file or directory: 'axme-no-such-command'"
    assert replica(sup)["last_exit"]["description"] == message
    assert message in sup.log_path(ADDR).read_text()
    assert rec.events == []  # no process, so no worker to release


async def test_stop_sends_sigterm_and_stays_stopped(
    sup: Supervisor, rec: Recorder, spec: Callable[..., AgentSpec]
) -> None:
    s = spec()
    await sup.apply([s])
    pid = await eventually(lambda: running_pid(sup), "RUNNING")

    await sup.stop(ADDR)
    assert not alive(pid)
    ((_, ex),) = rec.exits()
    assert (ex.signal, ex.requested) == (signal.SIGTERM, True)
    assert agent(sup)["state"] == "STOPPED" and replica(sup)["pid"] is None

    await sup.apply([s])  # the same spec again: a stopped agent stays stopped
    assert agent(sup)["state"] == "STOPPED" and len(rec.started()) == 1
    await sup.restart(ADDR)
    await eventually(lambda: running_pid(sup), "RUNNING after restart")


async def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace(
    sup: Supervisor, rec: Recorder, spec: Callable[..., AgentSpec], axme_home: Path
) -> None:
    ready = axme_home / "ready"
    code = "import signal, pathlib\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += f"pathlib.Path({str(ready)!r}).touch()\n{SLEEPER}"
    await sup.apply([spec(code, stop_grace_seconds=0.3)])
    pid = await eventually(lambda: ready.exists() and running_pid(sup), "SIGTERM ignored")

    t0 = time.monotonic()
    await sup.stop(ADDR)
    assert time.monotonic() - t0 >= 0.3
    assert not alive(pid)
    ((_, ex),) = rec.exits()
    assert (ex.signal, ex.requested) == (signal.SIGKILL, True)
    assert "after SIGTERM: sending SIGKILL" in sup.log_path(ADDR).read_text()


async def test_apply_scales_restarts_on_change_and_removes(
    sup: Supervisor, spec: Callable[..., AgentSpec]
) -> None:
    await sup.apply([spec(replicas=2)])
    one = await eventually(lambda: running_pid(sup, 1), "replica 1")
    two = await eventually(lambda: running_pid(sup, 2), "replica 2")
    assert one != two and [r["replica"] for r in agent(sup)["replicas"]] == [1, 2]

    await sup.apply([spec(replicas=2)])  # idempotent
    assert (running_pid(sup, 1), running_pid(sup, 2)) == (one, two)

    await sup.apply([spec(replicas=1)])  # scale down: replica 1 is not touched
    assert len(agent(sup)["replicas"]) == 1 and running_pid(sup, 1) == one
    assert not alive(two)

    await sup.apply([spec(SLEEPER + "  # v2", replicas=1)])  # a changed command restarts
    assert not alive(one)
    new = await eventually(lambda: running_pid(sup), "restart with the new command")
    assert agent(sup)["command"][-1].endswith("# v2") and new != one

    await sup.apply([])
    assert sup.status() == [] and not alive(new)


async def test_close_leaves_no_process_alive(
    sup: Supervisor, spec: Callable[..., AgentSpec]
) -> None:
    other = "agent://myorg/test/other"
    await sup.apply([spec(replicas=2), spec(address=other)])
    pids = []
    for n, address in ((1, ADDR), (2, ADDR), (1, other)):
        ready = functools.partial(running_pid, sup, n, address)
        pids.append(await eventually(ready, f"{address} r{n}"))
    await sup.close()
    assert [alive(p) for p in pids] == [False, False, False]
    assert {a["state"] for a in sup.status()} == {"STOPPED"}
    with pytest.raises(RuntimeError):
        await sup.apply([])


def test_only_the_legal_transitions_are_allowed() -> None:
    assert set(TRANSITIONS) == set(ProcState)
    for old in ProcState:
        for new in ProcState:
            if new in TRANSITIONS[old]:
                check_transition(old, new)
            else:
                with pytest.raises(IllegalTransition):
                    check_transition(old, new)
    with pytest.raises(IllegalTransition, match="STOPPED -> RUNNING"):
        check_transition(ProcState.STOPPED, ProcState.RUNNING)


def test_agent_spec_repr_hides_env_values(axme_home: Path) -> None:
    s = AgentSpec(ADDR, ("true",), str(axme_home), env={"TOKEN": SECRET})
    assert "TOKEN" in repr(s) and SECRET not in repr(s)
    with pytest.raises(ValueError):
        AgentSpec("myorg/test/worker", ("true",), str(axme_home))


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
async def test_agents_die_with_a_sigkilled_daemon(axme_home: Path) -> None:
    script = textwrap.dedent("""
        import asyncio, sys
        from pathlib import Path
        from axme_daemon.supervisor import AgentSpec, Supervisor

        async def main() -> None:
            async def on_exited(worker, exit): pass
            sup = Supervisor(Path(sys.argv[1]), worker_env=lambda spec, w: {},
                             on_started=lambda w: print(w.pid, flush=True), on_exited=on_exited)
            cmd = (sys.executable, "-c", "import time; time.sleep(60)")
            await sup.apply([AgentSpec("agent://t/t/t", cmd, sys.argv[1])])
            await asyncio.sleep(60)

        asyncio.run(main())
    """)
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(axme_home), stdout=asyncio.subprocess.PIPE
    )
    assert daemon.stdout is not None
    try:
        child = int(await asyncio.wait_for(daemon.stdout.readline(), 10))
        assert alive(child)
    finally:
        daemon.kill()
        await daemon.wait()
    try:
        await eventually(lambda: not alive(child), "the agent to die with its daemon")
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
