"""The Store contract, part three: daemons sharing a store. Two stores opened on one
database stand for two daemons (on SQLite, two runs of daemons on one file, one at a time).

A lease names the daemon its worker is connected to; a restarting daemon ends only its own;
another daemon's heartbeat ends those of a daemon whose heartbeat lapsed; on a shared store
each daemon's agents are its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from axme_cli.protocol import IntentStatus
from axme_daemon.intents import NewIntent
from axme_daemon.store import Store, open_store
from axme_daemon.store.base import DaemonInfo

AGENT = "agent://test/a"


def _new(n: int) -> NewIntent:
    return NewIntent(intent_type="intent.test.v1", to_agent=AGENT, payload={"n": n})


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _info(daemon_id: str, lease_grace: float = 10.0) -> DaemonInfo:
    return DaemonInfo(daemon_id, "host-" + daemon_id, 4242, f"/homes/{daemon_id}", lease_grace)


@pytest.fixture
async def stores(store_url: str, axme_home: Path) -> AsyncIterator[dict[str, Store]]:
    """Daemons "a" (lease grace 0.3 s) and "b" (10 s), registered, on one database."""
    out: dict[str, Store] = {}
    for daemon_id, grace in (("a", 0.3), ("b", 10.0)):
        store = open_store(store_url, key_file=axme_home / "secrets.key")
        store.set_daemon(_info(daemon_id, grace))
        await store.open()
        await store.register_daemon()
        out[daemon_id] = store
    yield out
    for store in out.values():
        await store.close()


async def test_a_daemon_registers_heartbeats_and_leaves(stores: dict[str, Store]) -> None:
    a, b = stores["a"], stores["b"]
    rows = {d["daemon_id"]: d for d in await b.list_daemons()}
    assert set(rows) == {"a", "b"}
    assert rows["b"]["live"] and rows["b"]["host"] == "host-b" and rows["b"]["pid"] == 4242
    assert rows["b"]["home"] == "/homes/b" and rows["b"]["lease_grace"] == 10.0
    assert 9 < rows["b"]["lapses_in"] <= 10
    before = rows["b"]["heartbeat_at"]
    assert await b.heartbeat() == []
    (after,) = [d["heartbeat_at"] for d in await b.list_daemons() if d["daemon_id"] == "b"]
    assert after >= before
    await a.unregister_daemon()
    assert [d["daemon_id"] for d in await b.list_daemons()] == ["b"]
    assert await a.heartbeat() == []  # a heartbeat of a daemon whose row went makes it again
    assert {d["daemon_id"] for d in await b.list_daemons()} == {"a", "b"}


async def test_a_restarting_daemon_ends_only_its_own_leases(stores: dict[str, Store]) -> None:
    a, b = stores["a"], stores["b"]
    for n in range(2):
        await a.create_intent(_new(n), _id(n))
    (mine,) = await a.lease(AGENT, "wa", 1, {})
    (theirs,) = await b.lease(AGENT, "wb", 1, {})
    assert mine[0].lease_daemon == "a" and theirs[0].lease_daemon == "b"
    released = await a.release(reason="the daemon restarted")
    if not a.shared:  # one daemon per SQLite file: every lease in it was the last run's
        assert {i.intent_id for i, _ in released} == {mine[0].intent_id, theirs[0].intent_id}
        return
    assert [i.intent_id for i, _ in released] == [mine[0].intent_id]
    kept = await b.get_intent(theirs[0].intent_id)
    assert kept is not None and kept.lease_worker == "wb" and kept.lease_daemon == "b"
    assert kept.status is IntentStatus.DELIVERED
    back = await a.get_intent(mine[0].intent_id)
    assert back is not None and back.lease_worker is None and back.lease_daemon is None


async def test_a_daemon_whose_heartbeat_lapsed_has_its_leases_ended_by_another(
    stores: dict[str, Store],
) -> None:
    a, b = stores["a"], stores["b"]
    await a.create_intent(_new(0), _id(0))
    await a.lease(AGENT, "wa", 1, {})
    keepalive = getattr(a, "keepalive", None)  # a dies: no thread of it renews its row
    if keepalive is not None:
        keepalive.stop()
    deadline = asyncio.get_running_loop().time() + 5
    while not (ended := await b.heartbeat()):  # a's heartbeat lapses 0.3 s after its last
        assert asyncio.get_running_loop().time() < deadline, "a's lease never lapsed"
        await asyncio.sleep(0.05)
    [(intent, event)] = ended
    assert intent.intent_id == _id(0) and intent.status is IntentStatus.SUBMITTED
    assert intent.lease_worker is None and intent.lease_daemon is None
    assert event.details == {
        "reason": "daemon a stopped heartbeating: its lease lapsed",
        "delivery_attempt": 1,
        "daemon": "a",
    }
    # b's own leases never lapse on its own heartbeat, however old.
    await b.lease(AGENT, "wb", 1, {})
    assert await b.heartbeat() == []
    assert await a.heartbeat() == []  # a, back, keeps b's: b's heartbeat is live
    held = await a.get_intent(_id(0))
    assert held is not None and held.lease_daemon == "b"


async def test_an_idempotency_key_holds_across_daemons(stores: dict[str, Store]) -> None:
    a, b = stores["a"], stores["b"]
    new = NewIntent(
        intent_type="intent.test.v1",
        to_agent=AGENT,
        payload={"n": 0},
        idempotency_key="k1",
        request_hash="h1",
    )
    (one, made), (two, again) = await asyncio.gather(
        a.create_intent(new, _id(1)), b.create_intent(new, _id(2))
    )
    assert sorted([made, again]) == [False, True]
    assert one.intent_id == two.intent_id


async def test_on_a_shared_store_each_daemon_runs_its_own_agents(
    stores: dict[str, Store],
) -> None:
    a, b = stores["a"], stores["b"]
    spec = {"address": AGENT, "command": ["run"], "cwd": "/a"}
    await a.put_agents("/a/axme.toml", "d1", [spec], replace_source=True, hooks=[])
    await b.put_agents("/b/axme.toml", "d2", [{**spec, "cwd": "/b"}], replace_source=True)
    if not a.shared:  # one daemon per SQLite file: its agents are the file's
        assert [s["cwd"] for s in await b.list_agents()] == ["/b"]
        return
    assert [s["cwd"] for s in await a.list_agents()] == ["/a"]
    assert [s["cwd"] for s in await b.list_agents()] == ["/b"]
    assert [p["config_path"] for p in await b.list_projects()] == ["/b/axme.toml"]
    assert await b.delete_agent(AGENT)
    assert [s["cwd"] for s in await a.list_agents()] == ["/a"]


async def test_agents_nobody_owns_go_to_the_first_daemon_that_registers(
    store_url: str, axme_home: Path
) -> None:
    """Written before daemons owned their agents, or copied in from a SQLite home."""
    spec = {"address": AGENT, "command": ["run"], "cwd": "/old"}
    stores = [open_store(store_url, key_file=axme_home / "secrets.key") for _ in range(3)]
    tool, a, b = stores
    try:
        await tool.open()  # no daemon: what it writes, nobody owns
        await tool.put_agents("/old/axme.toml", "d0", [spec], replace_source=True, hooks=[])
        for store, daemon_id in ((a, "a"), (b, "b")):
            store.set_daemon(_info(daemon_id))
            await store.open()
            await store.register_daemon()
        assert [s["cwd"] for s in await a.list_agents()] == ["/old"]
        assert [p["config_path"] for p in await a.list_projects()] == ["/old/axme.toml"]
        # b came second: on a shared store nothing is left for it; on SQLite all is the file's.
        assert len(await b.list_agents()) == (0 if b.shared else 1)
    finally:
        for store in stores:
            await store.close()


async def test_delivery_cursors_are_unique_across_daemons_and_grow_per_worker(
    stores: dict[str, Store],
) -> None:
    a, b = stores["a"], stores["b"]
    for n in range(8):
        await a.create_intent(_new(n), _id(n))
    leased = []
    for store, worker in ((a, "wa"), (b, "wb"), (a, "wa"), (b, "wb")) * 2:
        (got,) = await store.lease(AGENT, worker, 1, {})
        leased.append(got[0])
    for worker, store in (("wa", a), ("wb", b)):
        mine = [i.delivery_seq for i in leased if i.lease_worker == worker]
        assert mine == sorted(mine) and len(set(mine)) == 4
        # A reconnecting stream gets what it holds past its cursor, and nothing of the other's.
        again = await store.leased_to(worker, mine[1])
        assert [i.delivery_seq for i in again] == mine[2:]
    if a.shared:  # one sequence for all daemons (SQLite: one daemon per file counts its own)
        assert len({i.delivery_seq for i in leased}) == len(leased)


async def _lapse(a: Store, b: Store) -> None:
    """`a` dies (no thread of it renews its row): wait until `b` sees its heartbeat lapse."""
    keepalive = getattr(a, "keepalive", None)
    if keepalive is not None:
        keepalive.stop()
    deadline = asyncio.get_running_loop().time() + 5
    while any(d["live"] for d in await b.list_daemons() if d["daemon_id"] == "a"):
        assert asyncio.get_running_loop().time() < deadline, "a's heartbeat never lapsed"
        await asyncio.sleep(0.05)


async def test_a_daemon_says_what_its_workers_listen_for_and_a_restart_forgets_it(
    stores: dict[str, Store],
) -> None:
    a, b = stores["a"], stores["b"]
    assert {d["daemon_id"]: d["listening"] for d in await b.list_daemons()} == {"a": [], "b": []}
    await a.set_listening(["agent://test/z", AGENT])
    listening = {d["daemon_id"]: d["listening"] for d in await b.list_daemons()}
    assert listening == {"a": [AGENT, "agent://test/z"], "b": []}
    await a.register_daemon()  # its home's next run: the workers went with the last one
    assert [d["listening"] for d in await b.list_daemons() if d["daemon_id"] == "a"] == [[]]


async def test_leases_are_counted_by_the_daemon_whose_worker_holds_them(
    stores: dict[str, Store],
) -> None:
    a, b = stores["a"], stores["b"]
    for n in range(3):
        await a.create_intent(_new(n), _id(n))
    assert await b.leases_by_daemon() == {}
    await a.lease(AGENT, "wa", 2, {})
    await b.lease(AGENT, "wb", 1, {})
    assert await a.leases_by_daemon() == {"a": 2, "b": 1}


async def test_an_agent_is_known_while_a_live_daemon_registers_it_or_listens_for_it(
    stores: dict[str, Store],
) -> None:
    a, b = stores["a"], stores["b"]
    assert await b.known_addresses() == set()
    gone = {"address": "agent://test/gone", "command": ["run"], "cwd": "/a"}
    spec = {"address": AGENT, "command": ["run"], "cwd": "/a"}
    await a.put_agents("/a/axme.toml", "d1", [spec, gone], replace_source=True, hooks=[])
    assert await a.set_agent_removed("agent://test/gone", True)
    await a.set_listening(["agent://test/listener"])
    assert await b.known_addresses() == {AGENT, "agent://test/listener"}
    await _lapse(a, b)
    # A dead daemon serves nothing; on SQLite the file's agents stay known (one daemon).
    assert await b.known_addresses() == (set() if b.shared else {AGENT})
