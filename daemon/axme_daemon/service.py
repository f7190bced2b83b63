"""Wiring and lifecycle: lock the home, open the store, serve the API until told to stop.

SIGTERM and SIGINT stop gracefully: uvicorn stops accepting, finishes in-flight requests
(streams get a short grace), then the store commits what is queued and closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import uvicorn

from axme_daemon.api import create_app
from axme_daemon.config import DaemonSettings
from axme_daemon.engine import Engine
from axme_daemon.server import acquire_lock, bind_unix_socket, cleanup, write_pidfile
from axme_daemon.store import open_store

log = logging.getLogger("axme_daemon")

#: Seconds held streams get to finish when the daemon stops.
SHUTDOWN_GRACE = 2


async def serve(settings: DaemonSettings) -> None:
    store = open_store(settings.database_url)
    engine = Engine(store)
    config = uvicorn.Config(
        create_app(engine, settings),
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
        sock = bind_unix_socket(settings.paths.socket)
        write_pidfile(settings.paths)
        log.info(
            "axme daemon serving",
            extra={"action": "start", "pid": os.getpid(), "socket": str(settings.paths.socket)},
        )
        await server.serve(sockets=[sock])
    finally:
        await store.close()
        stats = store.stats()
        log.info("axme daemon stopped (%d commits, %d writes)", stats.commits, stats.writes)


def run(settings: DaemonSettings) -> None:
    """Run the daemon in this process until SIGTERM/SIGINT; the lock is held throughout."""
    lock_fd = acquire_lock(settings.paths)
    try:
        asyncio.run(serve(settings))
    finally:
        cleanup(settings.paths)
        os.close(lock_fd)
