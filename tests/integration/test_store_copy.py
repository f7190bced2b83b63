"""`axme store copy`: a SQLite home moved into PostgreSQL keeps its history and carries on.

A home of 10,000 intents is built through the store API (`axme_daemon.growth`, plus waits a
real agent starts); after the copy, a daemon on the PostgreSQL URL shows the same intents,
timelines, steps, tasks, agents and keys, and resumes the waits: an approval, a timer, a
signal. Refusals change nothing."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from axme_daemon.growth import fill
from axme_daemon.intents import NewIntent
from axme_daemon.store.sqlite import SqliteStore
from tests.agents import add_agent, intent, running_pids, send, step_log, wait_final
from tests.daemon import Daemon, run_cli, wait_for

pytestmark = pytest.mark.acceptance  # real daemon processes
ADDRESS = "agent://test/move/ops"
LATER = "agent://test/move/later"  # added after the move
FILLED = 10_000 - 6  # and the six that wait
HOOK = {"webhook": "http://127.0.0.1:9/hook", "secret": "whsec-moved", "on": ["escalation"]}
#: Seconds the moved intent sleeps: longer than stopping, copying and starting take.
NAP = 30
TABLES = {
    *("intents", "events", "steps", "tasks", "timers", "waits", "signals"),
    *("agents", "projects", "api_keys", "workflows", "killed_agents", "inbox_entries"),
}
#: A scenario whose first step waits for an agent that is not there: its workflow row moves.
SCENARIO: dict[str, Any] = {
    "scenario_id": "move.check.v1",
    "agents": [{"role": "checker", "address": "test/move/checker", "create_if_missing": True}],
    "humans": [{"role": "ops"}],
    "workflow": {
        "steps": [
            {"step_id": "check", "tool_id": "tool.agent.task.v1", "assigned_to": "checker"},
            {
                "step_id": "sign",
                "tool_id": "tool.approval.human_signoff",
                "assigned_to": "ops",
                "requires_approval": True,
                "human_task": {"title": "Ship?"},
            },
        ]
    },
    "intent": {"type": "intent.move.check.v1", "payload": {}},
}


def _build(home: Path) -> None:
    """The bulk of the home, through the store API: finished intents with their timelines,
    one in a hundred waiting for a person; a project's sealed hook; an API key."""

    async def build() -> None:
        store = SqliteStore(home / "axme.db", key_file=home / "secrets.key")
        await store.open()
        try:
            await fill(store, FILLED, intent_type="intent.test.filled.v1", to_agent=ADDRESS + "x")
            await store.put_agents("/p/axme.toml", "d1", [], replace_source=True, hooks=[HOOK])
            await store.put_api_key("ci", "a" * 64, ["intents:read"])
        finally:
            await store.close()

    asyncio.run(build())


def _waits(client: httpx.Client, intent_id: str, reason: str) -> None:
    wait_for(
        lambda: intent(client, intent_id)["waiting_reason"] == reason,
        timeout=30,
        what=f"{intent_id} to be {reason}",
    )


def _all_intents(client: httpx.Client) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/intents", params=params).json()
        found.update((i["intent_id"], i) for i in page["intents"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


def _history(client: httpx.Client, intent_ids: list[str]) -> dict[str, Any]:
    return {
        i: (
            client.get(f"/v1/intents/{i}/events").json()["events"],
            client.get(f"/v1/intents/{i}/steps").json()["steps"],
        )
        for i in intent_ids
    }


def _view(client: httpx.Client, sample: list[str]) -> dict[str, Any]:
    """What a user sees of the store through the API."""
    agents = client.get("/v1/agents").json()["agents"]
    return {
        "intents": _all_intents(client),
        "history": _history(client, sample),
        "tasks": client.get("/v1/tasks", params={"limit": 500}).json()["tasks"],
        "agents": [{k: a.get(k) for k in ("address", "env", "command")} for a in agents],
        "keys": client.get("/v1/keys").json()["keys"],
        "inbox": client.get("/v1/inbox", params={"owner_agent": "agent://ops/inbox"}).json(),
    }


def _copy(home: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home, "store", "copy", "--to", url, *extra, timeout=300)


def _tables(url: str) -> dict[str, int]:
    with psycopg.connect(url) as db:
        names = [
            r[0]
            for r in db.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
                " AND table_name NOT IN ('schema_migrations', 'daemons')"
            )
        ]
        return {n: db.execute(f'SELECT count(*) FROM "{n}"'.encode()).fetchone()[0] for n in names}  # type: ignore[index]


def test_a_moved_home_shows_the_same_history_and_resumes_its_waits(
    axme_home: Path, postgresql_url: str
) -> None:
    _build(axme_home)
    log = axme_home / "steps.log"
    source = Daemon(axme_home).start()
    try:
        with source.client() as client:
            env = {"STEP_LOG": str(log), "AGENT_TOKEN": "tok-sealed"}
            add_agent(client, ADDRESS, "waiting_agent.py", axme_home, env=env)
            wait_for(lambda: running_pids(client, ADDRESS), timeout=20, what="the agent")
            approval = send(client, ADDRESS, "intent.test.approval.v1", {})
            signal = send(client, ADDRESS, "intent.test.signal.v1", {})
            _waits(client, approval, "WAITING_FOR_HUMAN")
            _waits(client, signal, "WAITING_FOR_TOOL")
            # A signal kept for a wait to come: its agent is added only after the move.
            early = send(client, LATER, "intent.test.signal.v1", {})
            kept = client.post(f"/v1/intents/{early}/signals/go", json={"data": {"n": 1}}).json()
            assert kept["kept"] is True
            applied = client.post("/v1/scenarios/apply", json=SCENARIO)
            assert applied.status_code == 200, applied.text
            scenario = applied.json()["intent_id"]
            # A thread in an inbox (its `reply_to`), and an agent killed through the mesh.
            body = {"intent_type": "intent.test.thread.v1", "to_agent": LATER + "x"}
            threaded = client.post("/v1/intents", json={**body, "reply_to": "agent://ops/inbox"})
            assert threaded.status_code == 200, threaded.text
            killed = client.post("/v1/mesh/agents/test/move/checker/kill")
            assert killed.status_code == 200, killed.text
            ids = list(_all_intents(client))
            sample = [*random.Random(7).sample(ids, 40), approval, signal, early, scenario]
            before = _view(client, sample)
            # Last, so that its timer is still to fire when the moved daemon starts.
            nap = send(client, ADDRESS, "intent.test.sleep.v1", {"seconds": NAP})
            _waits(client, nap, "WAITING_FOR_TIME")
    finally:
        source.stop()
    assert len(before["intents"]) == 10_000 - 1

    copied = _copy(axme_home, postgresql_url, "--json")
    assert copied.returncode == 0, copied.stderr
    report = json.loads(copied.stdout)
    assert set(report["tables"]) == TABLES
    for table, counts in report["tables"].items():
        assert counts["source"] == counts["target"] > 0, table
    assert report["tables"]["intents"]["target"] == 10_000
    assert report["sealed_secrets"] == 3  # the agent's env, the hook's URL and secret
    assert _tables(postgresql_url) == {t: c["target"] for t, c in report["tables"].items()}
    with psycopg.connect(postgresql_url) as db:  # new delivery cursors go past the copied ones
        row = db.execute(
            "SELECT (SELECT last_value FROM delivery_seq), (SELECT max(delivery_seq) FROM intents)"
        ).fetchone()
        assert row is not None and row[1] > 0 and row[0] >= row[1], row
    rows = sum(c["source"] for c in report["tables"].values())
    assert copied.stderr.splitlines() == [
        f"copying: {n:,} of {rows:,} rows ({n * 100 // rows}%, {table})"
        for n, table in ((50_000, "events"),)
    ]

    moved = Daemon(axme_home, "--store", postgresql_url).start()
    try:
        with moved.client() as client:
            assert intent(client, nap)["status"] == "WAITING", f"moved after {NAP}s: raise NAP"
            after = _view(client, sample)
            assert after["intents"].pop(nap)["status"] == "WAITING"
            assert after == before
            assert len(after["inbox"]["threads"]) == 1
            refused = client.post(
                "/v1/intents", json={"intent_type": "t.v1", "to_agent": "agent://test/move/checker"}
            )
            assert refused.status_code == 403, refused.text

            # The waits carry on: a decision, the timer, a signal; recorded steps replay.
            task = next(t for t in after["tasks"] if t["intent_id"] == approval)
            decided = client.post(
                f"/v1/tasks/{task['task_id']}/decision",
                json={"outcome": "approved", "actor": "ops@example.com"},
            )
            assert decided.status_code == 200, decided.text
            client.post(f"/v1/intents/{signal}/signals/go", json={"data": {"n": 2}})
            add_agent(client, LATER, "waiting_agent.py", axme_home, env={"STEP_LOG": str(log)})
            fresh = send(client, ADDRESS, "intent.test.quick.v1", {})
            final = wait_final(moved, [approval, nap, signal, early, fresh], timeout=NAP + 60)
            assert {i["status"] for i in final.values()} == {"COMPLETED"}, final
            assert final[approval]["result"]["by"] == "ops@example.com"
            assert final[signal]["result"]["signal"]["data"] == {"n": 2}
            assert final[early]["result"]["signal"]["data"] == {"n": 1}
            runs = [(e["intent"], e["step"]) for e in step_log(log)]
            for intent_id, step in ((approval, "validate"), (nap, "before"), (signal, "before")):
                assert runs.count((intent_id, step)) == 1, (intent_id, step)
            assert len(_all_intents(client)) == 10_000 + 1
    finally:
        moved.stop()


def test_the_copy_refuses_while_the_daemon_runs(
    axme_home: Path, daemon: Daemon, postgresql_url: str
) -> None:
    with daemon.client() as client:
        send(client, "agent://test/nobody", "intent.test.v1", {})
    result = _copy(axme_home, postgresql_url)
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == [
        f"axme store copy: the daemon of {axme_home} is running: stop it first (axme daemon stop)"
    ]
    assert _tables(postgresql_url) == {}


def test_a_target_that_holds_rows_is_refused_and_left_as_it_was(
    axme_home: Path, postgresql_url: str
) -> None:
    _build_small(axme_home, 3)
    first = _copy(axme_home, postgresql_url)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith(f"copied {axme_home / 'axme.db'} into postgresql://")
    assert lines[0].endswith("every table counted on both sides")
    assert lines[2].split() == ["intents", "3", "3"]
    before = _tables(postgresql_url)
    _build_small(axme_home, 2)
    result = _copy(axme_home, postgresql_url)
    assert result.returncode == 4, result.stderr
    assert "already holds 3 intents" in result.stderr and len(result.stderr.splitlines()) == 1
    assert _tables(postgresql_url) == before


def test_a_failure_mid_copy_leaves_the_target_empty(axme_home: Path, postgresql_url: str) -> None:
    """A step key PostgreSQL cannot hold (a NUL) fails the copy after the intents and events
    are in: the one transaction takes them, and the schema, back."""

    async def build() -> None:
        store = SqliteStore(axme_home / "axme.db")
        await store.open()
        try:
            await store.create_intent(NewIntent("intent.test.v1", "agent://t/a", {}), "i-1")
            await store.lease("agent://t/a", "w1", 1, {})
            await store.record_step("i-1", 1, "bad\x00key", {"ok": True}, "w1")
        finally:
            await store.close()

    asyncio.run(build())
    result = _copy(axme_home, postgresql_url)
    assert result.returncode == 1
    assert "nothing was copied" in result.stderr and len(result.stderr.splitlines()) == 1
    assert _tables(postgresql_url) == {}


def _build_small(home: Path, n: int) -> None:
    async def build() -> None:
        store = SqliteStore(home / "axme.db")
        await store.open()
        try:
            await fill(store, n, intent_type="intent.test.v1", to_agent="agent://t/a")
        finally:
            await store.close()

    asyncio.run(build())


@pytest.mark.parametrize(
    ("url", "code", "says"),
    [
        ("sqlite:///elsewhere.db", 2, "--to: expected a postgresql://"),
        ("mysql://me:hunter2@db/axme", 2, "'mysql://me:***@db/axme'"),
        ("postgresql://me:hunter2@127.0.0.1:1/axme", 5, "cannot reach the PostgreSQL server"),
    ],
)
def test_a_bad_target_is_one_line_and_changes_nothing(
    axme_home: Path, url: str, code: int, says: str
) -> None:
    _build_small(axme_home, 1)
    before = sorted(p.name for p in axme_home.iterdir())
    result = _copy(axme_home, url)
    assert result.returncode == code, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert says in line and "hunter2" not in line
    assert sorted(p.name for p in axme_home.iterdir()) == before


def test_a_missing_home_is_one_line_and_stays_missing(axme_home: Path) -> None:
    missing = axme_home / "nowhere"
    result = run_cli(axme_home, "--home", str(missing), "store", "copy", "--to", "postgresql://x/y")
    assert result.returncode == 3
    assert result.stderr.strip() == (
        f"axme store copy: no axme home at {missing} (set --home or AXME_HOME)"
    )
    assert not missing.exists()
