"""Wiring and lifecycle: lock the home, open the store, serve the API until told to stop.

SIGTERM and SIGINT stop gracefully: uvicorn stops accepting, finishes in-flight requests
(streams get a short grace), then the store commits what is queued and closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

import uvicorn

from axme_daemon.api import create_app
from axme_daemon.config import DaemonSettings
from axme_daemon.engine import Engine
from axme_daemon.registry import Registry
from axme_daemon.server import acquire_lock, bind_unix_socket, cleanup, write_pidfile
from axme_daemon.store import open_store
from axme_daemon.supervisor import AgentSpec, ExitInfo, Supervisor, WorkerInfo

log = logging.getLogger("axme_daemon")

#: Seconds held streams get to finish when the daemon stops.
SHUTDOWN_GRACE = 2


def _worker_env(settings: DaemonSettings) -> Callable[[AgentSpec, WorkerInfo], dict[str, str]]:
    """What each agent process finds in its environment to reach the daemon as itself."""

    def env(spec: AgentSpec, worker: WorkerInfo) -> dict[str, str]:
        return {
            "AXME_HOME": str(settings.paths.home),
            "AXME_SOCKET": str(settings.paths.socket),
            "AXME_AGENT": spec.address,
            "AXME_WORKER_ID": worker.worker_id,
            "AXME_API_KEY": worker.api_key,
            "AXME_CONCURRENCY": str(spec.concurrency),
            "PYTHONUNBUFFERED": "1",
        }

    return env


async def serve(settings: DaemonSettings) -> None:
    store = open_store(settings.database_url)
    engine = Engine(store, lease_grace=settings.lease_grace)
    dispatcher = engine.dispatcher
    api_keys: dict[str, str] = {}

    def on_started(worker: WorkerInfo) -> None:
        api_keys[worker.api_key] = worker.worker_id
        spec = registry.specs.get(worker.address)
        dispatcher.register(
            worker.worker_id,
            worker.address,
            supervised=True,
            limit=spec.concurrency if spec else 1,
            pid=worker.pid,
        )

    async def on_exited(worker: WorkerInfo, exit: ExitInfo) -> None:
        api_keys.pop(worker.api_key, None)
        await dispatcher.worker_gone(
            worker.worker_id, f"worker pid {worker.pid} of {worker.address} {exit.describe()}"
        )

    supervisor = Supervisor(
        settings.paths.log_dir,
        worker_env=_worker_env(settings),
        on_started=on_started,
        on_exited=on_exited,
    )
    registry = Registry(store, supervisor, dispatcher)
    config = uvicorn.Config(
        create_app(engine, settings, api_keys, registry),
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        access_log=False,
    )
    server = uvicorn.Server(config)

    # Ours, not uvicorn's: uvicorn re-raises a caught SIGTERM once it has shut down, which
    # would kill the process before the store is closed. These handlers only ask it to stop,
    # also during start-up, before uvicorn installs its own.
    def request_stop(signum: int, frame: object) -> None:
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)

    await store.open()
    try:
        await dispatcher.start()
        sock = bind_unix_socket(settings.paths.socket)
        write_pidfile(settings.paths)
        log.info(
            "axme daemon serving",
            extra={"action": "start", "pid": os.getpid(), "socket": str(settings.paths.socket)},
        )
        await registry.start()  # agents connect to the socket bound above
        await server.serve(sockets=[sock])
    finally:
        await supervisor.close()
        await dispatcher.close()
        await store.close()
        stats = store.stats()
        log.info("axme daemon stopped (%d commits, %d writes)", stats.commits, stats.writes)


def run(settings: DaemonSettings) -> None:
    """Run the daemon in this process until SIGTERM/SIGINT; the lock is held throughout."""
    os.umask(0o077)  # the database holds payloads and agents' env secrets: owner only
    lock_fd = acquire_lock(settings.paths)
    try:
        asyncio.run(serve(settings))
    finally:
        cleanup(settings.paths)
        os.close(lock_fd)
