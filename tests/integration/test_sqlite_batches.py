"""The SQLite store's group commit: writes queued together share a transaction, and a write
that breaks its batch (a constraint, or SQLite giving the transaction up) fails alone. And
what the batches stand on: the live connections' journal and sync modes, and a disk that
refuses a sync (`os.fdatasync`, the OS edge, fails here; tests/acceptance/test_durability.py
holds and fails it under a real daemon)."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
from typing import Any

import pytest

from axme_daemon.intents import Intent, NewIntent
from axme_daemon.store import IntentFilter
from axme_daemon.store.base import WorkerReport
from axme_daemon.store.sqlite import SqliteStore, StoreBroken
from axme_daemon.store.sqlite_tx import SqliteTx
from tests.integration.test_store_contract import Taker


def _new(n: int) -> NewIntent:
    return NewIntent(intent_type="intent.test.v1", to_agent="agent://test/a", payload={"n": n})


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


async def _stored(store: SqliteStore) -> list[str]:
    page = await store.list_intents(IntentFilter(), 100, None)
    return sorted(i.intent_id for i in page.intents)


def _broken(tx: SqliteTx) -> tuple[Any, list[str]]:
    tx.db.execute("INSERT INTO intents (pos) VALUES (1)")  # NOT NULL columns: refused
    return None, []


def _abandoning(tx: SqliteTx) -> tuple[Any, list[str]]:
    """What SQLite does on a full disk or an I/O error: the whole transaction is gone."""
    tx.db.execute("ROLLBACK")
    raise sqlite3.OperationalError("database or disk is full")


async def test_a_write_that_breaks_undoes_only_itself(store: SqliteStore) -> None:
    before = store.stats()
    outcomes = await asyncio.gather(
        store.create_intent(_new(1), _id(1)),
        store._write(_broken),
        store.create_intent(_new(2), _id(2)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert [o[1] for o in (outcomes[0], outcomes[2])] == [True, True]  # type: ignore[index]
    assert await _stored(store) == [_id(1), _id(2)]
    assert store.stats().writes - before.writes == 2


async def test_a_transaction_sqlite_gives_up_fails_only_the_write_that_lost_it(
    store: SqliteStore,
) -> None:
    outcomes = await asyncio.gather(
        store.create_intent(_new(1), _id(1)),
        store._write(_abandoning),
        store.create_intent(_new(2), _id(2)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], sqlite3.OperationalError)
    assert outcomes[0] == (await store.get_intent(_id(1)), True)
    assert outcomes[2] == (await store.get_intent(_id(2)), True)
    assert await _stored(store) == [_id(1), _id(2)]
    await store.create_intent(_new(3), _id(3))  # and the store goes on
    assert await _stored(store) == [_id(1), _id(2), _id(3)]


async def test_writes_queued_together_share_one_commit(store: SqliteStore) -> None:
    before = store.stats()
    await asyncio.gather(*(store.create_intent(_new(n), _id(n)) for n in range(50)))
    after = store.stats()
    assert (after.commits - before.commits, after.writes - before.writes) == (1, 50)
    assert after.syncs - before.syncs == 1


async def test_concurrent_writes_are_group_committed(store: SqliteStore) -> None:
    before = store.stats()
    results = await asyncio.gather(*(store.create_intent(_new(n), _id(n)) for n in range(200)))
    assert all(created for _, created in results)
    after = store.stats()
    assert after.writes - before.writes == 200
    assert after.commits - before.commits < 20, "group commit should share transactions"


async def test_a_completion_and_the_next_delivery_share_one_commit(store: SqliteStore) -> None:
    store.set_deliverer(Taker(slots=1))
    running, _ = await store.create_intent(_new(0), _id(0))
    await store.create_intent(_new(1), _id(1))
    before = store.stats()
    [done] = await store.report(
        [WorkerReport(running.intent_id, [(1, "s1", None)], completed=True, result=1)], "w1"
    )
    assert isinstance(done, Intent)
    assert store.stats().commits - before.commits == 1
    nxt = await store.get_intent(_id(1))
    assert nxt is not None and nxt.lease_worker == "w1"


async def test_the_writer_journals_to_a_wal_and_syncs_its_checkpoints(store: SqliteStore) -> None:
    """Read from the connection that writes, as it runs: `synchronous` is per connection."""
    writer = store._wdb
    assert writer is not None
    assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # NORMAL (1): a COMMIT writes the WAL and the syncer syncs it before any answer; the
    # checkpoints (and the one when the store closes) sync the database file. OFF (0) skips
    # those; FULL (2) would sync every COMMIT on the loop's thread.
    assert writer.execute("PRAGMA synchronous").fetchone()[0] == 1


async def test_a_refused_sync_fails_the_unsynced_writes_and_every_later_one(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.create_intent(_new(1), _id(1))
    syncs = store.stats().syncs

    def refuse(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fdatasync", refuse)
    with pytest.raises(StoreBroken, match="cannot sync its writes to disk"):
        await store.create_intent(_new(2), _id(2))
    monkeypatch.undo()  # the disk is back, but what it refused may be lost: still no answers
    with pytest.raises(StoreBroken, match="Input/output error"):
        await store.create_intent(_new(3), _id(3))
    assert store.stats().syncs == syncs
