"""Making committed transactions durable, apart from committing them.

The writer commits with `synchronous=NORMAL`: COMMIT writes the transaction's pages to the WAL
file and returns without waiting for the disk. This thread then syncs the WAL file, and only
then does the store acknowledge the writes it holds (see `sqlite.py`). So the next batch's
writes run while the disk flushes the last one, and one sync covers every transaction
committed before it started (group commit across batches, as database WAL writers do), while
an acknowledged write is on disk exactly as with `synchronous=FULL`.

It also checkpoints (copies the WAL back into the database file) once the WAL has grown,
instead of the writer doing it inside a COMMIT on the event loop's thread.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: Syncs between checkpoints: a few thousand WAL pages, about what SQLite's own default lets
#: the WAL grow to.
SYNCS_PER_CHECKPOINT = 100


class WalSyncer:
    """Syncs the WAL after each commit it is told of; reports the last commit on disk."""

    def __init__(
        self,
        path: Path,
        on_synced: Callable[[int], object],
        on_failed: Callable[[OSError], object],
    ) -> None:
        """`on_synced(n)`: commits up to number `n` are durable; `on_failed(error)`: the
        disk refused a sync, so nothing committed since the last good one can be trusted.
        Both are called from the syncer's thread."""
        self._db_path = path
        self._fd = os.open(f"{path}-wal", os.O_RDWR)
        self._on_synced = on_synced
        self._on_failed = on_failed
        self._cond = threading.Condition()
        self._written = 0  # the last commit number written to the WAL
        self.syncs = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sqlite-wal-sync", daemon=True)
        self._thread.start()

    def written(self, commit: int) -> None:
        """Commit number `commit` is in the WAL; sync it."""
        with self._cond:
            self._written = commit
            self._cond.notify()

    def close(self) -> None:
        """Sync what was written, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        os.close(self._fd)

    def _run(self) -> None:
        synced = 0
        checkpointer: sqlite3.Connection | None = None
        try:
            while True:
                with self._cond:
                    while self._written == synced and not self._stopping:
                        self._cond.wait()
                    if self._written == synced:
                        return
                    target = self._written
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:
                    log.critical("cannot sync the WAL: %s", exc, extra={"action": "sync"})
                    self._on_failed(exc)
                    return
                synced = target
                self.syncs += 1
                self._on_synced(target)
                if self.syncs % SYNCS_PER_CHECKPOINT == 0:
                    if checkpointer is None:
                        checkpointer = sqlite3.connect(self._db_path, isolation_level=None)
                    # PASSIVE: copies what no reader still needs, never blocks the writer.
                    try:
                        checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    except sqlite3.Error as exc:  # e.g. a full disk: the WAL keeps it all
                        log.warning("checkpoint failed: %s", exc, extra={"action": "checkpoint"})
        finally:
            if checkpointer is not None:
                checkpointer.close()
