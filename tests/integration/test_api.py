"""The /v1 API served in-process: what a client sees, and that a refused request writes nothing."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_daemon.api import create_app
from axme_daemon.config import load_settings
from axme_daemon.engine import Engine
from axme_daemon.store.sqlite import SqliteStore

GOOD = {
    "intent_type": "intent.test.echo.v1",
    "to_agent": "agent://acme/dev/echo",
    "payload": {"n": 1},
}
SMALL_LIMIT = 256

ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_api(axme_home: Path, store: SqliteStore) -> AsyncIterator[ApiFactory]:
    """Build the app on this test's store (settings from `load_settings`) and a client for it."""
    clients: list[httpx.AsyncClient] = []

    async def make(**settings: Any) -> httpx.AsyncClient:
        app = create_app(Engine(store), load_settings(axme_home, **settings))
        client = httpx.AsyncClient(
            # A crash must reach the test as the 500 a client would get, not as a traceback.
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://axme",
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def api(make_api: ApiFactory) -> httpx.AsyncClient:
    return await make_api()


@pytest.fixture
async def small_api(make_api: ApiFactory) -> httpx.AsyncClient:
    return await make_api(max_payload_bytes=SMALL_LIMIT)


# -- helpers -----------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, code: str, *mentions: str) -> dict:
    """The error shape every failure shares, with a message that names the problem."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert body["detail"] == error["message"]
    for word in mentions:
        assert word in error["message"], f"{word!r} not named in {error['message']!r}"
    return error


async def create(api: httpx.AsyncClient, **overrides: Any) -> dict:
    response = await api.post("/v1/intents", json={**GOOD, **overrides})
    assert response.status_code == 200, response.text
    return response.json()


async def all_intents(api: httpx.AsyncClient) -> list[dict]:
    response = await api.get("/v1/intents", params={"limit": 500})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return body["intents"]


async def events(api: httpx.AsyncClient, intent_id: str, **params: Any) -> list[dict]:
    response = await api.get(f"/v1/intents/{intent_id}/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()["events"]


async def assert_nothing_stored(api: httpx.AsyncClient) -> None:
    assert await all_intents(api) == []


async def snapshot(api: httpx.AsyncClient, intent_id: str) -> tuple[dict, list[dict]]:
    response = await api.get(f"/v1/intents/{intent_id}")
    assert response.status_code == 200, response.text
    return response.json(), await events(api, intent_id)


# -- refused creates ---------------------------------------------------------------------


async def test_malformed_json_is_400_invalid_json(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/intents",
        content=b'{"intent_type": "intent.x.v1", "to_agent": ',
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "invalid_json", "not valid JSON")
    await assert_nothing_stored(api)


@pytest.mark.parametrize("body", [[GOOD], "intent.test.echo.v1", 42, True])
async def test_body_that_is_not_an_object_is_refused(api: httpx.AsyncClient, body: Any) -> None:
    response = await api.post("/v1/intents", json=body)
    assert_error(response, 422, "validation_error", "JSON object")
    await assert_nothing_stored(api)


@pytest.mark.parametrize("field", ["intent_type", "to_agent"])
async def test_missing_required_field_is_named(api: httpx.AsyncClient, field: str) -> None:
    body = {k: v for k, v in GOOD.items() if k != field}
    response = await api.post("/v1/intents", json=body)
    assert_error(response, 422, "validation_error", field, "required")
    await assert_nothing_stored(api)


@pytest.mark.parametrize("address", ["http://x", "agent://", "agent://a b", "agent:///echo", ""])
async def test_to_agent_must_be_an_agent_address(api: httpx.AsyncClient, address: str) -> None:
    response = await api.post("/v1/intents", json={**GOOD, "to_agent": address})
    assert_error(response, 422, "validation_error", "to_agent", "agent://", repr(address))
    await assert_nothing_stored(api)


async def test_a_bare_to_agent_is_that_agent(api: httpx.AsyncClient) -> None:
    """AXME's SDK and examples send bare names (`human`, `org/env/name`), as `listen` takes."""
    for bare in ("human", "acme/dev/echo"):
        response = await api.post("/v1/intents", json={**GOOD, "to_agent": bare})
        assert response.status_code == 200, response.text
        assert response.json()["intent"]["to_agent"] == f"agent://{bare}"


@pytest.mark.parametrize("intent_type", ["intent test v1", "intent.test .v1", " ", ""])
async def test_intent_type_with_spaces_is_refused(api: httpx.AsyncClient, intent_type: str) -> None:
    response = await api.post("/v1/intents", json={**GOOD, "intent_type": intent_type})
    assert_error(response, 422, "validation_error", "intent_type")
    await assert_nothing_stored(api)


@pytest.mark.parametrize("payload", [[1, 2], "text", 3])
async def test_payload_must_be_an_object(api: httpx.AsyncClient, payload: Any) -> None:
    response = await api.post("/v1/intents", json={**GOOD, "payload": payload})
    assert_error(response, 422, "validation_error", "payload")
    await assert_nothing_stored(api)


@pytest.mark.parametrize("attempts", [0, -1, 101, 10_000])
async def test_max_delivery_attempts_out_of_range(api: httpx.AsyncClient, attempts: int) -> None:
    response = await api.post("/v1/intents", json={**GOOD, "max_delivery_attempts": attempts})
    assert_error(response, 422, "validation_error", "max_delivery_attempts")
    await assert_nothing_stored(api)


async def test_max_delivery_attempts_bounds_are_accepted(api: httpx.AsyncClient) -> None:
    low = await create(api, max_delivery_attempts=1)
    high = await create(api, max_delivery_attempts=100)
    assert low["intent"]["max_delivery_attempts"] == 1
    assert high["intent"]["max_delivery_attempts"] == 100


def _body_of_size(size: int) -> bytes:
    """A valid create body of exactly `size` bytes."""
    empty = json.dumps({**GOOD, "payload": {"pad": ""}}).encode()
    body = json.dumps({**GOOD, "payload": {"pad": "x" * (size - len(empty))}}).encode()
    assert len(body) == size
    return body


async def test_oversized_body_with_content_length_is_413(small_api: httpx.AsyncClient) -> None:
    response = await small_api.post(
        "/v1/intents",
        content=_body_of_size(SMALL_LIMIT + 1),
        headers={"Content-Type": "application/json"},
    )
    assert response.request.headers["content-length"] == str(SMALL_LIMIT + 1)
    error = assert_error(response, 413, "payload_too_large", str(SMALL_LIMIT))
    assert error["details"] == {"limit_bytes": SMALL_LIMIT}
    await assert_nothing_stored(small_api)


async def test_oversized_report_is_413(small_api: httpx.AsyncClient) -> None:
    body = {"reports": [{"intent_id": "x", "steps": [{"ordinal": 1, "key": "s", "result": ""}]}]}
    body["reports"][0]["steps"][0]["result"] = "x" * SMALL_LIMIT
    response = await small_api.post("/v1/reports", json=body)
    error = assert_error(response, 413, "payload_too_large", str(SMALL_LIMIT))
    assert error["details"] == {"limit_bytes": SMALL_LIMIT}


async def test_body_of_exactly_the_limit_is_accepted(small_api: httpx.AsyncClient) -> None:
    response = await small_api.post(
        "/v1/intents",
        content=_body_of_size(SMALL_LIMIT),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert len(await all_intents(small_api)) == 1


async def _chunks(body: bytes, size: int = 64) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_oversized_chunked_body_is_413(small_api: httpx.AsyncClient) -> None:
    body = _body_of_size(SMALL_LIMIT * 3)
    response = await small_api.post(
        "/v1/intents", content=_chunks(body), headers={"Content-Type": "application/json"}
    )
    # Streamed: no Content-Length for the daemon to check up front.
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    error = assert_error(response, 413, "payload_too_large", str(SMALL_LIMIT))
    assert error["details"] == {"limit_bytes": SMALL_LIMIT}
    await assert_nothing_stored(small_api)


async def test_chunked_body_under_the_limit_is_accepted(small_api: httpx.AsyncClient) -> None:
    body = _body_of_size(SMALL_LIMIT - 10)
    response = await small_api.post(
        "/v1/intents", content=_chunks(body, 16), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    [stored] = await all_intents(small_api)
    assert stored["intent_id"] == response.json()["intent_id"]


# -- create and idempotency --------------------------------------------------------------


async def test_create_returns_id_status_and_two_events(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/intents", json={**GOOD, "correlation_id": "corr-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    intent_id = body["intent_id"]
    assert str(uuid.UUID(intent_id)) == intent_id
    assert body["ok"] is True
    assert body["status"] == "SUBMITTED"
    assert body["idempotent_replay"] is False
    assert body["intent"]["intent_id"] == intent_id
    assert body["intent"]["payload"] == GOOD["payload"]
    assert body["intent"]["correlation_id"] == "corr-1"

    timeline = await events(api, intent_id)
    assert [(e["seq"], e["event_type"], e["status"]) for e in timeline] == [
        (1, "intent.created", "CREATED"),
        (2, "intent.submitted", "SUBMITTED"),
    ]
    assert all(e["intent_id"] == intent_id and e["at"] for e in timeline)
    assert [i["intent_id"] for i in await all_intents(api)] == [intent_id]


async def test_two_creates_get_different_ids(api: httpx.AsyncClient) -> None:
    first = await create(api)
    second = await create(api)
    assert first["intent_id"] != second["intent_id"]
    assert len(await all_intents(api)) == 2


async def test_idempotency_key_replay_returns_the_same_intent(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await api.post("/v1/intents", json=GOOD, headers=headers)
    again = await api.post("/v1/intents", json=GOOD, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["idempotent_replay"] is False
    assert again.json()["idempotent_replay"] is True
    intent_id = first.json()["intent_id"]
    assert again.json()["intent_id"] == intent_id
    assert again.json()["status"] == "SUBMITTED"
    assert [i["intent_id"] for i in await all_intents(api)] == [intent_id]
    assert len(await events(api, intent_id)) == 2


async def test_idempotency_key_with_another_body_is_409(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-43"}
    first = await api.post("/v1/intents", json=GOOD, headers=headers)
    assert first.status_code == 200
    intent_id = first.json()["intent_id"]
    before = await snapshot(api, intent_id)

    other = {**GOOD, "payload": {"n": 2}}
    response = await api.post("/v1/intents", json=other, headers=headers)
    error = assert_error(response, 409, "idempotency_conflict", "Idempotency-Key")
    assert error["details"]["intent_id"] == intent_id
    assert [i["intent_id"] for i in await all_intents(api)] == [intent_id]
    assert await snapshot(api, intent_id) == before


async def test_idempotency_key_over_200_characters_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/intents", json=GOOD, headers={"Idempotency-Key": "k" * 201})
    assert_error(response, 422, "validation_error", "idempotency-key", "200 characters")
    await assert_nothing_stored(api)
    accepted = await api.post("/v1/intents", json=GOOD, headers={"Idempotency-Key": "k" * 200})
    assert accepted.status_code == 200, accepted.text


async def test_idempotency_replay_ignores_correlation_id(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-44"}
    first = await api.post("/v1/intents", json={**GOOD, "correlation_id": "a"}, headers=headers)
    again = await api.post("/v1/intents", json={**GOOD, "correlation_id": "b"}, headers=headers)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json()["idempotent_replay"] is True
    assert again.json()["intent_id"] == first.json()["intent_id"]
    [stored] = await all_intents(api)
    assert stored["correlation_id"] == "a"


# -- get -----------------------------------------------------------------------------------


async def test_get_exposes_status_and_lifecycle_status(api: httpx.AsyncClient) -> None:
    created = await create(api, from_agent="agent://acme/dev/caller")
    intent_id = created["intent_id"]
    response = await api.get(f"/v1/intents/{intent_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    for view in (body, body["intent"]):
        assert view["intent_id"] == intent_id
        assert view["status"] == "SUBMITTED"
        assert view["lifecycle_status"] == "SUBMITTED"
        assert view["intent_type"] == GOOD["intent_type"]
        assert view["to_agent"] == GOOD["to_agent"]
        assert view["from_agent"] == "agent://acme/dev/caller"
        assert view["payload"] == GOOD["payload"]
        assert view["result"] is None
    assert {k: v for k, v in body.items() if k not in {"ok", "intent"}} == body["intent"]


# -- unknown ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("intent_id", ["3f2c1e7a-0000-4000-8000-000000000404", "not-an-id"])
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/events"), ("GET", "/events/stream"), ("POST", "/resolve")],
)
async def test_unknown_intent_is_404(
    api: httpx.AsyncClient, method: str, suffix: str, intent_id: str
) -> None:
    kwargs: dict[str, Any] = {}
    if method == "POST":
        kwargs["json"] = {"status": "COMPLETED", "result": {}}
    response = await api.request(method, f"/v1/intents/{intent_id}{suffix}", **kwargs)
    assert_error(response, 404, "not_found", intent_id)
    await assert_nothing_stored(api)


async def test_unknown_route_is_404_in_our_shape(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/nothing-here")
    assert_error(response, 404, "not_found", "/v1/nothing-here")


# -- resolve -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "event_type"),
    [
        ("COMPLETED", "intent.completed"),
        ("FAILED", "intent.failed"),
        ("CANCELED", "intent.canceled"),
    ],
)
async def test_resolve_appends_exactly_one_final_event(
    api: httpx.AsyncClient, status: str, event_type: str
) -> None:
    intent_id = (await create(api))["intent_id"]
    response = await api.post(
        f"/v1/intents/{intent_id}/resolve",
        json={"status": status, "reason": "operator decided", "actor": "ops@acme"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["intent"]["status"] == body["intent"]["lifecycle_status"] == status

    timeline = await events(api, intent_id)
    assert [e["seq"] for e in timeline] == [1, 2, 3]
    last = timeline[-1]
    assert last == body["event"]
    assert last["event_type"] == event_type
    assert last["status"] == status
    assert last["actor"] == "ops@acme"
    assert last["details"]["reason"] == "operator decided"

    got = (await api.get(f"/v1/intents/{intent_id}")).json()
    assert got["status"] == got["lifecycle_status"] == status
    assert got["last_seq"] == 3


async def test_resolve_completed_with_result(api: httpx.AsyncClient) -> None:
    intent_id = (await create(api))["intent_id"]
    result = {"rows": 3, "ok": True}
    response = await api.post(
        f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": result}
    )
    assert response.status_code == 200, response.text
    assert response.json()["intent"]["result"] == result
    assert response.json()["event"]["result"] == result

    intent = (await api.get(f"/v1/intents/{intent_id}")).json()
    assert intent["result"] == intent["intent"]["result"] == result
    terminal = (await events(api, intent_id))[-1]
    assert terminal["status"] == "COMPLETED"
    assert terminal["result"] == result
    assert terminal["details"]["result"] == result


@pytest.mark.parametrize("first", ["COMPLETED", "FAILED", "CANCELED"])
@pytest.mark.parametrize("second", ["COMPLETED", "FAILED", "CANCELED"])
async def test_resolve_of_a_final_intent_is_409(
    api: httpx.AsyncClient, first: str, second: str
) -> None:
    intent_id = (await create(api))["intent_id"]
    done = await api.post(f"/v1/intents/{intent_id}/resolve", json={"status": first})
    assert done.status_code == 200, done.text
    before = await snapshot(api, intent_id)

    response = await api.post(
        f"/v1/intents/{intent_id}/resolve",
        json={"status": second, "result": {"late": True}, "reason": "too late"},
    )
    error = assert_error(response, 409, "already_final", first)
    assert error["details"]["status"] == first
    assert await snapshot(api, intent_id) == before
    assert len(before[1]) == 3


@pytest.mark.parametrize(
    "status", ["SUBMITTED", "IN_PROGRESS", "TIMED_OUT", "CREATED", "CANCELLED", "DONE", "completed"]
)
async def test_resolve_with_a_non_final_status_is_422(api: httpx.AsyncClient, status: str) -> None:
    intent_id = (await create(api))["intent_id"]
    before = await snapshot(api, intent_id)
    response = await api.post(f"/v1/intents/{intent_id}/resolve", json={"status": status})
    assert_error(response, 422, "validation_error", "status")
    assert await snapshot(api, intent_id) == before


async def test_resolve_without_status_is_422(api: httpx.AsyncClient) -> None:
    intent_id = (await create(api))["intent_id"]
    before = await snapshot(api, intent_id)
    response = await api.post(f"/v1/intents/{intent_id}/resolve", json={"result": {}})
    assert_error(response, 422, "validation_error", "status", "required")
    assert await snapshot(api, intent_id) == before


async def test_resolve_with_malformed_json_is_400(api: httpx.AsyncClient) -> None:
    intent_id = (await create(api))["intent_id"]
    before = await snapshot(api, intent_id)
    response = await api.post(
        f"/v1/intents/{intent_id}/resolve",
        content=b'{"status": "COMPLETED"',
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "invalid_json", "not valid JSON")
    assert await snapshot(api, intent_id) == before


# -- list ------------------------------------------------------------------------------------


async def test_list_filters(api: httpx.AsyncClient) -> None:
    a1 = (await create(api, intent_type="intent.a.v1", to_agent="agent://acme/dev/one"))[
        "intent_id"
    ]
    a2 = (await create(api, intent_type="intent.a.v1", to_agent="agent://acme/dev/two"))[
        "intent_id"
    ]
    b1 = (await create(api, intent_type="intent.b.v1", to_agent="agent://acme/dev/one"))[
        "intent_id"
    ]
    resolved = await api.post(f"/v1/intents/{a2}/resolve", json={"status": "FAILED"})
    assert resolved.status_code == 200

    async def ids(**params: Any) -> list[str]:
        response = await api.get("/v1/intents", params=params)
        assert response.status_code == 200, response.text
        return [i["intent_id"] for i in response.json()["intents"]]

    assert await ids() == [b1, a2, a1]
    assert await ids(status="SUBMITTED") == [b1, a1]
    assert await ids(status="FAILED") == [a2]
    assert await ids(status="COMPLETED") == []
    assert await ids(to_agent="agent://acme/dev/one") == [b1, a1]
    assert await ids(to_agent="agent://acme/dev/none") == []
    assert await ids(intent_type="intent.a.v1") == [a2, a1]
    assert await ids(intent_type="intent.a.v1", status="SUBMITTED") == [a1]
    assert await ids(intent_type="intent.b.v1", to_agent="agent://acme/dev/two") == []

    everyone = [a1, a2, b1]
    for target in everyone:
        for length in (1, 8, 36):
            prefix = target[:length]
            expected = [i for i in [b1, a2, a1] if i.startswith(prefix)]
            assert target in expected
            assert await ids(id_prefix=prefix) == expected


async def test_list_pages_with_cursor(api: httpx.AsyncClient) -> None:
    created = [(await create(api, payload={"n": n}))["intent_id"] for n in range(7)]
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = await api.get("/v1/intents", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([i["intent_id"] for i in body["intents"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 5, "pagination does not end"

    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [i for page in pages for i in page]
    assert len(set(flat)) == len(flat) == 7
    assert flat == list(reversed(created))  # newest first, across pages too


async def test_list_cursor_keeps_the_filter(api: httpx.AsyncClient) -> None:
    mine = []
    for n in range(5):
        mine.append((await create(api, to_agent="agent://acme/dev/mine"))["intent_id"])
        await create(api, to_agent="agent://acme/dev/other", payload={"n": n})
    first = await api.get("/v1/intents", params={"limit": 2, "to_agent": "agent://acme/dev/mine"})
    body = first.json()
    seen = [i["intent_id"] for i in body["intents"]]
    while body["next_cursor"] is not None:
        response = await api.get(
            "/v1/intents",
            params={"limit": 2, "to_agent": "agent://acme/dev/mine", "cursor": body["next_cursor"]},
        )
        body = response.json()
        seen += [i["intent_id"] for i in body["intents"]]
    assert seen == list(reversed(mine))


async def test_list_exact_page_has_no_next_cursor(api: httpx.AsyncClient) -> None:
    for _ in range(3):
        await create(api)
    response = await api.get("/v1/intents", params={"limit": 3})
    assert len(response.json()["intents"]) == 3
    assert response.json()["next_cursor"] is None


async def test_list_bad_status_filter_is_422(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.get("/v1/intents", params={"status": "DONE"})
    assert_error(response, 422, "validation_error", "status")


@pytest.mark.parametrize("limit", [0, 501, -3])
async def test_list_limit_out_of_range_is_422(api: httpx.AsyncClient, limit: int) -> None:
    response = await api.get("/v1/intents", params={"limit": limit})
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "", "²", "99999999999999999999999"])
async def test_list_bad_cursor_is_400(api: httpx.AsyncClient, cursor: str) -> None:
    await create(api)
    response = await api.get("/v1/intents", params={"cursor": cursor})
    assert_error(response, 400, "bad_request", "cursor")


# -- events ----------------------------------------------------------------------------------


async def test_events_since_is_exclusive(api: httpx.AsyncClient) -> None:
    intent_id = (await create(api))["intent_id"]
    assert [e["seq"] for e in await events(api, intent_id, since=0)] == [1, 2]
    assert [e["seq"] for e in await events(api, intent_id, since=1)] == [2]
    assert await events(api, intent_id, since=2) == []
    assert await events(api, intent_id, since=50) == []
    resolved = await api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "CANCELED"})
    assert resolved.status_code == 200
    [last] = await events(api, intent_id, since=2)
    assert (last["seq"], last["status"]) == (3, "CANCELED")


@pytest.mark.parametrize("suffix", ["/events", "/events/stream"])
async def test_events_negative_since_is_422(api: httpx.AsyncClient, suffix: str) -> None:
    intent_id = (await create(api))["intent_id"]
    response = await api.get(f"/v1/intents/{intent_id}{suffix}", params={"since": -1})
    assert_error(response, 422, "validation_error", "since")


async def test_events_huge_since_is_not_a_server_error(api: httpx.AsyncClient) -> None:
    intent_id = (await create(api))["intent_id"]
    response = await api.get(
        f"/v1/intents/{intent_id}/events", params={"since": "99999999999999999999999"}
    )
    # Either "out of range" in our error shape, or simply nothing after that seq.
    if response.status_code == 200:
        assert response.json()["events"] == []
    else:
        assert_error(response, 422, "validation_error", "since")


def _sse(text: str) -> list[tuple[str, dict]]:
    frames = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("event:"))
        data = "\n".join(
            line.split(":", 1)[1].lstrip() for line in lines if line.startswith("data:")
        )
        frames.append((name, json.loads(data)))
    return frames


async def test_stream_of_a_final_intent_replays_and_ends(api: httpx.AsyncClient) -> None:
    intent_id = (await create(api))["intent_id"]
    await api.post(f"/v1/intents/{intent_id}/resolve", json={"status": "COMPLETED", "result": {}})
    response = await api.get(f"/v1/intents/{intent_id}/events/stream", params={"since": 1})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("\n\n")
    frames = _sse(response.text)
    assert [(name, data["seq"]) for name, data in frames] == [
        ("intent.submitted", 2),
        ("intent.completed", 3),
    ]


async def test_stream_of_an_open_intent_times_out_with_next_seq(api: httpx.AsyncClient) -> None:
    intent_id = (await create(api))["intent_id"]
    response = await api.get(
        f"/v1/intents/{intent_id}/events/stream", params={"since": 0, "wait_seconds": 0}
    )
    assert response.status_code == 200
    frames = _sse(response.text)
    assert [name for name, _ in frames] == ["intent.created", "intent.submitted", "stream.timeout"]
    assert frames[-1][1]["next_seq"] == 2


# -- service ---------------------------------------------------------------------------------


async def test_openapi_lists_the_v1_paths(api: httpx.AsyncClient) -> None:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/v1/intents",
        "/v1/intents/{intent_id}",
        "/v1/intents/{intent_id}/events",
        "/v1/intents/{intent_id}/events/stream",
        "/v1/intents/{intent_id}/resolve",
    } <= set(paths)
    assert {"get", "post"} <= set(paths["/v1/intents"])
    create = paths["/v1/intents"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateIntent"
    }
    [key] = create["parameters"]
    assert (key["name"], key["in"]) == ("Idempotency-Key", "header")
    assert key["schema"]["maxLength"] == 200
    assert "post" in paths["/v1/reports"]
    assert "post" in paths["/v1/intents/{intent_id}/resolve"]


async def test_health(api: httpx.AsyncClient) -> None:
    response = await api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["pid"] == os.getpid()


# -- batched step records ----------------------------------------------------------------------


async def test_step_batches_are_all_or_none_and_ride_with_the_outcome(
    api: httpx.AsyncClient,
) -> None:
    intent_id = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    steps = f"/v1/intents/{intent_id}/steps"
    batch = {"steps": [{"ordinal": 1, "key": "a", "result": 1}, {"ordinal": 2, "key": "b"}]}
    assert (await api.post(steps, json=batch)).status_code == 200
    # Step 3 is fine, step 5 is out of order: neither is recorded.
    bad = {"steps": [{"ordinal": 3, "key": "c"}, {"ordinal": 5, "key": "e"}]}
    assert_error(await api.post(steps, json=bad), 400, "bad_request", "out of order")
    assert [s["key"] for s in (await api.get(steps)).json()["steps"]] == ["a", "b"]
    # The outcome carries the last steps; a refused step refuses the outcome too.
    resume = f"/v1/intents/{intent_id}/resume"
    refused = {"result": {}, "step_records": [{"ordinal": 4, "key": "d"}]}
    assert (await api.post(resume, json=refused)).status_code == 400
    assert (await api.get(f"/v1/intents/{intent_id}")).json()["status"] == "IN_PROGRESS"
    done = {"result": {"ok": True}, "step_records": [{"ordinal": 3, "key": "c", "result": 3}]}
    assert (await api.post(resume, json=done)).json()["intent"]["status"] == "COMPLETED"
    assert [s["key"] for s in (await api.get(steps)).json()["steps"]] == ["a", "b", "c"]


# -- a worker's reports for several intents ----------------------------------------------------


def _part(intent_id: str, *ordinals: int, outcome: dict | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {
        "intent_id": intent_id,
        "steps": [{"ordinal": n, "key": f"s{n}", "result": {"n": n}} for n in ordinals],
    }
    if outcome is not None:
        part["outcome"] = outcome
    return part


async def _state(api: httpx.AsyncClient, intent_id: str) -> tuple[str, list[str]]:
    status = (await api.get(f"/v1/intents/{intent_id}")).json()["intent"]["status"]
    steps = (await api.get(f"/v1/intents/{intent_id}/steps")).json()["steps"]
    return status, [s["key"] for s in steps]


async def test_reports_apply_each_intents_part_on_its_own(api: httpx.AsyncClient) -> None:
    a, b, c = [(await api.post("/v1/intents", json=GOOD)).json()["intent_id"] for _ in range(3)]
    unknown = str(uuid.uuid4())
    complete = {"action": "complete", "result": {"done": True}}
    body = {
        "reports": [
            _part(a, 1),
            _part(b, 1, 2, outcome=complete),
            _part(c, 2),  # step 1 was never recorded: refused, and c is untouched
            _part(unknown, 1),
        ]
    }
    response = await api.post("/v1/reports", json=body)
    assert response.status_code == 200, response.text
    answers = response.json()["reports"]
    assert [x["intent_id"] for x in answers] == [a, b, c, unknown]
    assert answers[0] == {"intent_id": a, "ok": True}
    assert answers[1] == {"intent_id": b, "ok": True, "status": "COMPLETED"}
    assert answers[2]["ok"] is False and answers[2]["status_code"] == 400
    assert "out of order" in answers[2]["error"]["message"]
    assert answers[3]["ok"] is False and answers[3]["status_code"] == 404
    assert answers[3]["error"]["code"] == "not_found"
    assert await _state(api, a) == ("IN_PROGRESS", ["s1"])
    assert await _state(api, b) == ("COMPLETED", ["s1", "s2"])
    assert await _state(api, c) == ("SUBMITTED", [])
    intent_b = (await api.get(f"/v1/intents/{b}")).json()["intent"]
    assert intent_b["result"] == {"done": True}
    events = (await api.get(f"/v1/intents/{b}/events")).json()["events"]
    assert [e["event_type"] for e in events] == [
        "intent.created",
        "intent.submitted",
        "intent.in_progress",
        "intent.step_completed",
        "intent.step_completed",
        "intent.completed",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]


async def test_a_refused_outcome_refuses_the_steps_sent_with_it(api: httpx.AsyncClient) -> None:
    intent_id = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    resolve = {"status": "CANCELED", "reason": "not needed"}
    assert (await api.post(f"/v1/intents/{intent_id}/resolve", json=resolve)).status_code == 200
    body = {"reports": [_part(intent_id, 1, outcome={"action": "complete", "result": 1})]}
    answer = (await api.post("/v1/reports", json=body)).json()["reports"][0]
    assert answer["ok"] is False and answer["status_code"] == 409
    assert answer["error"]["code"] == "already_final"
    assert await _state(api, intent_id) == ("CANCELED", [])


async def test_a_failure_report_keeps_its_steps_for_the_next_attempt(
    api: httpx.AsyncClient,
) -> None:
    body_of = {**GOOD, "max_delivery_attempts": 3}
    intent_id = (await api.post("/v1/intents", json=body_of)).json()["intent_id"]
    fail = {"action": "fail", "error": {"message": "boom"}, "retryable": False}
    body = {"reports": [_part(intent_id, 1, outcome=fail)]}
    answer = (await api.post("/v1/reports", json=body)).json()["reports"][0]
    assert answer == {"intent_id": intent_id, "ok": True, "status": "FAILED"}
    assert await _state(api, intent_id) == ("FAILED", ["s1"])
    intent = (await api.get(f"/v1/intents/{intent_id}")).json()["intent"]
    assert intent["error"]["message"] == "boom"


async def test_a_started_report_moves_a_delivered_intent_to_in_progress_once(
    api: httpx.AsyncClient, store: SqliteStore
) -> None:
    intent_id = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    await store.lease(GOOD["to_agent"], "worker-1", 1, {})
    body = {"reports": [{"intent_id": intent_id, "started": True}]}
    headers = {"X-Axme-Worker": "worker-1"}
    for _ in range(2):  # the second one changes nothing
        answer = (await api.post("/v1/reports", json=body, headers=headers)).json()
        assert answer["reports"] == [{"intent_id": intent_id, "ok": True}]
    events = (await api.get(f"/v1/intents/{intent_id}/events")).json()["events"]
    assert [e["event_type"] for e in events][-2:] == ["intent.delivered", "intent.in_progress"]
    assert await _state(api, intent_id) == ("IN_PROGRESS", [])


async def test_a_report_from_a_worker_without_the_lease_is_refused(
    api: httpx.AsyncClient, store: SqliteStore
) -> None:
    intent_id = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    leased = await store.lease(GOOD["to_agent"], "worker-1", 1, {})
    assert [i.intent_id for i, _ in leased] == [intent_id]
    body = {"reports": [_part(intent_id, 1, outcome={"action": "complete"})]}
    response = await api.post("/v1/reports", json=body, headers={"X-Axme-Worker": "worker-2"})
    answer = response.json()["reports"][0]
    assert answer["ok"] is False and answer["status_code"] == 409
    assert answer["error"]["details"]["code_reason"] == "lease_lost"
    assert await _state(api, intent_id) == ("DELIVERED", [])
    response = await api.post("/v1/reports", json=body, headers={"X-Axme-Worker": "worker-1"})
    assert response.json()["reports"][0]["status"] == "COMPLETED"


_BAD_REPORTS: list[tuple[Callable[[str], Any], int, str]] = [
    (lambda i: {}, 422, "reports: is required"),
    (lambda i: {"reports": []}, 422, "reports"),
    (lambda i: {"reports": "all of them"}, 422, "reports"),
    (lambda i: {"reports": [{"steps": []}]}, 422, "intent_id: is required"),
    (lambda i: {"reports": [_part(i, 1), _part(i, 1)]}, 422, "appears twice"),
    (lambda i: {"reports": [{"intent_id": i}]}, 422, "has no steps or outcome"),
    (lambda i: {"reports": [{"intent_id": i, "outcome": {"action": "pause"}}]}, 422, "action"),
    (
        lambda i: {"reports": [{"intent_id": i, "steps": [{"ordinal": 0, "key": "a"}]}]},
        422,
        "ordinal",
    ),
    (lambda i: "not json", 400, "not valid JSON"),
]


@pytest.mark.parametrize(("body_of", "status", "mention"), _BAD_REPORTS)
async def test_bad_reports_are_refused_whole_and_change_nothing(
    api: httpx.AsyncClient, body_of: Callable[[str], Any], status: int, mention: str
) -> None:
    intent_id = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    body = body_of(intent_id)
    if isinstance(body, str):
        headers = {"content-type": "application/json"}
        response = await api.post("/v1/reports", content=body, headers=headers)
    else:
        response = await api.post("/v1/reports", json=body)
    code = "validation_error" if status == 422 else "invalid_json"
    error = assert_error(response, status, code)
    assert mention in error["message"], error
    assert await _state(api, intent_id) == ("SUBMITTED", [])
