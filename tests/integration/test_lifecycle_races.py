"""The lifecycle rules hold with more than one writer: each test lets a competing write
land between a rule's read and its write (as another daemon's transaction can at
PostgreSQL's READ COMMITTED), and checks that the rule's conditional write notices.

SQLite's single writer never interleaves like this by itself; `Interleaved` makes it do so
inside one real transaction, on every backend. On PostgreSQL the rival also runs as a
separate connection's transaction, committed while the rule's is open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import pytest

from axme_cli.errors import Conflict, IdempotencyConflict
from axme_daemon.intents import NewIntent
from axme_daemon.lifecycle import delivery, human, timers, work
from axme_daemon.lifecycle.tx import Row, StaleWrite, Tx
from axme_daemon.store import Store
from axme_daemon.store.sqlite import SqliteStore

AGENT = "agent://test/a"
LATER = 10**10


@pytest.fixture
def store(backend_store: Store) -> SqliteStore:
    assert isinstance(backend_store, SqliteStore)  # the PostgreSQL store shares its writes
    return backend_store


def _holder(worker_id: str, seq: int) -> delivery.Holder:
    return delivery.Holder(worker_id, None, lambda: seq)


class Interleaved:
    """A `Tx` that runs `rival` (another writer's whole write) once, just before the
    first time the rule under test runs `query`."""

    def __init__(self, tx: Tx, query: str, rival: Callable[[Tx], object]) -> None:
        self._tx, self._query, self._rival = tx, query, rival
        self.rival_ran = False

    def _before(self, query: str) -> None:
        if query == self._query and not self.rival_ran:
            self.rival_ran = True
            self._rival(self._tx)

    def one(self, query: str, **params: Any) -> Row | None:
        self._before(query)
        return self._tx.one(query, **params)

    def all(self, query: str, **params: Any) -> list[Row]:
        self._before(query)
        return self._tx.all(query, **params)

    def run(self, query: str, **params: Any) -> int:
        self._before(query)
        return self._tx.run(query, **params)

    def write(self, query: str, **params: Any) -> None:
        self._before(query)
        self._tx.write(query, **params)

    def insert(self, query: str, **params: Any) -> int | None:
        self._before(query)
        return self._tx.insert(query, **params)

    def run_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self._before(query)
        self._tx.run_many(query, rows)

    def savepoint(self) -> AbstractContextManager[None]:
        return self._tx.savepoint()


async def _raced(
    store: SqliteStore,
    rule: Callable[[Tx], Any],
    query: str,
    rival: Callable[[Tx], object],
) -> Any:
    """`rule` run in one store write, with `rival` landing just before its `query`."""

    def op(tx: Tx) -> tuple[Any, list[str]]:
        racing = Interleaved(tx, query, rival)
        result: tuple[Any, list[str]] = rule(racing)
        assert racing.rival_ran, f"the rule never ran {query}"
        return result

    return await store._write(op)


def _new(n: int = 0, **kw: Any) -> NewIntent:
    return NewIntent(**{"intent_type": "t.v1", "to_agent": AGENT, "payload": {"n": n}, **kw})


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


async def _types(store: SqliteStore, intent_id: str) -> list[str]:
    return [e.event_type for e in await store.list_events(intent_id)]


async def test_a_decision_that_lost_the_race_is_a_conflict(store: SqliteStore) -> None:
    intent, _, _ = await store.create_task_intent(_new(human_task={"title": "Ship?"}), _id(0))
    (task,) = await store.list_tasks(intent_id=intent.intent_id)

    def alice(tx: Tx) -> object:
        return human.decide(tx, task.task_id, "approved", "alice", None, {})

    def bob(tx: Tx) -> object:
        return human.decide(tx, task.task_id, "rejected", "bob", None, {})

    with pytest.raises(Conflict, match="already decided"):
        await _raced(store, alice, "decide_task", bob)
    (decided,) = await store.list_tasks(intent_id=intent.intent_id)
    assert decided.decision is not None and decided.decision["actor"] == "bob"
    assert (await _types(store, intent.intent_id)).count("intent.human_task_decided") == 1
    got = await store.get_intent(intent.intent_id)
    assert got is not None and got.error["message"] == "rejected by bob"


async def test_a_claim_that_lost_the_race_leases_nothing(store: SqliteStore) -> None:
    await store.create_intent(_new(), _id(0))

    def w1(tx: Tx) -> tuple[Any, list[str]]:
        return delivery.lease(tx, AGENT, _holder("w1", 1), 1, {})

    def w2(tx: Tx) -> object:
        return delivery.lease(tx, AGENT, _holder("w2", 2), 1, {})

    leased = await _raced(store, w1, "update_intent", w2)
    assert leased == []
    got = await store.get_intent(_id(0))
    assert got is not None and got.lease_worker == "w2" and got.delivery_attempt == 1
    assert (await _types(store, _id(0))).count("intent.delivered") == 1


async def test_a_timer_another_writer_fired_first_does_not_fire_again(
    store: SqliteStore,
) -> None:
    spec = {"title": "Ship?", "remind_after_seconds": 60}  # one reminder
    intent, _, _ = await store.create_task_intent(_new(human_task=spec), _id(0))

    def fire(tx: Tx) -> tuple[Any, list[str]]:
        return timers.fire_timers(tx, LATER)

    effects = await _raced(store, fire, "delete_timer", fire)
    assert effects.notices == []  # the rival fired it
    assert (await _types(store, intent.intent_id)).count("intent.reminder") == 1
    (task,) = await store.list_tasks(intent_id=intent.intent_id)
    assert task.reminders == 1


async def test_the_next_event_number_is_never_taken_twice(store: SqliteStore) -> None:
    await store.create_intent(_new(), _id(0))

    def note(message: str) -> Callable[[Tx], tuple[Any, list[str]]]:
        return lambda tx: work.progress(tx, _id(0), message, {}, None)

    with pytest.raises(StaleWrite):
        await _raced(store, note("mine"), "update_intent", note("theirs"))
    events = await store.list_events(_id(0))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.details["message"] for e in events if e.event_type == "intent.progress"] == [  # type: ignore[index]
        "theirs"
    ]
    got = await store.get_intent(_id(0))
    assert got is not None and got.last_seq == len(events)


async def test_an_idempotency_key_another_writer_took_meanwhile_answers_its_intent(
    store: SqliteStore,
) -> None:
    new = _new(idempotency_key="k1", request_hash="h1")

    def mine(tx: Tx) -> tuple[Any, list[str]]:
        return work.create(tx, new, _id(1))

    def theirs(tx: Tx) -> object:
        return work.create(tx, new, _id(2))

    intent, created = await _raced(store, mine, "insert_intent", theirs)
    assert not created and intent.intent_id == _id(2)
    assert await store.get_intent(_id(1)) is None
    other = _new(idempotency_key="k2", request_hash="h2")
    with pytest.raises(IdempotencyConflict):
        await _raced(
            store,
            lambda tx: work.create(tx, _new(idempotency_key="k2", request_hash="other"), _id(3)),
            "insert_intent",
            lambda tx: work.create(tx, other, _id(4)),
        )


def _other_connection(store_url: str) -> Callable[[Callable[[Tx], Any]], Any]:
    """Runs a write as another daemon's transaction on the same database, committed when
    it returns; PostgreSQL only (SQLite has one writer at a time)."""
    if not store_url.startswith("postgresql://"):
        pytest.skip("one writer at a time on SQLite: no other connection can commit meanwhile")
    import psycopg

    from axme_daemon.store.postgres_session import Session
    from axme_daemon.store.postgres_tx import PostgresTx

    def run(write: Callable[[Tx], Any]) -> Any:
        with psycopg.connect(store_url, autocommit=True) as db:
            session = Session(db)
            session.begin()
            tx = PostgresTx(session)
            result = write(tx)
            tx.flush()  # the events it kept to send with the COMMIT
            session.commit()
            return result

    return run


async def test_a_decision_committed_by_another_connection_meanwhile_wins(
    store: SqliteStore, store_url: str
) -> None:
    """Two daemons' transactions on one PostgreSQL database, truly at once."""
    other = _other_connection(store_url)
    intent, _, _ = await store.create_task_intent(_new(human_task={"title": "Ship?"}), _id(0))
    (task,) = await store.list_tasks(intent_id=intent.intent_id)

    def other_daemon(_: Tx) -> None:
        other(lambda tx: human.decide(tx, task.task_id, "rejected", "bob", None, {}))

    def alice(tx: Tx) -> object:
        return human.decide(tx, task.task_id, "approved", "alice", None, {})

    with pytest.raises(Conflict, match="already decided"):
        await _raced(store, alice, "decide_task", other_daemon)
    (decided,) = await store.list_tasks(intent_id=intent.intent_id)
    assert decided.decision is not None and decided.decision["actor"] == "bob"
    assert (await _types(store, intent.intent_id)).count("intent.human_task_decided") == 1


async def test_another_daemons_claim_skips_the_intent_a_claim_holds(
    store: SqliteStore, store_url: str
) -> None:
    other = _other_connection(store_url)
    await store.create_intent(_new(0), _id(0))
    await store.create_intent(_new(1), _id(1))
    theirs: list[Any] = []

    def w1(tx: Tx) -> tuple[Any, list[str]]:
        return delivery.lease(tx, AGENT, _holder("w1", 1), 1, {})

    def w2(_: Tx) -> None:  # while w1's transaction holds the oldest, locked
        theirs.extend(other(lambda tx: delivery.lease(tx, AGENT, _holder("w2", 2), 1, {})[0]))

    ours = await _raced(store, w1, "update_intent", w2)
    assert [i.intent_id for i, _ in ours] == [_id(0)]
    assert [i.intent_id for i, _ in theirs] == [_id(1)]  # the next one, not the held one
    for n in range(2):
        assert (await _types(store, _id(n))).count("intent.delivered") == 1


async def test_another_daemons_timer_sweep_skips_the_timers_a_sweep_holds(
    store: SqliteStore, store_url: str
) -> None:
    other = _other_connection(store_url)
    spec = {"title": "Ship?", "remind_after_seconds": 60}
    intent, _, _ = await store.create_task_intent(_new(human_task=spec), _id(0))
    theirs: list[Any] = []

    def fire(tx: Tx) -> tuple[Any, list[str]]:
        return timers.fire_timers(tx, LATER)

    def rival(_: Tx) -> None:
        theirs.append(other(lambda tx: timers.fire_timers(tx, LATER)[0]))

    effects = await _raced(store, fire, "delete_timer", rival)
    assert [n["event"] for n in effects.notices] == ["reminder"]
    assert theirs[0].notices == []  # it skipped the locked timer
    assert (await _types(store, intent.intent_id)).count("intent.reminder") == 1


async def test_another_daemons_create_with_the_same_idempotency_key_meanwhile_wins(
    store: SqliteStore, store_url: str
) -> None:
    other = _other_connection(store_url)
    new = _new(idempotency_key="k1", request_hash="h1")

    def other_daemon(_: Tx) -> None:
        other(lambda tx: work.create(tx, new, _id(2)))

    intent, created = await _raced(
        store, lambda tx: work.create(tx, new, _id(1)), "insert_intent", other_daemon
    )
    assert not created and intent.intent_id == _id(2)
    assert await store.get_intent(_id(1)) is None
