"""Wiring and lifecycle: lock the home, open the store, serve the API until told to stop.

SIGTERM and SIGINT stop gracefully: uvicorn stops accepting, finishes in-flight requests
(streams get a short grace), then the store commits what is queued and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from axme_cli.listen import parse_listen
from axme_daemon.api import attach_registry, create_app
from axme_daemon.auth import KeyRing, TcpEdge
from axme_daemon.config import DaemonSettings
from axme_daemon.engine import Engine
from axme_daemon.events import AGENTS_TOPIC
from axme_daemon.holds import raise_fd_limit
from axme_daemon.host_check import LoopbackHostOnly
from axme_daemon.http_protocol import OneWriteHttpProtocol
from axme_daemon.notify import Notifier
from axme_daemon.registry import Registry
from axme_daemon.server import (
    HomeUnusable,
    acquire_lock,
    bind_unix_socket,
    check_socket_path,
    cleanup,
    write_pidfile,
)
from axme_daemon.store import open_store
from axme_daemon.store.base import DaemonInfo
from axme_daemon.supervisor import AgentSpec, ExitInfo, Supervisor, WorkerInfo
from axme_daemon.trace import TraceEcho

log = logging.getLogger("axme_daemon")

#: Seconds held streams get to finish when the daemon stops.
SHUTDOWN_GRACE = 2

#: Both listeners: our own logging; no `server` or `date` header (a local API's clients
#: have no use for them, and each header is work on every response).
SERVER_OPTIONS: dict[str, Any] = {
    "http": OneWriteHttpProtocol,
    "log_config": None,
    "lifespan": "off",
    "access_log": False,
    "server_header": False,
    "date_header": False,
}


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon runs two servers (socket and TCP)
    and stops both, and its agents and store, from one handler of its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class TcpListener:
    """The loopback TCP listener: off until configured (`--listen`) or needed (agents run,
    and AXME SDK agents need an http URL), then API-key protected."""

    def __init__(self, app: FastAPI, listen: str | None, keys: KeyRing) -> None:
        self.inner = app
        self.app = TcpEdge(app, keys)
        self.listen = listen
        self.url: str | None = None
        self.server: _Server | None = None
        self.task: asyncio.Task[None] | None = None

    async def ensure(self) -> str:
        if self.url is not None:
            return self.url
        host, port = parse_listen(self.listen or "127.0.0.1:0")
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        self.inner.state.tcp_url = self.url
        app = TraceEcho(LoopbackHostOnly(self.app, bound_host))
        config = uvicorn.Config(app, **SERVER_OPTIONS)
        config.timeout_graceful_shutdown = SHUTDOWN_GRACE
        self.server = _Server(config)
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]), name="tcp-listener")
        log.info("listening on %s (API key required)", self.url)
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True

    async def wait(self) -> None:
        if self.task is not None:
            await self.task


def _worker_env(
    settings: DaemonSettings, tcp: TcpListener
) -> Callable[[AgentSpec, WorkerInfo], dict[str, str]]:
    """What each agent process finds in its environment to reach the daemon as itself."""

    def env(spec: AgentSpec, worker: WorkerInfo) -> dict[str, str]:
        return {
            "AXME_BASE_URL": tcp.url or "",
            "AXME_HOME": str(settings.paths.home),
            "AXME_SOCKET": str(settings.paths.socket),
            "AXME_AGENT": spec.address,
            "AXME_WORKER_ID": worker.worker_id,
            "AXME_API_KEY": worker.api_key,
            "AXME_CONCURRENCY": str(spec.concurrency),
            "PYTHONUNBUFFERED": "1",
        }

    return env


def daemon_info(settings: DaemonSettings) -> DaemonInfo:
    """This daemon as a shared store knows it. Its id is its home's (made once, kept in the
    home), so a restart of the home is the same daemon and takes back its own leases."""
    path = settings.paths.home / "daemon.id"
    try:
        daemon_id = path.read_text().strip() if path.exists() else ""
        if not daemon_id:
            daemon_id = uuid.uuid4().hex[:16]
            path.write_text(daemon_id + "\n")
    except OSError as exc:
        raise HomeUnusable(f"cannot keep its id in {path}: {exc}") from exc
    return DaemonInfo(
        daemon_id=daemon_id,
        host=socket.gethostname(),
        pid=settings.pid,
        home=str(settings.paths.home),
        lease_grace=settings.lease_grace,
    )


async def serve(settings: DaemonSettings) -> None:
    store = open_store(settings.database_url, key_file=settings.paths.secrets_key)
    store.set_daemon(daemon_info(settings))
    engine = Engine(store, lease_grace=settings.lease_grace)
    dispatcher = engine.dispatcher
    api_keys = KeyRing(store)

    def on_started(worker: WorkerInfo) -> None:
        api_keys.add_worker(worker.api_key, worker.worker_id, worker.address)
        spec = registry.specs.get(worker.address)
        dispatcher.register(
            worker.worker_id,
            worker.address,
            supervised=True,
            limit=spec.concurrency if spec else 1,
            pid=worker.pid,
        )

    async def on_exited(worker: WorkerInfo, exit: ExitInfo) -> None:
        api_keys.drop_worker(worker.api_key)
        how = {"returncode": exit.returncode, "signal": exit.signal, "output": list(exit.output)}
        await dispatcher.worker_gone(
            worker.worker_id,
            f"worker pid {worker.pid} of {worker.address} {exit.describe()}",
            {"exit": how},
        )

    app = create_app(engine, settings, api_keys, None)
    tcp = TcpListener(app, settings.listen, api_keys)
    supervisor = Supervisor(
        settings.paths.log_dir,
        worker_env=_worker_env(settings, tcp),
        on_started=on_started,
        on_exited=on_exited,
        on_change=lambda: engine.hub.notify([AGENTS_TOPIC]),
    )
    dispatcher.on_serving = supervisor.serving
    app.state.ensure_tcp = tcp.ensure  # a scenario's agents need the TCP URL
    registry = Registry(store, supervisor, dispatcher, before_start=tcp.ensure)
    attach_registry(app, registry)
    notifier = Notifier(registry.hooks_for)
    engine.notices.append(notifier)
    config = uvicorn.Config(app, timeout_graceful_shutdown=SHUTDOWN_GRACE, **SERVER_OPTIONS)
    server = _Server(config)

    # One handler stops everything gracefully, also during start-up. (uvicorn's own would
    # re-raise SIGTERM after its shutdown and kill the process before the store is closed.)
    loop = asyncio.get_running_loop()

    def request_stop(signum: int, frame: object) -> None:
        server.should_exit = True
        tcp.stop()
        loop.call_soon_threadsafe(engine.hub.close)  # held streams end now, not after the grace

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)

    await store.open()
    try:
        await api_keys.load()
        await registry.load_hooks()  # timers due since the last run notify as they fire
        await engine.start()
        sock = bind_unix_socket(settings.paths.socket)
        write_pidfile(settings.paths)
        log.info(
            "axme daemon serving",
            extra={"action": "start", "pid": os.getpid(), "socket": str(settings.paths.socket)},
        )
        if settings.listen:
            await tcp.ensure()
        await registry.start()  # agents connect to the socket bound above
        await server.serve(sockets=[sock])
        tcp.stop()
        await tcp.wait()
    finally:
        await supervisor.close()
        await engine.close()
        await notifier.close()  # cancels deliveries still pending after a short grace
        await store.close()
        stats = store.stats()
        log.info(
            "axme daemon stopped (%d commits, %d syncs, %d writes)",
            stats.commits,
            stats.syncs,
            stats.writes,
        )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed: the daemon is CPU-bound per request, and uvloop's
    transports and scheduling cost less than asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


#: How long a thread that wants the interpreter lock waits before the running one must let
#: it go (Python's default is 5 ms). The WAL syncer answers every write once its sync is
#: done, and needs the lock for that: with the default, an acknowledgement often waited
#: milliseconds behind the busy event loop.
SWITCH_INTERVAL = 0.0005


def run(settings: DaemonSettings) -> None:
    """Run the daemon in this process until SIGTERM/SIGINT; the lock is held throughout."""
    os.umask(0o077)  # the database holds payloads and agents' env secrets: owner only
    sys.setswitchinterval(SWITCH_INTERVAL)
    log.info("open files limit %d", raise_fd_limit(), extra={"action": "limits"})
    lock_fd = acquire_lock(settings.paths)
    try:
        check_socket_path(settings.paths.socket)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(settings))
    finally:
        cleanup(settings.paths)
        os.close(lock_fd)
