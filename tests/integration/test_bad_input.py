"""Bad input changes nothing: numbers JSON cannot carry, durations out of bounds, waits
with the wrong arguments, human-task creates that fail half way, streams that cannot be
served. Each is a 4xx naming the field, and the store is as it was."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_cli.protocol import MAX_DURATION_SECONDS
from axme_daemon.api import create_app
from axme_daemon.config import load_settings
from axme_daemon.engine import Engine
from axme_daemon.store.sqlite import SqliteStore
from tests.integration.test_api import GOOD, all_intents, assert_error, events

#: What Python's json reads as a float that is not finite (or cannot read at all).
NOT_FINITE = [
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    pytest.param("9" * 5000, id="5000-digits"),
]
STREAM = "/v1/agents/acme/dev/echo/intents/stream"


@pytest.fixture
async def api(axme_home: Path, store: SqliteStore) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Engine(store), load_settings(axme_home))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://axme") as client:
        yield client


async def post_text(api: httpx.AsyncClient, path: str, text: str) -> httpx.Response:
    """A body as written: the JSON encoders of clients refuse NaN, a hand-written body not."""
    return await api.post(path, content=text, headers={"content-type": "application/json"})


def create_text(**fields: str) -> str:
    """A create's body with some values written out as raw JSON text."""
    parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in GOOD.items() if k not in fields]
    parts += [f"{json.dumps(k)}: {v}" for k, v in fields.items()]
    return "{" + ", ".join(parts) + "}"


async def tasks(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/v1/tasks", params={"status": ""})
    assert response.status_code == 200, response.text
    return response.json()["tasks"]  # type: ignore[no-any-return]


async def state(api: httpx.AsyncClient, intent_id: str) -> tuple[dict[str, Any], list[dict]]:
    """An intent and its timeline, to compare before and after a refused request."""
    response = await api.get(f"/v1/intents/{intent_id}")
    assert response.status_code == 200, response.text
    intent = response.json()["intent"]
    steps = (await api.get(f"/v1/intents/{intent_id}/steps")).json()["steps"]
    return {**intent, "steps": steps}, await events(api, intent_id)


async def deliveries(api: httpx.AsyncClient) -> str:
    """What an agent stream for GOOD's address sends at once (empty: nothing to lease)."""
    response = await api.get(STREAM, params={"wait_seconds": 0})
    assert response.status_code == 200, response.text
    return "".join(line for line in response.text.splitlines() if line.startswith("event: intent."))


async def assert_nothing_stored(api: httpx.AsyncClient) -> None:
    assert await all_intents(api) == []
    assert await tasks(api) == []
    assert await deliveries(api) == ""


# -- 6: numbers JSON cannot carry ---------------------------------------------------------


@pytest.mark.parametrize("literal", NOT_FINITE)
async def test_a_create_with_a_non_finite_number_is_422_naming_the_field(
    api: httpx.AsyncClient, literal: str
) -> None:
    body = create_text(payload=f'{{"items": [0, {{"price": {literal}}}]}}')
    response = await post_text(api, "/v1/intents", body)
    assert_error(response, 422, "validation_error", "payload.items.1.price", "finite")
    await assert_nothing_stored(api)


async def test_a_non_finite_number_in_a_human_task_is_422(api: httpx.AsyncClient) -> None:
    body = create_text(human_task='{"title": "Ship?", "deadline_seconds": NaN}')
    response = await post_text(api, "/v1/intents", body)
    assert_error(response, 422, "validation_error", "human_task.deadline_seconds")
    await assert_nothing_stored(api)


#: Every other body the API takes that can carry a number: (path under the intent, body).
BODIES = [
    ("/resolve", '{"status": "COMPLETED", "result": {"x": %s}}', "result.x"),
    ("/resume", '{"action": "complete", "result": {"x": [1, %s]}}', "result.x.1"),
    ("/steps", '{"ordinal": 1, "key": "fetch", "result": %s}', "result"),
    ("/steps", '{"steps": [{"ordinal": 1, "key": "fetch", "result": %s}]}', "steps.0.result"),
    ("/progress", '{"message": "half", "data": {"done": %s}}', "data.done"),
    ("/signals/go", '{"data": {"level": %s}}', "data.level"),
    (
        "/waits",
        '{"ordinal": 1, "key": "nap", "kind": "time", "arguments": {"seconds": %s}}',
        "arguments.seconds",
    ),
    (
        "",  # /v1/reports
        '{"reports": [{"intent_id": "ID", "outcome": {"action": "complete", "result": %s}}]}',
        "reports.0.outcome.result",
    ),
]


@pytest.mark.parametrize("literal", ["NaN", "-1e400"])
@pytest.mark.parametrize(("suffix", "template", "field"), BODIES)
async def test_every_body_refuses_non_finite_numbers_and_changes_nothing(
    api: httpx.AsyncClient, suffix: str, template: str, field: str, literal: str
) -> None:
    intent_id = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    before = await state(api, intent_id)
    path = f"/v1/intents/{intent_id}{suffix}" if suffix else "/v1/reports"
    response = await post_text(api, path, template.replace("ID", intent_id) % literal)
    assert_error(response, 422, "validation_error", field, literal)
    assert await state(api, intent_id) == before


async def test_a_decision_with_a_non_finite_number_leaves_the_task_pending(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post("/v1/intents", json={**GOOD, "human_task": {"title": "Ship?"}})
    (task,) = await tasks(api)
    body = '{"outcome": "approved", "data": {"score": Infinity}}'
    response = await post_text(api, f"/v1/tasks/{task['task_id']}/decision", body)
    assert_error(response, 422, "validation_error", "data.score")
    assert (await tasks(api))[0]["status"] == "PENDING"
    intent_id = created.json()["intent_id"]
    assert (await api.get(f"/v1/intents/{intent_id}")).json()["status"] == "WAITING"


async def test_finite_numbers_and_words_like_nan_in_strings_are_kept(
    api: httpx.AsyncClient,
) -> None:
    payload = {"big": 1e308, "tiny": 1e-400, "long": 10**99, "say": "NaN Infinity e999"}
    created = await api.post("/v1/intents", json={**GOOD, "payload": payload})
    assert created.status_code == 200, created.text
    got = await api.get(f"/v1/intents/{created.json()['intent_id']}")
    assert got.json()["payload"] == {**payload, "tiny": 0.0}


async def test_the_store_refuses_to_write_what_is_not_json(store: SqliteStore) -> None:
    """The last line: should a non-finite number get past the edge, nothing is written."""
    from axme_daemon.intents import NewIntent

    new = NewIntent(GOOD["intent_type"], GOOD["to_agent"], {"x": float("inf")})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON"):
        await store.create_intent(new, "00000000-0000-4000-8000-000000000001")
    assert await store.get_intent("00000000-0000-4000-8000-000000000001") is None


# -- 7: a create with a human task is all or nothing; durations have bounds ----------------


async def test_a_human_task_deadline_too_far_is_422_and_nothing_is_stored_or_leased(
    api: httpx.AsyncClient,
) -> None:
    body = {**GOOD, "human_task": {"title": "Ship?", "deadline_seconds": 1e308}}
    response = await api.post("/v1/intents", json=body)
    assert_error(response, 422, "validation_error", "deadline_seconds")
    await assert_nothing_stored(api)


#: Each bounded field of a human task, a value past its bound, and the bound itself.
BOUNDS = [
    ("deadline_seconds", MAX_DURATION_SECONDS + 1, MAX_DURATION_SECONDS),
    ("deadline_seconds", 0, 0.5),
    ("remind_after_seconds", MAX_DURATION_SECONDS * 2, MAX_DURATION_SECONDS),
    ("remind_after_seconds", 0.001, 1),
    ("remind_interval_seconds", 1e12, MAX_DURATION_SECONDS),
    ("remind_interval_seconds", 0.001, 1),
    ("max_reminders", 1001, 1000),
    ("max_reminders", -1, 0),
]


@pytest.mark.parametrize(("field", "bad", "good"), BOUNDS)
async def test_human_task_timing_out_of_bounds_is_422_and_the_bound_is_accepted(
    api: httpx.AsyncClient, field: str, bad: float, good: float
) -> None:
    human_task: dict[str, Any] = {"title": "Ship?", "remind_interval_seconds": 60}
    response = await api.post(
        "/v1/intents", json={**GOOD, "human_task": {**human_task, field: bad}}
    )
    assert_error(response, 422, "validation_error", f"human_task: {field}")
    await assert_nothing_stored(api)
    # To an address nobody listened on (the check above did on GOOD's): a person's own task.
    gate = {**GOOD, "to_agent": "agent://acme/dev/gate"}
    response = await api.post(
        "/v1/intents", json={**gate, "human_task": {**human_task, field: good}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "WAITING"


async def test_a_human_task_intent_is_created_waiting_with_its_task_in_one_write(
    api: httpx.AsyncClient, store: SqliteStore
) -> None:
    commits = store.stats().commits
    body = {**GOOD, "human_task": {"title": "Ship?", "deadline_seconds": 60}}
    created = (await api.post("/v1/intents", json=body)).json()
    assert store.stats().commits == commits + 1
    assert created["status"] == "WAITING"
    assert [e["event_type"] for e in await events(api, created["intent_id"])] == [
        "intent.created",
        "intent.submitted",
        "intent.human_task_assigned",
    ]
    assert [t["intent_id"] for t in await tasks(api)] == [created["intent_id"]]


async def test_an_intent_with_a_human_task_is_never_retried_into_the_queue(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post("/v1/intents", json={**GOOD, "human_task": {"title": "Ship?"}})
    intent_id = created.json()["intent_id"]
    failed = await api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "FAILED"})
    assert failed.status_code == 200, failed.text
    response = await api.post(f"/v1/intents/{intent_id}/retry")
    assert_error(response, 409, "conflict", "human_task")
    assert (await api.get(f"/v1/intents/{intent_id}")).json()["status"] == "FAILED"
    assert await deliveries(api) == ""


async def test_a_queued_intent_with_a_human_task_is_nobodys_delivery(
    api: httpx.AsyncClient, axme_home: Path
) -> None:
    """What an older daemon could leave (the intent written, its task not): it stays out of
    every agent's queue."""
    intent_id = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    with sqlite3.connect(axme_home / "axme.db") as db:
        db.execute("UPDATE intents SET human_task = ?", (json.dumps({"title": "Ship?"}),))
    assert await deliveries(api) == ""
    assert (await api.get(f"/v1/intents/{intent_id}")).json()["status"] == "SUBMITTED"


# -- 8 and 9: waits are checked by kind before anything changes ----------------------------

BAD_WAITS = [
    ("time", {}, "arguments.seconds: is required"),
    ("time", {"seconds": "abc"}, "arguments.seconds"),
    ("time", {"seconds": -1}, "arguments.seconds"),
    ("time", {"seconds": 1e308}, "arguments.seconds"),
    ("signal", {}, "arguments.name: is required"),
    ("signal", {"name": ""}, "arguments.name"),
    ("signal", {"name": "go", "timeout_seconds": 1e308}, "arguments.timeout_seconds"),
    ("child", {}, "arguments.intent_type: is required"),
    ("child", {"to_agent": "agent://acme/dev/b"}, "arguments.intent_type: is required"),
    ("child", {"intent_type": "x.v1"}, "arguments.to_agent: is required"),
    ("child", {"intent_type": "a b", "to_agent": "agent://acme/dev/b"}, "intent_type"),
    ("child", {"intent_type": "x.v1", "to_agent": "no where"}, "to_agent"),
    ("human", {}, "arguments.title: is required"),
    ("human", {"title": "T", "remind_after_seconds": 0.001}, "arguments.remind_after_seconds"),
    ("human", {"title": "T", "remind_interval_seconds": 0.5}, "remind_interval_seconds"),
    ("human", {"title": "T", "max_reminders": 10**6}, "arguments.max_reminders"),
    ("human", {"title": "T", "deadline_seconds": 1e308}, "arguments.deadline_seconds"),
    ("nap", {"seconds": 1}, "kind: must be one of human, time, signal, child"),
    (None, {"seconds": 1}, "kind: must be one of"),
]


@pytest.mark.parametrize(("kind", "arguments", "says"), BAD_WAITS)
async def test_a_wait_with_bad_arguments_is_422_and_changes_nothing(
    api: httpx.AsyncClient, kind: str | None, arguments: dict[str, Any], says: str
) -> None:
    intent_id = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    before = await state(api, intent_id)
    body: dict[str, Any] = {"ordinal": 1, "key": "wait", "arguments": arguments}
    if kind is not None:
        body["kind"] = kind
    response = await api.post(f"/v1/intents/{intent_id}/waits", json=body)
    assert_error(response, 422, "validation_error", says)
    assert await state(api, intent_id) == before
    assert len(await all_intents(api)) == 1, "no child intent"
    assert await tasks(api) == []


async def test_good_waits_of_each_kind_still_wait(api: httpx.AsyncClient) -> None:
    waits = [
        ("time", {"seconds": 30}, "WAITING_FOR_TIME"),
        ("signal", {"name": "go", "timeout_seconds": 60}, "WAITING_FOR_TOOL"),
        ("child", {"intent_type": "x.v1", "to_agent": "agent://acme/dev/b"}, "WAITING_FOR_AGENT"),
        ("human", {"title": "T", "remind_after_seconds": 1}, "WAITING_FOR_HUMAN"),
    ]
    for kind, arguments, reason in waits:
        intent_id = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
        body = {"ordinal": 1, "key": kind, "kind": kind, "arguments": arguments}
        response = await api.post(f"/v1/intents/{intent_id}/waits", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "waiting"
        got = (await api.get(f"/v1/intents/{intent_id}")).json()
        assert got["waiting_reason"] == reason


async def test_a_task_stored_before_the_bounds_reminds_at_most_once_a_second(
    api: httpx.AsyncClient, store: SqliteStore, axme_home: Path
) -> None:
    """A spec written by an older daemon (every 1 ms, no cap) is held to the bounds when
    its reminders fire."""
    body = {**GOOD, "human_task": {"title": "Ship?", "remind_after_seconds": 1}}
    intent_id = (await api.post("/v1/intents", json=body)).json()["intent_id"]
    with sqlite3.connect(axme_home / "axme.db") as db:
        spec = json.dumps({"title": "Ship?", "remind_after_seconds": 0.001,
                           "remind_interval_seconds": 0.001})  # fmt: skip
        db.execute("UPDATE tasks SET spec = ?", (spec,))
    now = time.time() + 1.5  # past the first reminder (at 1 s), before a second (at 2 s)
    for _ in range(5):
        await store.fire_timers(now)
    reminders = [e for e in await events(api, intent_id) if e["event_type"] == "intent.reminder"]
    assert len(reminders) == 1
    next_at = await store.next_timer(now)
    assert next_at is not None and next_at > now


# -- 10: a stream that cannot be served is refused before its first byte -------------------


async def test_an_agent_stream_for_a_worker_serving_another_address_is_a_json_400(
    api: httpx.AsyncClient,
) -> None:
    worker = {"x-axme-worker": "w-1"}
    first = await api.get(STREAM, params={"wait_seconds": 0}, headers=worker)
    assert first.status_code == 200
    other = "/v1/agents/acme/dev/other/intents/stream"
    response = await api.get(other, params={"wait_seconds": 0}, headers=worker)
    assert_error(response, 400, "bad_request", "w-1", "agent://acme/dev/echo")
