"""`/v1/scenarios/validate` and `/apply`: every error of a bad bundle listed at once, and a
bad apply creates nothing (no intent, no key, no keys file); AXME's `approve_current_step`
and controls/policy dialects."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from axme_daemon.api import create_app
from axme_daemon.config import load_settings
from axme_daemon.engine import Engine
from axme_daemon.store.sqlite import SqliteStore
from tests.integration.test_api import GOOD, all_intents, assert_error

GOOD_BUNDLE: dict[str, Any] = {
    "scenario_id": "deploy.check.v1",
    "agents": [{"role": "checker", "address": "checker", "create_if_missing": True}],
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
    "intent": {"type": "intent.deploy.check.v1", "payload": {"v": "1.2"}},
}

#: A bundle wrong in many places at once, and a word of each error the answer must list.
BAD_BUNDLE: dict[str, Any] = {
    "scenario_id": "Not Dotted",
    "agents": [
        {"role": "checker", "address": "has space", "delivery_mode": "http"},
        {"role": "checker", "address": "other"},
    ],
    "humans": [{"display_name": "no role"}],
    "workflow": {
        "entry_step": "nowhere",
        "steps": [
            {"step_id": "check", "tool_id": "tool.agent.task.v1", "assigned_to": "ghost"},
            {"step_id": "check", "tool_id": "tool.unknown.v9"},
            {
                "step_id": "sign",
                "tool_id": "tool.approval.human_signoff",
                "human_task": {"title": "Ship?", "deadline_seconds": -1},
                "retry": {"max_retries": -2},
                "on_failure": "missing",
                "step_deadline_seconds": "soon",
            },
        ],
    },
    "intent": {"type": "has spaces", "payload": []},
}
BAD_MENTIONS = [
    "scenario_id",
    "agents[0].address",
    "agents[0].delivery_mode",
    "agents[1].role",
    "humans[0].role",
    "workflow.entry_step",
    "workflow.steps[0].assigned_to",
    "workflow.steps[1].step_id",
    "workflow.steps[1].tool_id",
    "workflow.steps[2].human_task.deadline_seconds",
    "workflow.steps[2].retry.max_retries",
    "workflow.steps[2].on_failure",
    "workflow.steps[2].step_deadline_seconds",
    "intent.type",
    "intent.payload",
]


@pytest.fixture
async def api(axme_home: Path, store: SqliteStore) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Engine(store), load_settings(axme_home))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://axme") as client:
        yield client


async def _keys(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    return (await api.get("/v1/keys")).json()["keys"]  # type: ignore[no-any-return]


async def test_validate_accepts_a_good_bundle_and_creates_nothing(
    api: httpx.AsyncClient, axme_home: Path
) -> None:
    answer = await api.post("/v1/scenarios/validate", json=GOOD_BUNDLE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["valid"] is True and body["errors"] == [] and body["warnings"] == []
    assert body["steps"] == ["check", "sign"]
    assert await all_intents(api) == [] and await _keys(api) == []
    assert not (axme_home / "scenario-agents.json").exists()


async def test_every_error_of_a_bad_bundle_is_listed_and_apply_creates_nothing(
    api: httpx.AsyncClient, axme_home: Path
) -> None:
    checked = (await api.post("/v1/scenarios/validate", json=BAD_BUNDLE)).json()
    assert checked["valid"] is False
    listed = "\n".join(checked["errors"])
    missing = [m for m in BAD_MENTIONS if m not in listed]
    assert not missing, f"not listed: {missing}\n{listed}"

    applied = await api.post("/v1/scenarios/apply", json=BAD_BUNDLE)
    error = assert_error(applied, 422, "validation_error", *BAD_MENTIONS)
    assert error["details"]["errors"] == checked["errors"]
    assert await all_intents(api) == [] and await _keys(api) == []
    assert not (axme_home / "scenario-agents.json").exists()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda b: b["agents"][0].update(create_if_missing=False), "agents[0].address"),
        (lambda b: b.pop("workflow"), "workflow"),
        (lambda b: b["workflow"].update(steps=[]), "workflow.steps"),
        (lambda b: b.pop("intent"), "intent"),
        (lambda b: b["workflow"]["steps"][1].update(human_task="yes"), "human_task"),
    ],
)
async def test_one_bad_part_is_a_422_naming_it(
    api: httpx.AsyncClient, change: Any, says: str
) -> None:
    bundle = copy.deepcopy(GOOD_BUNDLE)
    change(bundle)
    assert_error(await api.post("/v1/scenarios/apply", json=bundle), 422, "validation_error", says)
    assert await all_intents(api) == [] and await _keys(api) == []


async def test_a_body_that_is_no_bundle_is_a_422(api: httpx.AsyncClient) -> None:
    for body in ([1, 2], "text", 3):
        answer = await api.post("/v1/scenarios/apply", json=body)
        assert_error(answer, 422, "validation_error", "ScenarioBundle")
    assert await all_intents(api) == []


async def test_apply_provisions_a_key_file_once_and_replays_by_idempotency_key(
    api: httpx.AsyncClient, axme_home: Path
) -> None:
    headers = {"Idempotency-Key": "deploy-1"}
    first = (await api.post("/v1/scenarios/apply", json=GOOD_BUNDLE, headers=headers)).json()
    assert first["status"] == "SUBMITTED" and first["current_step"] == "check"
    assert first["agents_provisioned"][0]["address"] == "agent://checker"
    keys_file = axme_home / "scenario-agents.json"
    assert keys_file.stat().st_mode & 0o777 == 0o600
    assert [k["scopes"] for k in await _keys(api)] == [["agent:agent://checker"]]
    again = (await api.post("/v1/scenarios/apply", json=GOOD_BUNDLE, headers=headers)).json()
    assert again["intent_id"] == first["intent_id"] and again["idempotent"] is True
    assert again["agents_provisioned"] == [] and len(await _keys(api)) == 1
    other = {**GOOD_BUNDLE, "intent": {**GOOD_BUNDLE["intent"], "payload": {"v": "2"}}}
    reused = await api.post("/v1/scenarios/apply", json=other, headers=headers)
    assert_error(reused, 409, "idempotency_conflict")


async def test_approve_current_step_advances_an_agent_step_and_a_plain_intent(
    api: httpx.AsyncClient,
) -> None:
    applied = (await api.post("/v1/scenarios/apply", json=GOOD_BUNDLE)).json()
    step = {"approve_current_step": True, "reason": "checked by hand"}
    moved = await api.post(f"/v1/intents/{applied['intent_id']}/resume", json=step)
    assert moved.status_code == 200, moved.text
    assert moved.json()["intent"]["waiting_reason"] == "WAITING_FOR_HUMAN"
    decided = await api.post(f"/v1/intents/{applied['intent_id']}/resume", json=step)
    assert decided.json()["intent"]["status"] == "COMPLETED"

    plain = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    done = await api.post(f"/v1/intents/{plain}/resume", json=step)
    assert done.status_code == 200, done.text
    assert done.json()["intent"]["status"] == "COMPLETED"
    rejected = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    no = await api.post(f"/v1/intents/{rejected}/resume", json={"approve_current_step": False})
    assert no.json()["intent"]["status"] == "CANCELED"


async def test_controls_and_policy_say_what_is_not_supported_locally(
    api: httpx.AsyncClient,
) -> None:
    intent_id = (await api.post("/v1/intents", json=GOOD)).json()["intent_id"]
    before = await all_intents(api)
    controls = {"controls_patch": {"timeout_seconds": 60}, "reason": "more time"}
    answer = await api.post(f"/v1/intents/{intent_id}/controls", json=controls)
    assert_error(answer, 422, "not_supported_locally", "timeout_seconds", "deadline_at")
    policy = {"envelope_patch": {"max_retry_count": 5}, "grants_patch": {"delegate:x": {}}}
    answer = await api.post(f"/v1/intents/{intent_id}/policy", json=policy)
    assert_error(answer, 422, "not_supported_locally", "envelope_patch.max_retry_count")
    assert await all_intents(api) == before
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_error(await api.post(f"/v1/intents/{unknown}/controls", json=controls), 404, "not_found")


async def test_agent_first_says_who_gets_an_intents_human_task_first(
    api: httpx.AsyncClient,
) -> None:
    task = {**GOOD, "human_task": {"title": "Merge?"}}
    # Nobody serves GOOD's address: by default the person's own task, waiting at once.
    assert (await api.post("/v1/intents", json=task)).json()["status"] == "WAITING"
    forced = (await api.post("/v1/intents", json={**task, "agent_first": True})).json()
    assert forced["status"] == "SUBMITTED"  # queued for the agent that will come
    stream = "/v1/agents/acme/dev/echo/intents/stream"
    delivered = await api.get(stream, params={"wait_seconds": 0})
    assert forced["intent_id"] in delivered.text
    # Now an agent listens there: by default it goes first, unless told otherwise.
    assert (await api.post("/v1/intents", json=task)).json()["status"] == "SUBMITTED"
    alone = (await api.post("/v1/intents", json={**task, "agent_first": False})).json()
    assert alone["status"] == "WAITING"
    bad = await api.post("/v1/intents", json={**task, "agent_first": "soon"})
    assert_error(bad, 422, "validation_error", "agent_first")
