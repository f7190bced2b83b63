"""The official AXME SDK (`axme_sdk.AxmeClient`) against a real daemon on its Unix socket."""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeHttpError, AxmeValidationError

from tests.daemon import Daemon, wait_for

INTENT = {
    "intent_type": "intent.test.echo.v1",
    "to_agent": "agent://acme/dev/echo",
    "payload": {"question": "ping"},
}


def _sdk(daemon: Daemon) -> tuple[AxmeClient, httpx.Client]:
    http = httpx.Client(
        transport=httpx.HTTPTransport(uds=str(daemon.socket)),
        base_url="http://axme",
        headers={"x-api-key": "dev", "Content-Type": "application/json"},
    )
    return AxmeClient(
        AxmeClientConfig(base_url="http://axme", api_key="dev"), http_client=http
    ), http


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    """One daemon for the module (starting one per test was most of its time): each test
    makes its own intents and looks only at those, or at what changed while it ran."""
    home = Path(tempfile.mkdtemp(prefix="axme-", dir="/tmp"))
    d = Daemon(home).start()
    yield d
    d.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def sdk(daemon: Daemon) -> Iterator[AxmeClient]:
    client, http = _sdk(daemon)
    with http:
        yield client
        client.close()


class Background:
    """Run `target` in a thread; `join` re-raises what it raised, so failures are not lost."""

    def __init__(self, target: Callable[[], Any]) -> None:
        self.error: BaseException | None = None
        self.result: Any = None

        def run() -> None:
            try:
                self.result = target()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 15.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def _once_watched(daemon: Daemon, act: Callable[[], Any]) -> Background:
    """Run `act` in the background once one more event stream is open on the daemon than
    now (the one the test is about to open)."""
    before = daemon.health()["streams"]

    def run() -> Any:
        wait_for(lambda: daemon.health()["streams"] > before, what="an open event stream")
        return act()

    return Background(run)


def _resolve_once_watched(daemon: Daemon, intent_id: str, payload: dict[str, Any]) -> Background:
    def resolve() -> dict:
        client, http = _sdk(daemon)
        with http:
            return client.resolve_intent(intent_id, payload)

    return _once_watched(daemon, resolve)


def _intent_ids(daemon: Daemon) -> set[str]:
    with daemon.client() as raw:
        listed = raw.get("/v1/intents", params={"limit": 500}).json()["intents"]
    return {i["intent_id"] for i in listed}


def test_send_intent_returns_an_id_the_daemon_knows(sdk: AxmeClient) -> None:
    intent_id = sdk.send_intent(INTENT)
    assert str(uuid.UUID(intent_id)) == intent_id
    got = sdk.get_intent(intent_id)
    assert got["intent_id"] == intent_id
    assert got["intent"]["intent_id"] == intent_id
    assert got["status"] == got["lifecycle_status"] == "SUBMITTED"
    assert got["payload"] == INTENT["payload"]
    # send_intent makes up a correlation id when none is given.
    assert str(uuid.UUID(got["correlation_id"])) == got["correlation_id"]


def test_create_intent_with_correlation_id(sdk: AxmeClient) -> None:
    created = sdk.create_intent(INTENT, correlation_id="corr-7")
    intent_id = created["intent_id"]
    assert str(uuid.UUID(intent_id)) == intent_id
    assert created["status"] == "SUBMITTED"
    got = sdk.get_intent(intent_id)
    assert got["correlation_id"] == "corr-7"
    assert got["intent_type"] == INTENT["intent_type"]
    assert got["to_agent"] == INTENT["to_agent"]


def test_list_intent_events_and_since(sdk: AxmeClient) -> None:
    intent_id = sdk.send_intent(INTENT)
    listed = sdk.list_intent_events(intent_id)
    assert listed["ok"] is True
    assert [(e["seq"], e["event_type"], e["status"]) for e in listed["events"]] == [
        (1, "intent.created", "CREATED"),
        (2, "intent.submitted", "SUBMITTED"),
    ]
    assert [e["seq"] for e in sdk.list_intent_events(intent_id, since=1)["events"]] == [2]
    assert sdk.list_intent_events(intent_id, since=2)["events"] == []


def test_resolve_intent_completed_with_result(sdk: AxmeClient) -> None:
    intent_id = sdk.send_intent(INTENT)
    result = {"answer": "pong", "took_ms": 3}
    resolved = sdk.resolve_intent(intent_id, {"status": "COMPLETED", "result": result})
    assert resolved["ok"] is True
    assert resolved["intent"]["status"] == "COMPLETED"
    event = resolved["event"]
    assert (event["seq"], event["event_type"], event["status"]) == (
        3,
        "intent.completed",
        "COMPLETED",
    )
    assert event["result"] == result

    got = sdk.get_intent(intent_id)
    assert got["status"] == got["lifecycle_status"] == "COMPLETED"
    assert got["result"] == result
    assert [e["seq"] for e in sdk.list_intent_events(intent_id, since=2)["events"]] == [3]


def test_wait_for_returns_the_terminal_event(daemon: Daemon, sdk: AxmeClient) -> None:
    intent_id = sdk.send_intent(INTENT)
    result = {"answer": 42}
    resolver = _resolve_once_watched(daemon, intent_id, {"status": "COMPLETED", "result": result})
    terminal = sdk.wait_for(intent_id, wait_seconds=10, timeout_seconds=20)
    resolver.join()
    assert terminal["intent_id"] == intent_id
    assert terminal["status"] == "COMPLETED"
    assert terminal["event_type"] == "intent.completed"
    assert terminal["seq"] == 3
    assert terminal["result"] == result
    assert terminal == resolver.result["event"]


def test_observe_yields_in_order_and_stops_at_the_terminal_event(
    daemon: Daemon, sdk: AxmeClient
) -> None:
    intent_id = sdk.send_intent(INTENT)
    resolver = _resolve_once_watched(
        daemon, intent_id, {"status": "FAILED", "error": {"why": "boom"}, "reason": "boom"}
    )
    seen = list(sdk.observe(intent_id, wait_seconds=10, timeout_seconds=20))
    resolver.join()
    assert [e["seq"] for e in seen] == [1, 2, 3]
    assert [e["status"] for e in seen] == ["CREATED", "SUBMITTED", "FAILED"]
    assert seen[-1]["event_type"] == "intent.failed"
    assert seen[-1]["details"]["reason"] == "boom"


def test_observe_since_skips_seen_events(sdk: AxmeClient) -> None:
    intent_id = sdk.send_intent(INTENT)
    sdk.resolve_intent(intent_id, {"status": "CANCELED", "reason": "not needed"})
    seen = list(sdk.observe(intent_id, since=2, wait_seconds=5, timeout_seconds=10))
    assert [(e["seq"], e["status"]) for e in seen] == [(3, "CANCELED")]


def test_get_of_unknown_intent_raises_http_error_404(sdk: AxmeClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(AxmeHttpError) as info:
        sdk.get_intent(missing)
    assert type(info.value) is AxmeHttpError
    assert info.value.status_code == 404
    assert missing in info.value.message
    assert info.value.body["error"]["code"] == "not_found"


def test_resolve_of_a_final_intent_raises_validation_error_409(sdk: AxmeClient) -> None:
    intent_id = sdk.send_intent(INTENT)
    sdk.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"n": 1}})
    with pytest.raises(AxmeValidationError) as info:
        sdk.resolve_intent(intent_id, {"status": "FAILED", "error": {"n": 2}})
    assert info.value.status_code == 409
    assert "COMPLETED" in info.value.message
    assert info.value.body["error"]["code"] == "already_final"
    got = sdk.get_intent(intent_id)
    assert got["status"] == "COMPLETED"
    assert got["result"] == {"n": 1}
    assert len(sdk.list_intent_events(intent_id)["events"]) == 3


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({**INTENT, "to_agent": "http://x"}, "to_agent"),
        ({**INTENT, "intent_type": "has spaces"}, "intent_type"),
        ({k: v for k, v in INTENT.items() if k != "to_agent"}, "to_agent"),
    ],
)
def test_bad_create_raises_validation_error(
    daemon: Daemon, sdk: AxmeClient, body: dict, named: str
) -> None:
    before = _intent_ids(daemon)
    with pytest.raises(AxmeValidationError) as info:
        sdk.send_intent(body)
    assert info.value.status_code == 422
    assert named in info.value.message
    assert _intent_ids(daemon) == before


def test_create_with_idempotency_key_twice_returns_the_same_id(
    daemon: Daemon, sdk: AxmeClient
) -> None:
    before = _intent_ids(daemon)
    first = sdk.send_intent(INTENT, idempotency_key="job-1")
    # The SDK gives each call a fresh correlation id; that must not break the replay.
    second = sdk.send_intent(INTENT, idempotency_key="job-1")
    assert first == second
    assert _intent_ids(daemon) - before == {first}
    with pytest.raises(AxmeValidationError) as info:
        sdk.send_intent({**INTENT, "payload": {"question": "other"}}, idempotency_key="job-1")
    assert info.value.status_code == 409
    assert info.value.body["error"]["code"] == "idempotency_conflict"


def test_human_task_sent_decided_and_observed_with_the_sdk(daemon: Daemon, sdk: AxmeClient) -> None:
    """An intent carrying a `human_task`, with no agent code: decided through `resume_intent`
    with a `task_result`, observed to completion with `wait_for`."""
    intent_id = sdk.send_intent(
        {
            "intent_type": "intent.test.gate.v1",
            "to_agent": "agent://ci/gate",
            "human_task": {
                "title": "Ship release 1.2?",
                "task_type": "approval",
                "allowed_outcomes": ["approved", "rejected"],
            },
        }
    )
    waiting = sdk.get_intent(intent_id)
    assert waiting["status"] == "WAITING"
    assert waiting["lifecycle_waiting_reason"] == "WAITING_FOR_HUMAN"
    assert waiting["human_task"]["title"] == "Ship release 1.2?"

    decider = _once_watched(
        daemon,
        lambda: sdk.resume_intent(
            intent_id, {"task_result": {"outcome": "approved", "comment": "ship it"}}
        ),
    )
    terminal = sdk.wait_for(intent_id, timeout_seconds=20)
    decided = decider.join()
    assert decided["applied"] is True and decided["task"]["decision"]["outcome"] == "approved"
    assert terminal["status"] == "COMPLETED"
    assert terminal["result"]["outcome"] == "approved"
    assert terminal["result"]["comment"] == "ship it"
    with pytest.raises(AxmeValidationError) as info:  # a second decision: 409
        sdk.resume_intent(intent_id, {"task_result": {"outcome": "rejected"}})
    assert info.value.status_code == 409


def _gate(sdk: AxmeClient, title: str) -> str:
    return sdk.send_intent(
        {
            "intent_type": "intent.test.gate.v1",
            "to_agent": "agent://ci/gate",
            "human_task": {"title": title},
        }
    )


def test_inbox_and_approvals_api_decide_tasks(sdk: AxmeClient) -> None:
    approved, rejected = _gate(sdk, "Inbox gate"), _gate(sdk, "Approval gate")
    threads = {t["intent_id"]: t for t in sdk.list_inbox()["threads"]}
    assert threads[approved]["status"] == "pending"
    assert threads[approved]["subject"] == "Inbox gate"
    done = sdk.approve_inbox_thread(threads[approved]["thread_id"], {"comment": "fine"})
    assert done["thread"]["status"] == "done"
    assert sdk.get_intent(approved)["status"] == "COMPLETED"

    approval = sdk.decide_approval(threads[rejected]["thread_id"], decision="reject", comment="no")[
        "approval"
    ]
    assert approval["decision"] == "reject" and approval["comment"] == "no"
    assert sdk.get_intent(rejected)["status"] == "CANCELED"
    assert approved not in {t["intent_id"] for t in sdk.list_inbox()["threads"]}
    with pytest.raises(AxmeValidationError) as info:  # decided already
        sdk.approve_inbox_thread(threads[rejected]["thread_id"], {})
    assert info.value.status_code == 409


@pytest.mark.parametrize(
    ("task", "says"),
    [
        ({"title": "T", "deadline_seconds": "soon"}, "deadline_seconds"),
        ({"title": "T", "remind_after_seconds": -5}, "remind_after_seconds"),
        ({"title": "T", "on_timeout": "explode", "deadline_seconds": 5}, "on_timeout"),
        ({"title": "T", "on_timeout": "escalate", "deadline_seconds": 5}, "escalate_to"),
        ({"title": "T", "allowed_outcomes": []}, "allowed_outcomes"),
        ({"title": "T", "form_schema": {"type": "nonsense"}}, "form_schema"),
        ({"task_type": "approval"}, "title"),
    ],
)
def test_bad_human_tasks_are_refused_and_create_nothing(
    daemon: Daemon, sdk: AxmeClient, task: dict[str, Any], says: str
) -> None:
    with daemon.client() as raw:
        tasks = raw.get("/v1/tasks").json()["tasks"]
    before = _intent_ids(daemon)
    with pytest.raises(AxmeValidationError) as info:
        sdk.send_intent(
            {
                "intent_type": "intent.test.gate.v1",
                "to_agent": "agent://ci/gate",
                "human_task": task,
            }
        )
    assert info.value.status_code == 422
    assert says in str(info.value)
    assert _intent_ids(daemon) == before
    with daemon.client() as raw:
        assert raw.get("/v1/tasks").json()["tasks"] == tasks


def test_an_agent_with_a_human_task_works_first_then_a_person_decides(
    daemon: Daemon, sdk: AxmeClient
) -> None:
    """AXME's order for an intent with both `to_agent` and `human_task`: its agent gets it
    first; the agent's resume puts it WAITING for a person; `wait_for` returns only once the
    person decided. Every event names who acted (`system` where nobody else)."""
    address = "agent://acme/dev/reviewer"

    def agent() -> dict[str, Any]:
        client, http = _sdk(daemon)
        with http:
            for delivery in client.listen(address, wait_seconds=2, timeout_seconds=30):
                client.resume_intent(delivery["intent_id"], {"action": "complete", "lint": "ok"})
                return delivery
        raise AssertionError("nothing delivered")

    before = daemon.health()["streams"]
    listening = Background(agent)
    wait_for(lambda: daemon.health()["streams"] > before, what="the agent's stream")
    intent_id = sdk.send_intent(
        {
            "intent_type": "intent.code.review.v1",
            "to_agent": address,
            "payload": {"pr": 847},
            "human_task": {"title": "Merge PR 847?", "task_type": "review"},
        }
    )
    assert listening.join(30)["intent_id"] == intent_id
    waiting = wait_for(
        lambda: (i := sdk.get_intent(intent_id))["status"] == "WAITING" and i, what="WAITING"
    )
    assert waiting["lifecycle_waiting_reason"] == "WAITING_FOR_HUMAN"
    assert waiting["pending_with"]["type"] == "human"

    def person() -> dict[str, Any]:
        assert waiter.thread.is_alive(), "wait_for returned before anyone decided"
        return sdk.resume_intent(intent_id, {"task_result": {"outcome": "approved"}})

    decider = _once_watched(daemon, person)
    waiter = Background(lambda: _sdk(daemon)[0].wait_for(intent_id, timeout_seconds=30))
    assert decider.join(30)["applied"] is True
    assert waiter.join(30)["status"] == "COMPLETED"
    events = sdk.list_intent_events(intent_id)["events"]
    assert [(e["event_type"], e["status"]) for e in events] == [
        ("intent.created", "CREATED"),
        ("intent.submitted", "SUBMITTED"),
        ("intent.delivered", "DELIVERED"),
        ("intent.in_progress", "IN_PROGRESS"),
        ("intent.human_task_assigned", "WAITING"),
        ("intent.human_task_decided", "WAITING"),
        ("intent.completed", "COMPLETED"),
    ]
    actors = [e["actor"] for e in events]
    assert actors[:3] == ["system"] * 3 and actors[3] == address and actors[4] == "system"
    assert all(actors)
    assert events[4]["details"]["pending_with"]["type"] == "human"
