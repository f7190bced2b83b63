"""What only the PostgreSQL store does for daemons sharing it: tell the others of its
commits (LISTEN/NOTIFY, only while another live daemon is registered), and keep a slow read
off the connection the event loop reads on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from axme_cli.protocol import IntentStatus
from axme_daemon.intents import Intent, NewIntent
from axme_daemon.store import open_store
from axme_daemon.store.base import DaemonInfo, RemoteChange, WorkerReport
from axme_daemon.store.postgres import PostgresStore
from axme_daemon.store.postgres_tx import PostgresTx

AGENT = "agent://test/a"


def _new(n: int) -> NewIntent:
    return NewIntent(intent_type="intent.test.v1", to_agent=AGENT, payload={"n": n})


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


async def _daemon(url: str, home: Path, daemon_id: str) -> PostgresStore:
    store = open_store(url, key_file=home / "secrets.key")
    assert isinstance(store, PostgresStore)
    store.set_daemon(DaemonInfo(daemon_id, "host", 1, f"/homes/{daemon_id}", 10.0))
    await store.open()
    await store.register_daemon()
    return store


@pytest.fixture
async def opened(postgresql_url: str, axme_home: Path) -> AsyncIterator[list[PostgresStore]]:
    stores: list[PostgresStore] = []
    yield stores
    for store in stores:
        await store.close()


async def _heard_within(seconds: float, got: Sequence[object]) -> bool:
    deadline = time.monotonic() + seconds
    while not got and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return bool(got)


async def test_another_daemons_commits_wake_this_one_only_while_both_are_live(
    postgresql_url: str, axme_home: Path, opened: list[PostgresStore]
) -> None:
    a = await _daemon(postgresql_url, axme_home, "a")
    opened.append(a)
    await a.create_intent(_new(0), _id(0))  # alone: no NOTIFY (nobody to tell)
    b = await _daemon(postgresql_url, axme_home, "b")  # b sees a live at once
    opened.append(b)
    ids: list[list[str]] = []
    changes: list[RemoteChange] = []
    a.add_commit_listener(lambda i: ids.append(list(i)))
    a.add_remote_listener(changes.append)
    await b.create_intent(_new(1), _id(1))
    assert await _heard_within(5, changes), "a heard nothing of b's commit"
    assert ids == [[_id(1)]]
    assert changes == [RemoteChange(frozenset({AGENT}), False, frozenset({_id(1)}))]
    # a learns of b at its next heartbeat; from then on b hears a's commits.
    heard_by_b: list[list[str]] = []
    b.add_commit_listener(lambda i: heard_by_b.append(list(i)))
    await a.create_intent(_new(2), _id(2))
    await asyncio.sleep(0.3)  # what b would hear comes within milliseconds; it must not come
    assert [_id(2)] not in heard_by_b
    await a.heartbeat()
    await a.create_intent(_new(3), _id(3))
    assert await _heard_within(5, heard_by_b) and [_id(3)] in heard_by_b
    # Its own commits a hears once, from its own writer, not again through the database.
    assert ids.count([_id(3)]) == 1


async def test_a_slow_read_holds_neither_the_reader_nor_the_writer(
    postgresql_url: str, axme_home: Path, opened: list[PostgresStore]
) -> None:
    a = await _daemon(postgresql_url, axme_home, "a")
    opened.append(a)
    slow = asyncio.create_task(asyncio.to_thread(a._read_apart, "SELECT pg_sleep(1.5)", []))
    await asyncio.sleep(0.1)  # the slow read is running
    started = time.monotonic()
    await a.create_intent(_new(0), _id(0))
    assert await a.get_intent(_id(0)) is not None
    took = time.monotonic() - started
    await slow
    assert took < 0.75, f"a create and a read waited {took:.2f}s behind a slow read"


async def test_a_batch_too_big_to_name_its_addresses_says_any(
    postgresql_url: str, axme_home: Path, opened: list[PostgresStore]
) -> None:
    """A NOTIFY payload must stay under 8000 bytes: a batch that queued work for more
    addresses than fit tells the others "any address", and still commits as one."""
    a = await _daemon(postgresql_url, axme_home, "a")
    b = await _daemon(postgresql_url, axme_home, "b")
    opened += [a, b]
    await a.heartbeat()  # a knows of b: it tells b of its commits
    changes: list[RemoteChange] = []
    b.add_remote_listener(changes.append)
    commits = a.stats().commits
    news = [
        NewIntent(intent_type="t.v1", to_agent=f"agent://test/{'x' * 60}{n}", payload={})
        for n in range(120)
    ]
    await asyncio.gather(*(a.create_intent(new, _id(n)) for n, new in enumerate(news)))
    assert a.stats().commits == commits + 1, "one batch, one commit"
    assert await _heard_within(5, changes)
    assert changes == [RemoteChange(None, False, frozenset(_id(n) for n in range(120)))]


async def test_a_lost_listener_listens_again_and_says_anything_may_have_changed(
    postgresql_url: str, axme_home: Path, opened: list[PostgresStore]
) -> None:
    import psycopg

    a = await _daemon(postgresql_url, axme_home, "a")
    b = await _daemon(postgresql_url, axme_home, "b")
    opened += [a, b]
    changes: list[RemoteChange] = []
    a.add_remote_listener(changes.append)
    with psycopg.connect(postgresql_url, autocommit=True) as db:  # the server drops it
        ended = db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query = 'LISTEN axme' AND pid <> pg_backend_pid()"
        ).fetchall()
    assert len(ended) == 2  # a's and b's listeners
    assert await _heard_within(10, changes), "a never listened again"
    assert changes[0] == RemoteChange(None, True, None)  # what it missed meanwhile: anything
    changes.clear()
    await b.create_intent(_new(0), _id(0))
    assert await _heard_within(5, changes)
    assert changes == [RemoteChange(frozenset({AGENT}), False, frozenset({_id(0)}))]


def _heartbeat_at(url: str, daemon_id: str) -> float:
    import psycopg

    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT heartbeat_at FROM daemons WHERE daemon_id = %s", (daemon_id,)
        ).fetchone()
        assert row is not None
        return float(row[0])


async def test_a_busy_event_loop_keeps_its_heartbeat_and_a_wedged_one_loses_it(
    postgresql_url: str, axme_home: Path, opened: list[PostgresStore]
) -> None:
    """Other daemons end the leases of a daemon whose heartbeat lapsed: a daemon whose loop
    is busy for longer than its grace (a long write queue, a loaded machine) must not look
    dead, and one whose loop no longer runs at all must."""
    store = open_store(postgresql_url, key_file=axme_home / "secrets.key")
    assert isinstance(store, PostgresStore)
    store.set_daemon(DaemonInfo("busy", "host", 1, "/homes/busy", 0.4))  # renews every 0.1 s
    await store.open()
    opened.append(store)
    await store.register_daemon()
    before = _heartbeat_at(postgresql_url, "busy")
    time.sleep(1.0)  # the event loop does nothing else for 2.5 graces
    assert _heartbeat_at(postgresql_url, "busy") >= before + 0.5

    assert store.keepalive is not None
    store.keepalive.stall = 0.2  # the loop has not beaten since: it counts as wedged now
    time.sleep(0.5)
    wedged = _heartbeat_at(postgresql_url, "busy")
    time.sleep(0.6)
    assert _heartbeat_at(postgresql_url, "busy") == wedged
    await store.heartbeat()  # the loop beats again: the thread renews for `stall` more
    renewed = _heartbeat_at(postgresql_url, "busy")
    assert renewed > wedged
    time.sleep(0.5)
    assert _heartbeat_at(postgresql_url, "busy") > renewed


async def test_a_batch_the_server_rolls_back_for_a_deadlock_runs_again(
    postgresql_url: str, axme_home: Path, opened: list[PostgresStore]
) -> None:
    """Two daemons' transactions can each wait for a row the other holds; the server then
    rolls one back. That batch did nothing: it runs again, and its callers never see it
    (they once got "the PostgreSQL store failed: deadlock detected", and an agent whose
    report it refused failed its intent)."""
    import threading

    import psycopg

    store = await _daemon(postgresql_url, axme_home, "a")
    opened.append(store)
    attempts: list[int] = []
    holding = threading.Event()

    def rival() -> None:
        """Another daemon's transaction: holds lock 2, then wants lock 1, which the store's
        holds while it waits for 2. It never gives up first: the store's is the victim."""
        with psycopg.connect(postgresql_url) as db:
            db.execute("SET deadlock_timeout = '60s'")
            db.execute("SELECT pg_advisory_xact_lock(2)")
            holding.set()
            waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            deadline = time.monotonic() + 10
            while db.execute(waiting).fetchone() == (0,) and time.monotonic() < deadline:
                time.sleep(0.01)
            db.execute("SELECT pg_advisory_xact_lock(1)")
            db.commit()

    def both_locks(tx: PostgresTx) -> tuple[str, list[str]]:
        attempts.append(1)
        tx.execute(b"SELECT pg_advisory_xact_lock(1)")
        tx.execute(b"SELECT pg_advisory_xact_lock(2)")
        return "done", []

    thread = threading.Thread(target=rival)
    thread.start()
    try:
        assert holding.wait(10)
        assert await store._write(both_locks) == "done"  # type: ignore[arg-type]
    finally:
        thread.join(15)
    assert len(attempts) == 2  # rolled back once (the deadlock), then committed
    created, _ = await store.create_intent(_new(1), _id(1))  # the store writes on
    assert created.intent_id == _id(1)


async def test_a_timer_sweep_never_waits_for_an_intent_another_daemon_holds(
    postgresql_url: str, axme_home: Path, opened: list[PostgresStore]
) -> None:
    """Another daemon's rule locks an intent, then drops its timers: a sweep that locked a
    timer and then waited for its intent made the two wait for each other (a deadlock,
    one batch rolled back). The sweep takes the intent with the timer, or skips both."""
    import threading

    import psycopg

    store = await _daemon(postgresql_url, axme_home, "a")
    opened.append(store)
    made, _ = await store.create_intent(_new(0), _id(0))
    await store.lease(AGENT, "w", 1, {})
    state, _ = await store.begin_wait(made.intent_id, "w", 1, "nap", "time", {"seconds": 0})
    assert state["state"] == "waiting"
    holding, release = threading.Event(), threading.Event()

    def rival() -> None:
        """Another daemon's rule on the intent: it holds the row, then drops its timers."""
        with psycopg.connect(postgresql_url) as db:
            db.execute("SELECT 1 FROM intents WHERE intent_id = %s FOR UPDATE", (made.intent_id,))
            holding.set()
            release.wait(10)
            db.execute(
                "DELETE FROM timers WHERE intent_pos = (SELECT pos FROM intents"
                " WHERE intent_id = %s)",
                (made.intent_id,),
            )
            db.rollback()  # it changed its mind: the timer stays

    thread = threading.Thread(target=rival)
    thread.start()
    try:
        assert holding.wait(10)
        threading.Timer(1.5, release.set).start()  # the rival goes on after 1.5 s
        started = time.monotonic()
        effects = await store.fire_timers(time.time())
        took = time.monotonic() - started
    finally:
        release.set()
        thread.join(15)
    assert took < 0.75, f"the sweep waited {took:.2f}s for the rival's intent"
    assert not effects.touched  # skipped: it fires at the next sweep
    effects = await store.fire_timers(time.time())
    assert effects.touched == {made.intent_id}


class _OneWorker:
    """A deliverer with one listening worker "w" that always has room (the dispatcher's
    part in a write that frees a slot)."""

    def __init__(self) -> None:
        self.pushed: list[str] = []

    def claim(self, address: str, intent_id: str) -> str | None:
        return "w"

    def unclaim(self, worker_id: str, intent_id: str) -> None:
        pass

    def free(self, worker_id: str, intent_id: str) -> bool:
        return True

    def unfree(self, worker_id: str, intent_id: str) -> None:
        pass

    def pushed(self, worker_id: str, intent: Intent) -> None:
        self.pushed.append(intent.intent_id)


async def test_a_freed_slot_takes_the_oldest_queued_intent_no_other_daemon_holds(
    postgresql_url: str, axme_home: Path, opened: list[PostgresStore]
) -> None:
    """A completion gives its worker's slot to the next queued intent in the same write.
    Another daemon's writer may hold the oldest (delivering it): waiting for it, holding
    the intents the batch changed before, made two daemons' writers deadlock. The write
    takes the oldest queued intent nobody holds instead."""
    import threading

    import psycopg

    store = await _daemon(postgresql_url, axme_home, "a")
    opened.append(store)
    for n in range(3):
        await store.create_intent(_new(n), _id(n))
    (running, _), *_ = await store.lease(AGENT, "w", 1, {})
    assert running.intent_id == _id(0)
    store.set_deliverer(_OneWorker())
    holding, release = threading.Event(), threading.Event()

    def rival() -> None:
        """Another daemon's writer, delivering the oldest queued intent."""
        with psycopg.connect(postgresql_url) as db:
            db.execute("SELECT 1 FROM intents WHERE intent_id = %s FOR UPDATE", (_id(1),))
            holding.set()
            release.wait(10)
            db.rollback()

    thread = threading.Thread(target=rival)
    thread.start()
    try:
        assert holding.wait(10)
        threading.Timer(1.5, release.set).start()
        started = time.monotonic()
        [done] = await store.report([WorkerReport(_id(0), completed=True)], "w")
        took = time.monotonic() - started
    finally:
        release.set()
        thread.join(15)
    assert isinstance(done, Intent) and done.status is IntentStatus.COMPLETED
    assert took < 0.75, f"the completion waited {took:.2f}s for the rival's intent"
    held, other = await store.get_intent(_id(1)), await store.get_intent(_id(2))
    assert held is not None and held.status is IntentStatus.SUBMITTED
    assert other is not None and other.lease_worker == "w"


async def test_a_create_without_a_key_waits_for_the_server_only_at_its_commit(
    postgresql_url: str, axme_home: Path, opened: list[PostgresStore]
) -> None:
    """Round trips of the writer, counted: a create inserts at a position taken ahead (with
    an earlier COMMIT), so it waits once, for its COMMIT; one with an idempotency key also
    waits for the look at its key and its insert's answer (it may insert nothing)."""
    store = await _daemon(postgresql_url, axme_home, "a")
    opened.append(store)
    tx = store._wtx
    assert isinstance(tx, PostgresTx)
    session = tx.session
    waits: list[int] = []
    reading = session._reading

    def counted(target: object) -> object:
        waits.append(1)
        return reading(target)  # type: ignore[arg-type]

    session._reading = counted  # type: ignore[method-assign]
    await store.create_intent(_new(0), _id(0))  # takes the first block of positions
    waits.clear()
    await store.create_intent(_new(1), _id(1))
    assert len(waits) == 1
    waits.clear()
    keyed = NewIntent(
        intent_type="intent.test.v1",
        to_agent=AGENT,
        payload={},
        idempotency_key="k",
        request_hash="h",
    )
    await store.create_intent(keyed, _id(2))
    assert len(waits) == 3
