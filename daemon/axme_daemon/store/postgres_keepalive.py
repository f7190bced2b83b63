"""A daemon's heartbeat row kept fresh from a thread of its own.

The event loop's heartbeat (`Dispatcher`) goes through the write queue, so a long queue or a
loaded machine can hold it past the lease grace, and the other daemons then end this one's
leases while it is alive and working: the work runs twice and each such lapse costs its
intents an attempt. This thread renews only the row, on a connection of its own, so that
only a daemon that is gone (or cut off from the database) loses its leases. It renews only
while the event loop itself still beats now and then (`loop_beat`): a wedged daemon stops
renewing after `stall` seconds and its leases lapse as a dead one's do.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from axme_daemon.lifecycle.daemons import clock
from axme_daemon.store.base import DaemonInfo
from axme_daemon.store.postgres_session import Session
from axme_daemon.store.postgres_tx import PostgresTx

log = logging.getLogger(__name__)


class Keepalive:
    def __init__(self, url: str, daemon: DaemonInfo, *, every: float, stall: float) -> None:
        self.url = url
        self.daemon = daemon
        self.every = every
        self.stall = stall
        self.beats = 0  # renewals made, for tests and logs
        self._loop_at = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="daemon-keepalive", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def loop_beat(self) -> None:
        """The event loop is alive: the thread may go on renewing for `stall` seconds."""
        self._loop_at = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        db: psycopg.Connection[dict[str, Any]] | None = None
        tx: PostgresTx | None = None
        try:
            while not self._stop.wait(self.every):
                if time.monotonic() - self._loop_at > self.stall:
                    continue  # the loop is wedged: let the leases lapse
                try:
                    if db is None or tx is None or db.closed:
                        db = psycopg.connect(
                            self.url, autocommit=True, row_factory=dict_row, connect_timeout=5
                        )
                        tx = PostgresTx(Session(db))
                    tx.run(
                        "daemon_heartbeat",
                        daemon_id=self.daemon.daemon_id,
                        now=clock(tx),
                        lease_grace=self.daemon.lease_grace,
                    )
                    self.beats += 1
                except psycopg.Error as exc:  # the loop's own heartbeat reports the outage
                    log.debug("keepalive heartbeat failed: %s", exc)
                    if db is not None:
                        db.close()
                    db = tx = None
        finally:
            if db is not None:
                db.close()
