"""The Store contract: every backend must pass this same suite (SQLite today)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from axme_cli.errors import AlreadyFinal, IdempotencyConflict, NotFound
from axme_cli.protocol import IntentStatus
from axme_daemon.intents import NewIntent
from axme_daemon.store import IntentFilter, Store, open_store


def _new(n: int = 0, **kw: object) -> NewIntent:
    fields: dict[str, object] = {
        "intent_type": "intent.test.v1",
        "to_agent": "agent://test/a",
        "payload": {"n": n},
    }
    fields.update(kw)
    return NewIntent(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, axme_home: Path) -> AsyncIterator[Store]:
    s = open_store(f"sqlite:///{axme_home / 'contract.db'}")
    await s.open()
    yield s
    await s.close()


async def test_create_appends_created_and_submitted(store: Store) -> None:
    intent, created = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")
    assert created and intent.status is IntentStatus.SUBMITTED and intent.last_seq == 2
    fetched = await store.get_intent(intent.intent_id)
    assert fetched == intent
    events = await store.list_events(intent.intent_id)
    assert [(e.seq, e.event_type, e.status) for e in events] == [
        (1, "intent.created", IntentStatus.CREATED),
        (2, "intent.submitted", IntentStatus.SUBMITTED),
    ]
    assert [e.seq for e in await store.list_events(intent.intent_id, since=1)] == [2]
    assert await store.list_events(intent.intent_id, since=2) == []


async def test_idempotency_key_replays_or_conflicts(store: Store) -> None:
    first, created = await store.create_intent(
        _new(idempotency_key="k1", request_hash="h1"), "00000000-0000-4000-8000-000000000001"
    )
    again, created_again = await store.create_intent(
        _new(idempotency_key="k1", request_hash="h1"), "00000000-0000-4000-8000-000000000002"
    )
    assert created and not created_again and again.intent_id == first.intent_id
    with pytest.raises(IdempotencyConflict):
        await store.create_intent(
            _new(idempotency_key="k1", request_hash="other"),
            "00000000-0000-4000-8000-000000000003",
        )
    page = await store.list_intents(IntentFilter(), 10, None)
    assert [i.intent_id for i in page.intents] == [first.intent_id]


async def test_transition_appends_one_event_and_final_is_final(store: Store) -> None:
    intent, _ = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")
    done, event = await store.transition(
        intent.intent_id,
        IntentStatus.COMPLETED,
        actor="alice",
        details={"result": {"ok": 1}},
        result={"ok": 1},
    )
    assert done.status is IntentStatus.COMPLETED and done.result == {"ok": 1}
    assert (event.seq, event.event_type, event.actor) == (3, "intent.completed", "alice")
    assert await store.get_intent(intent.intent_id) == done
    with pytest.raises(AlreadyFinal):
        await store.transition(intent.intent_id, IntentStatus.CANCELED)
    assert len(await store.list_events(intent.intent_id)) == 3
    with pytest.raises(NotFound):
        await store.transition("00000000-0000-4000-8000-00000000ffff", IntentStatus.CANCELED)


async def test_list_filters_and_pages_newest_first(store: Store) -> None:
    ids = []
    for n in range(7):
        agent = "agent://test/even" if n % 2 == 0 else "agent://test/odd"
        intent, _ = await store.create_intent(
            _new(n, to_agent=agent), f"00000000-0000-4000-8000-{n:012d}"
        )
        ids.append(intent.intent_id)
    await store.transition(ids[3], IntentStatus.FAILED, error={"message": "boom"})
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_intents(IntentFilter(), 3, cursor)
        seen += [i.intent_id for i in page.intents]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids[::-1]
    even = await store.list_intents(IntentFilter(to_agent="agent://test/even"), 10, None)
    assert [i.payload["n"] for i in even.intents] == [6, 4, 2, 0]
    failed = await store.list_intents(IntentFilter(status=IntentStatus.FAILED), 10, None)
    assert [i.intent_id for i in failed.intents] == [ids[3]]
    prefixed = await store.list_intents(
        IntentFilter(id_prefix="00000000-0000-4000-8000-0000000000"), 10, None
    )
    assert len(prefixed.intents) == 7
    one = await store.list_intents(IntentFilter(id_prefix=ids[5]), 10, None)
    assert [i.intent_id for i in one.intents] == [ids[5]]


async def test_concurrent_writes_are_group_committed(store: Store) -> None:
    before = store.stats()
    results = await asyncio.gather(
        *(store.create_intent(_new(n), f"00000000-0000-4000-8000-{n:012d}") for n in range(200))
    )
    assert all(created for _, created in results)
    after = store.stats()
    assert after.writes - before.writes == 200
    assert after.commits - before.commits < 20, "group commit should share transactions"


async def test_a_failing_write_does_not_fail_its_batch_mates(store: Store) -> None:
    intent, _ = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")
    await store.transition(intent.intent_id, IntentStatus.CANCELED)
    outcomes = await asyncio.gather(
        store.transition(intent.intent_id, IntentStatus.COMPLETED),
        *(store.create_intent(_new(n), f"00000000-0000-4000-8000-{n + 10:012d}") for n in range(5)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], AlreadyFinal)
    assert all(isinstance(o, tuple) for o in outcomes[1:])
    assert len((await store.list_intents(IntentFilter(), 10, None)).intents) == 6


async def test_data_survives_reopen(store: Store, axme_home: Path) -> None:
    intent, _ = await store.create_intent(_new(), "00000000-0000-4000-8000-000000000001")
    await store.close()
    reopened = open_store(f"sqlite:///{axme_home / 'contract.db'}")
    await reopened.open()
    try:
        assert await reopened.get_intent(intent.intent_id) == intent
    finally:
        await reopened.close()
    await store.open()  # the fixture closes it again
