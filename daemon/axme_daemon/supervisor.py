"""The agent supervisor: the daemon is the parent of every agent process.

Each replica of an agent is one asyncio task running a small state machine, after Supervisor's
`process.py`: explicit states, every move checked against one table, every exit classified
(requested, too fast to count as started, or a crash after a good start). A process has
started once it stayed up `start_seconds` or took a delivery: its exit while handling work is
that work's failure (the intent's attempts count it), so a poison intent cannot make its agent
FATAL. The parent sees an exit the moment it happens, so a crash costs milliseconds; a crash
loop ends in a visible FATAL instead of spinning forever.

    STOPPED ─▶ STARTING ─(up start_seconds, or took work)─▶ RUNNING ─(exits)─▶ EXITED ─▶ STARTING
                  ├─(fast exit)─▶ BACKOFF ─(capped, jittered delay)─▶ STARTING
                  └─(start_retries fast exits in a row)─▶ FATAL ─(restart / changed spec)─▶ ...
    STARTING, RUNNING, EXITED, BACKOFF, FATAL ─(stop requested)─▶ STOPPED

Secrets: `AgentSpec.env` values and worker API keys go into the child's environment and
nowhere else: not into logs, status or reprs.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import logging
import logging.handlers
import os
import random
import re
import secrets
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from subprocess import DEVNULL, STDOUT
from typing import Any

from axme_cli.errors import NotFound
from axme_daemon.intents import now_iso

log = logging.getLogger(__name__)

_LOG_BYTES = 10 * 1024 * 1024
_LOG_BACKUPS = 3
_READ_CHUNK = 64 * 1024
#: Longer output without a newline is logged in pieces rather than buffered without bound.
_MAX_LINE = 64 * 1024
#: How long an exited process's last output may take to reach its log before we move on.
_DRAIN_SECONDS = 0.5
#: Lines of a dead process's output kept to say why it died (and how much of each).
_OUTPUT_LINES = 10
_OUTPUT_LINE_CHARS = 500

_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)
# Loaded at import, not in the child: between fork and exec the child should do almost nothing.
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class ProcState(StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    EXITED = "EXITED"
    FATAL = "FATAL"


_S = ProcState
#: The only legal moves; anything else is a supervisor bug and raises `IllegalTransition`.
TRANSITIONS: Mapping[ProcState, frozenset[ProcState]] = {
    _S.STOPPED: frozenset({_S.STARTING}),
    _S.STARTING: frozenset({_S.RUNNING, _S.BACKOFF, _S.FATAL, _S.STOPPED}),
    _S.RUNNING: frozenset({_S.EXITED, _S.STOPPED}),
    _S.EXITED: frozenset({_S.STARTING, _S.STOPPED}),
    _S.BACKOFF: frozenset({_S.STARTING, _S.STOPPED}),
    _S.FATAL: frozenset({_S.STOPPED}),
}
#: An agent's state in `status()` is its most telling replica's: the first found in this order.
_SEVERITY = (_S.FATAL, _S.BACKOFF, _S.EXITED, _S.STARTING, _S.RUNNING, _S.STOPPED)


class IllegalTransition(RuntimeError):
    """A replica was asked to make a move the state machine does not have."""


def check_transition(old: ProcState, new: ProcState) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"illegal transition {old} -> {new}")


@dataclass(frozen=True)
class AgentSpec:
    """How to run one agent; `apply` restarts an agent when its spec stops comparing equal."""

    address: str
    command: tuple[str, ...]
    cwd: str
    env: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    concurrency: int = 1
    max_delivery_attempts: int = 3
    start_seconds: float = 1.0
    start_retries: int = 3
    stop_grace_seconds: float = 5.0
    #: `command[0]` as the `axme` that sent the spec resolved it (its PATH, its Python), so
    #: the daemon's own PATH, fixed when it was started, does not decide what runs.
    executable: str | None = None

    def __post_init__(self) -> None:
        # Copies, so a caller mutating its list or dict cannot change a running spec.
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "env", dict(self.env))
        if not self.address.startswith("agent://") or not self.command:
            raise ValueError(f"an agent needs an agent:// address and a command: {self!r}")
        counts = (self.concurrency, self.max_delivery_attempts, self.start_retries)
        if (
            self.replicas < 0
            or min(counts) < 1
            or min(self.start_seconds, self.stop_grace_seconds) < 0
        ):
            raise ValueError(f"agent {self.address}: a count or duration is out of range")

    def __repr__(self) -> str:
        # env values may be secrets: show the keys only.
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["env"] = {key: "***" for key in self.env}
        return f"AgentSpec({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


@dataclass(frozen=True)
class WorkerInfo:
    """One process of an agent. `pid` is 0 while `worker_env` is computed, before the spawn."""

    worker_id: str
    address: str
    replica: int
    pid: int
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class ExitInfo:
    """Why a process ended, classified the way the state machine needs it."""

    returncode: int | None
    signal: int | None
    requested: bool
    fast: bool
    uptime: float
    #: Set when the process never started (bad command or cwd); `describe()` is then this text.
    error: str | None = None
    #: Its last lines of output (stdout and stderr), for whoever must say why it died.
    output: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name} after {self.uptime:.1f}s"
        return f"exited with code {self.returncode} after {self.uptime:.1f}s"


def agent_slug(address: str) -> str:
    """A file name for an agent: `agent://a/b/c` -> `a.b.c`, nothing that can leave the dir."""
    slug = address.removeprefix("agent://").replace("/", ".")
    return re.sub(r"[^A-Za-z0-9._-]", "_", slug) or "_"


class _AgentLog:
    """An agent's own rotating file: its processes' output and the supervisor's notes on them.

    A private logger (not registered with `logging`, never propagated), so agent output cannot
    flood the daemon log and a removed agent leaves no logger behind.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=_LOG_BYTES, backupCount=_LOG_BACKUPS, encoding="utf-8", delay=True
        )
        self._logger = logging.Logger(f"{__name__}.agent", logging.INFO)
        self._logger.propagate = False
        self._logger.addHandler(self._handler)

    def write(self, tag: str, text: str) -> None:
        self._logger.info("%s [%s] %s", now_iso(), tag, text)

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()


class _Agent:
    def __init__(
        self, spec: AgentSpec, log_path: Path, on_change: Callable[[], None] | None = None
    ) -> None:
        self.spec = spec
        #: Called after any replica changes state, so watchers see agents live.
        self.on_change = on_change
        self.log_path = log_path
        self.log = _AgentLog(log_path)
        self.replicas = [_Replica(self, n) for n in range(1, spec.replicas + 1)]
        #: Stopped on request: `apply` with the same spec leaves it stopped.
        self.stopped = False


class _Replica:
    """The state of one replica slot; its task (`Supervisor._run`) is the only writer."""

    def __init__(self, agent: _Agent, number: int) -> None:
        self.agent = agent
        self.number = number
        self.state = ProcState.STOPPED
        self.worker: WorkerInfo | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.fast_failures = 0
        self.last_exit: ExitInfo | None = None
        self.last_exit_at: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.stop_requested = asyncio.Event()
        #: Set when its process takes its first delivery: a process serving work has started.
        self.serving = asyncio.Event()

    def _transition(self, new: ProcState) -> None:
        check_transition(self.state, new)
        log.debug("%s r%d: %s -> %s", self.agent.spec.address, self.number, self.state, new)
        self.state = new
        if self.agent.on_change is not None:
            self.agent.on_change()

    def status(self, now: float) -> dict[str, Any]:
        live = self.worker if self.state in (_S.STARTING, _S.RUNNING) else None
        last = self.last_exit
        return {
            "replica": self.number,
            "state": self.state.value,
            "pid": live.pid if live else None,
            "worker_id": live.worker_id if live else None,
            "restarts": self.restarts,
            "uptime_seconds": round(now - self.started_at, 3) if live else None,
            "last_exit": None
            if last is None
            else {
                "description": last.describe(),
                "at": self.last_exit_at,
                "returncode": last.returncode,
                "signal": last.signal,
                "requested": last.requested,
            },
        }


class Supervisor:
    """Runs, watches and restarts agent processes; see the module docstring for the states."""

    def __init__(
        self,
        log_dir: Path,
        *,
        worker_env: Callable[[AgentSpec, WorkerInfo], dict[str, str]],
        on_started: Callable[[WorkerInfo], None],
        on_exited: Callable[[WorkerInfo, ExitInfo], Awaitable[None]],
        on_change: Callable[[], None] | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        jitter: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._log_dir = Path(log_dir)
        self._worker_env = worker_env
        self._on_started = on_started
        self._on_exited = on_exited
        self._on_change = on_change
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._jitter = jitter
        self._clock = clock
        self._rng = rng or random.Random()
        self._agents: dict[str, _Agent] = {}
        # One management operation at a time: apply, restart, stop and close never interleave.
        self._lock = asyncio.Lock()
        self._closed = False

    def serving(self, worker_id: str) -> None:
        """The process of `worker_id` took a delivery: it has started, whatever its uptime.
        So its exit while handling that work is the work's failure (the intent's attempts
        count it), not a failed start: a poison intent cannot make its agent FATAL."""
        for agent in self._agents.values():
            for r in agent.replicas:
                if r.worker is not None and r.worker.worker_id == worker_id:
                    r.serving.set()
                    return

    def log_path(self, address: str) -> Path:
        return self._log_dir / "agents" / f"{agent_slug(address)}.log"

    def status(self) -> list[dict[str, Any]]:
        now = self._clock()
        out = []
        for agent in self._agents.values():
            spec = agent.spec
            states = {r.state for r in agent.replicas}
            out.append(
                {
                    "address": spec.address,
                    "state": next((s for s in _SEVERITY if s in states), _S.STOPPED).value,
                    "replicas": [r.status(now) for r in agent.replicas],
                    "command": list(spec.command),
                    "executable": spec.executable,  # what command[0] runs, when resolved
                    "cwd": spec.cwd,
                    "env_keys": sorted(spec.env),
                    "concurrency": spec.concurrency,
                    "max_delivery_attempts": spec.max_delivery_attempts,
                    "log_path": str(agent.log_path),
                }
            )
        return out

    async def apply(self, specs: Sequence[AgentSpec]) -> None:
        """Make the running agents match `specs`. Unchanged agents are not touched (a stopped
        or FATAL one stays so); a change in `replicas` alone scales; any other change restarts."""
        wanted: dict[str, AgentSpec] = {}
        for spec in specs:
            if spec.address in wanted:
                raise ValueError(f"agent {spec.address} is declared twice")
            wanted[spec.address] = spec
        async with self._lock:
            self._check_open()
            jobs = [self._remove(a) for a in self._agents.values() if a.spec.address not in wanted]
            for spec in wanted.values():
                agent = self._agents.get(spec.address)
                if agent is None:
                    self._add(spec)
                elif agent.spec == spec:
                    continue
                elif not agent.stopped and agent.spec == dataclasses.replace(
                    spec, replicas=agent.spec.replicas
                ):
                    jobs.append(self._scale(agent, spec))
                else:
                    jobs.append(self._replace(agent, spec))
            await _gather(jobs)

    async def restart(self, address: str) -> None:
        """Stop then start every replica; the way out of FATAL (the retry count starts over)."""
        async with self._lock:
            self._check_open()
            agent = self._get(address)
            await self._stop_agent(agent)
            agent.stopped = False
            self._note(agent, None, "restart requested")
            for r in agent.replicas:
                self._start(r)

    async def stop(self, address: str) -> None:
        async with self._lock:
            self._check_open()
            agent = self._get(address)
            agent.stopped = True
            await self._stop_agent(agent)

    async def close(self) -> None:
        """Stop every agent (SIGTERM, SIGKILL after its grace) and wait until all are reaped."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            agents = list(self._agents.values())
            await _gather([self._stop_agent(a) for a in agents])
            for agent in agents:
                agent.log.close()

    # -- management (callers hold the lock) --------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the supervisor is closed")

    def _get(self, address: str) -> _Agent:
        agent = self._agents.get(address)
        if agent is None:
            raise NotFound(f"no supervised agent {address}", details={"address": address})
        return agent

    def _add(self, spec: AgentSpec) -> None:
        agent = _Agent(spec, self.log_path(spec.address), self._on_change)
        self._agents[spec.address] = agent
        self._note(agent, None, f"added: {len(agent.replicas)} replica(s)")
        for r in agent.replicas:
            self._start(r)

    async def _remove(self, agent: _Agent) -> None:
        await self._stop_agent(agent)
        self._note(agent, None, "removed")
        agent.log.close()
        del self._agents[agent.spec.address]

    async def _scale(self, agent: _Agent, spec: AgentSpec) -> None:
        extra = agent.replicas[spec.replicas :]
        del agent.replicas[spec.replicas :]
        agent.spec = spec
        self._note(agent, None, f"scaled to {spec.replicas} replica(s)")
        for n in range(len(agent.replicas) + 1, spec.replicas + 1):
            agent.replicas.append(_Replica(agent, n))
            self._start(agent.replicas[-1])
        await _gather([self._stop_replica(r) for r in extra])

    async def _replace(self, agent: _Agent, spec: AgentSpec) -> None:
        await self._stop_agent(agent)
        agent.spec = spec
        agent.replicas = [_Replica(agent, n) for n in range(1, spec.replicas + 1)]
        agent.stopped = False
        self._note(agent, None, "spec changed: restarting")
        for r in agent.replicas:
            self._start(r)

    async def _stop_agent(self, agent: _Agent) -> None:
        await _gather([self._stop_replica(r) for r in agent.replicas])

    def _start(self, r: _Replica) -> None:
        r.stop_requested = asyncio.Event()
        r.fast_failures = 0
        name = f"axme-supervise {r.agent.spec.address} r{r.number}"
        r.task = asyncio.create_task(self._run(r), name=name)

    async def _stop_replica(self, r: _Replica) -> None:
        r.stop_requested.set()
        if r.task is not None:
            await asyncio.wait([r.task])  # the task does the SIGTERM/SIGKILL and the reaping
            r.task = None
        if r.state is not _S.STOPPED:  # FATAL (task already over), or the task died of a bug
            r._transition(_S.STOPPED)

    # -- one replica's life ------------------------------------------------------------------

    async def _run(self, r: _Replica) -> None:
        """Start, watch, classify the exit, tell the daemon, then restart, back off or give up."""
        agent = r.agent
        try:
            while True:
                r._transition(_S.STARTING)
                worker, ex = await self._attempt(r)
                r.last_exit, r.last_exit_at = ex, now_iso()
                what = f"exited: {ex.describe()}" if ex.signal else ex.describe()
                delay, n, retries = 0.0, r.fast_failures + 1, agent.spec.start_retries
                if ex.requested:
                    new, level, text = _S.STOPPED, logging.INFO, f"stopped ({ex.describe()})"
                elif not ex.fast:
                    new, level, text = _S.EXITED, logging.WARNING, f"{what}; restarting"
                elif n >= retries:
                    new, level = _S.FATAL, logging.ERROR
                    text = f"{what}; FATAL after {n} fast failures; fix it and run: "
                    text += f"axme agents restart {agent.spec.address}"
                else:
                    new, level, delay = _S.BACKOFF, logging.WARNING, self._backoff(n)
                    text = f"{what}; fast failure {n}/{retries}, retrying in {delay:.2f}s"
                r.fast_failures = n if ex.fast else r.fast_failures
                r._transition(new)
                self._note(agent, r, text, level)
                if worker is not None:
                    # Before any restart: the daemon releases this worker's deliveries here.
                    await self._notify_exited(worker, ex)
                if r.state in (_S.STOPPED, _S.FATAL):
                    return
                if r.stop_requested.is_set() or (
                    delay > 0 and await _wait_event(r.stop_requested, delay)
                ):
                    r._transition(_S.STOPPED)
                    self._note(agent, r, "stopped")
                    return
                r.restarts += 1
        except Exception:
            log.exception("supervising %s r%d failed", agent.spec.address, r.number)

    async def _attempt(self, r: _Replica) -> tuple[WorkerInfo | None, ExitInfo]:
        """Run one process to its end; (None, exit) when it could not even be started."""
        spec = r.agent.spec
        pending = WorkerInfo(uuid.uuid4().hex, spec.address, r.number, 0, secrets.token_urlsafe(24))
        read_fd, write_fd = os.pipe()  # see _pump for why not stdout=PIPE
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AXME_")}
            env.update(spec.env)
            env.update(self._worker_env(spec, pending))
            # Its own process group (new session), so stop signals reach everything it started.
            proc = await asyncio.create_subprocess_exec(
                spec.executable or spec.command[0],
                *spec.command[1:],
                cwd=spec.cwd,
                env=env,
                stdin=DEVNULL,
                stdout=write_fd,
                stderr=STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()) if _libc is not None else None,
            )
        except Exception as exc:
            os.close(read_fd)
            if not isinstance(exc, OSError):
                log.exception("cannot start %s r%d", spec.address, r.number)
            requested = r.stop_requested.is_set()
            error = f"cannot start: {_explain(exc)}"
            return None, ExitInfo(None, None, requested, not requested, 0.0, error)
        finally:
            os.close(write_fd)  # the child has its copy; EOF comes when the last holder exits

        started = r.started_at = self._clock()
        r.serving = asyncio.Event()
        worker = r.worker = dataclasses.replace(pending, pid=proc.pid)
        self._note(r.agent, r, f"started pid {proc.pid}")
        try:
            self._on_started(worker)
        except Exception:
            log.exception("on_started failed for %s r%d", spec.address, r.number)
        output: deque[str] = deque(maxlen=_OUTPUT_LINES)
        pump = asyncio.create_task(self._pump(r.agent.log, r.number, proc.pid, read_fd, output))
        try:
            requested = await self._watch(r, proc, spec)
        finally:
            # Also when cancelled: leave no orphan, nor any straggler the agent left in its group.
            _signal_group(proc.pid, signal.SIGKILL)
            r.worker = None
        uptime = self._clock() - started
        _done, pending_pump = await asyncio.wait([pump], timeout=_DRAIN_SECONDS)
        for task in pending_pump:
            task.cancel()
        rc = proc.returncode
        assert rc is not None
        fast = r.state is _S.STARTING and not requested
        sig = -rc if rc < 0 else None
        return worker, ExitInfo(
            rc if sig is None else None, sig, requested, fast, uptime, output=tuple(output)
        )

    async def _watch(self, r: _Replica, proc: asyncio.subprocess.Process, spec: AgentSpec) -> bool:
        """Wait for the exit, passing RUNNING on the way; stop it if asked. True when asked."""
        exited = asyncio.ensure_future(proc.wait())
        stopping = asyncio.ensure_future(r.stop_requested.wait())
        serving = asyncio.ensure_future(r.serving.wait())
        try:
            either = (exited, stopping)
            done, _ = await asyncio.wait(
                (*either, serving),
                timeout=spec.start_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done.intersection(either):  # up for start_seconds, or serving work
                r._transition(_S.RUNNING)
                r.fast_failures = 0
                done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if exited in done:
                return r.stop_requested.is_set()
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(exited), spec.stop_grace_seconds)
            except TimeoutError:
                self._note(
                    r.agent,
                    r,
                    f"still running {spec.stop_grace_seconds:g}s after SIGTERM: sending SIGKILL",
                    logging.WARNING,
                )
                _signal_group(proc.pid, signal.SIGKILL)
                await exited
            return True
        finally:
            exited.cancel()
            stopping.cancel()
            serving.cancel()

    async def _pump(
        self, agent_log: _AgentLog, replica: int, pid: int, fd: int, last: deque[str]
    ) -> None:
        """Copy a process's merged stdout/stderr into its agent's log, line by line (the
        last ones also into `last`).

        Our own pipe, not `stdout=PIPE`: from Python 3.12 `Process.wait()` also waits for the
        transport's pipes, so a grandchild holding stdout would hide a crash of the agent.
        """
        tag = f"r{replica} pid {pid}"
        pipe = os.fdopen(fd, "rb", buffering=0)
        reader = asyncio.StreamReader()
        transport: asyncio.ReadTransport | None = None
        buf = b""
        try:
            transport, _ = await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
            while chunk := await reader.read(_READ_CHUNK):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if len(buf) > _MAX_LINE:
                    lines.append(buf)
                    buf = b""
                for line in lines:
                    text = line.rstrip(b"\r").decode("utf-8", "replace")
                    agent_log.write(tag, text)
                    last.append(text[:_OUTPUT_LINE_CHARS])
            if buf:
                text = buf.rstrip(b"\r").decode("utf-8", "replace")
                agent_log.write(tag, text)
                last.append(text[:_OUTPUT_LINE_CHARS])
        except Exception:
            log.exception("reading the output of pid %d failed", pid)
        finally:
            if transport is not None:
                transport.close()  # closes the pipe too
            else:
                pipe.close()

    async def _notify_exited(self, worker: WorkerInfo, ex: ExitInfo) -> None:
        try:
            await self._on_exited(worker, ex)
        except Exception:
            log.exception("on_exited failed for %s r%d", worker.address, worker.replica)

    def _backoff(self, failures: int) -> float:
        delay = min(self._backoff_cap, self._backoff_base * 2.0 ** (failures - 1))
        return max(0.0, delay * (1 + self._rng.uniform(-self._jitter, self._jitter)))

    def _note(
        self, agent: _Agent, r: _Replica | None, text: str, level: int = logging.INFO
    ) -> None:
        """A supervisor line, in the agent's log and the daemon's (never with env values)."""
        agent.log.write(f"supervisor r{r.number}" if r else "supervisor", text)
        where = f"{agent.spec.address} r{r.number}" if r else agent.spec.address
        log.log(level, "agent %s: %s", where, text, extra={"agent": agent.spec.address})


def _die_with_parent(parent: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL the child when the daemon dies, even by SIGKILL (Linux only).

    The kernel signals when the forking *thread* ends, so spawn from the loop's thread.
    """

    def preexec() -> None:
        assert _libc is not None
        _libc.prctl(_PR_SET_PDEATHSIG, _SIGKILL)
        if os.getppid() != parent:  # the daemon died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _signal_group(pid: int, sig: signal.Signals) -> None:
    if pid <= 0:  # killpg(0) would signal our own group
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def _explain(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename!r}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


async def _wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Sleep `timeout` seconds unless `event` is set first; True when it was."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def _gather(jobs: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run all jobs to the end, even when one fails, then raise the first failure."""
    for result in await asyncio.gather(*jobs, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result
