"""The smaller parts of the AXME platform the official SDK calls, against a real daemon on its
loopback TCP listener, as an AXME program points at it (`AxmeClientConfig(base_url,
api_key)` with the key `axme daemon status` prints): capabilities, trace ids, the approvals
API by intent id, delivery frames, an agent's failure details, bare agent names, one owner
key listening as two agents, and the mesh (heartbeats, health, kill and resume)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeAuthError, AxmeHttpError, AxmeValidationError

from tests.daemon import Daemon, wait_for


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    home = Path(tempfile.mkdtemp(prefix="axme-", dir="/tmp"))
    d = Daemon(home, "--listen", "127.0.0.1:0").start()
    yield d
    d.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def url(daemon: Daemon) -> str:
    return str(daemon.health()["tcp"])


@pytest.fixture(scope="module")
def local_key(daemon: Daemon) -> str:
    return str(daemon.health()["api_key"])


def client(url: str, key: str) -> AxmeClient:
    return AxmeClient(AxmeClientConfig(base_url=url, api_key=key, max_retries=0))


@pytest.fixture
def sdk(url: str, local_key: str) -> Iterator[AxmeClient]:
    with client(url, local_key) as c:
        yield c


def make_key(daemon: Daemon, *scopes: str) -> str:
    name = f"k{uuid.uuid4().hex[:10]}"
    with daemon.client() as raw:
        made = raw.post("/v1/keys", json={"name": name, "scopes": list(scopes)})
    assert made.status_code == 200, made.text
    return str(made.json()["key"])


def address() -> str:
    return f"agent://sdk/dev/a{uuid.uuid4().hex[:8]}"


class Listener:
    """`AxmeClient.listen(name)` in a thread, keeping what it yields."""

    def __init__(self, url: str, key: str, name: str) -> None:
        self.got: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.client = client(url, key)

        def run() -> None:
            try:
                for event in self.client.listen(name, wait_seconds=2, timeout_seconds=30):
                    self.got.append(event)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def first(self) -> dict[str, Any]:
        wait_for(lambda: self.got or self.error, timeout=15, what="a delivery")
        if self.error is not None:
            raise self.error
        return self.got[0]

    def close(self) -> None:
        self.client.close()


def test_capabilities(sdk: AxmeClient) -> None:
    answer = sdk.get_capabilities()
    assert answer["ok"] is True and "intents" in answer["capabilities"]
    assert "mesh" in answer["capabilities"] and answer["any_intent_type"] is True
    assert all(t.startswith("intent.") for t in answer["supported_intent_types"])


def test_every_answer_carries_back_the_trace_id(daemon: Daemon, url: str, local_key: str) -> None:
    trace = "trace-" + uuid.uuid4().hex
    headers = {"x-api-key": local_key, "X-Trace-Id": trace}
    answers = [
        httpx.get(f"{url}/health", headers=headers),
        httpx.get(f"{url}/v1/intents/{uuid.uuid4()}", headers=headers),  # 404
        httpx.post(f"{url}/v1/intents", headers=headers, content=b"{"),  # 400
        httpx.get(f"{url}/health", headers={**headers, "x-api-key": "wrong"}),  # 401
        httpx.post(
            f"{url}/v1/intents", headers=headers, json={"intent_type": "t.v1", "to_agent": "a"}
        ),
    ]
    assert [a.status_code for a in answers] == [200, 404, 400, 401, 200]
    assert [a.headers.get("x-trace-id") for a in answers] == [trace] * 5
    with daemon.client() as socket:  # the owner's socket too
        assert socket.get("/health", headers={"X-Trace-Id": trace}).headers["x-trace-id"] == trace
    long = httpx.get(f"{url}/health", headers={**headers, "X-Trace-Id": "x" * 500})
    assert "x-trace-id" not in long.headers
    with client(url, local_key) as c, pytest.raises(AxmeHttpError) as info:
        c.get_intent(str(uuid.uuid4()), trace_id=trace)
    assert info.value.trace_id == trace


def test_decide_approval_takes_the_intent_id(sdk: AxmeClient) -> None:
    def gate() -> str:
        body = {
            "intent_type": "intent.gate.v1",
            "to_agent": "human",
            "human_task": {"title": "Go?"},
        }
        return sdk.send_intent(body)

    approved, rejected = gate(), gate()
    answer = sdk.decide_approval(approved, decision="approve", comment="fine")["approval"]
    assert answer["decision"] == "approve" and answer["comment"] == "fine"
    assert sdk.get_intent(approved)["status"] == "COMPLETED"
    with pytest.raises(AxmeValidationError) as conflict:  # decided already: 409
        sdk.decide_approval(approved, decision="reject")
    assert conflict.value.status_code == 409
    with pytest.raises(AxmeValidationError) as bad:  # nothing changes
        sdk.decide_approval(rejected, decision="maybe")
    assert bad.value.status_code == 422 and "decision" in str(bad.value)
    with pytest.raises(AxmeHttpError) as missing:
        sdk.decide_approval(str(uuid.uuid4()), decision="approve")
    assert missing.value.status_code == 404
    assert sdk.get_intent(rejected)["status"] == "WAITING"
    sdk.decide_approval(rejected, decision="reject")
    assert sdk.get_intent(rejected)["status"] == "CANCELED"


def test_bare_names_meet_their_agent_and_frames_carry_at(
    sdk: AxmeClient, url: str, local_key: str
) -> None:
    name = f"bare-{uuid.uuid4().hex[:8]}"
    human = sdk.send_intent(
        {"intent_type": "intent.gate.v1", "to_agent": "human", "human_task": {"title": "Ok?"}}
    )
    assert sdk.get_intent(human)["to_agent"] == "agent://human"
    listener = Listener(url, local_key, name)
    try:
        bare = sdk.send_intent({"intent_type": "intent.bare.v1", "to_agent": name})
        frame = listener.first()
        assert frame["intent_id"] == bare and frame["status"] == "DELIVERED"
        assert frame["at"] and frame["at"].endswith("Z")
        assert sdk.get_intent(bare)["to_agent"] == f"agent://{name}"
        full = sdk.send_intent({"intent_type": "intent.bare.v1", "to_agent": f"agent://{name}"})
        sdk.resume_intent(bare, {"action": "complete"})
        wait_for(lambda: [e["intent_id"] for e in listener.got] == [bare, full])
    finally:
        listener.close()
    with pytest.raises(AxmeValidationError) as bad:
        sdk.send_intent({"intent_type": "intent.bare.v1", "to_agent": "no spaces allowed"})
    assert "to_agent" in str(bad.value)


def test_one_owner_key_listens_as_two_agents(sdk: AxmeClient, url: str, local_key: str) -> None:
    first, second = address(), address()
    listeners = [Listener(url, local_key, a.removeprefix("agent://")) for a in (first, second)]
    try:
        sent = [
            sdk.send_intent({"intent_type": "intent.two.v1", "to_agent": a})
            for a in (first, second)
        ]
        got = [listener.first() for listener in listeners]
        assert [g["intent_id"] for g in got] == sent
        for intent_id in sent:  # the owner's key resumes what either stream got
            sdk.resume_intent(intent_id, {"action": "complete", "done": True})
        assert [sdk.get_intent(i)["status"] for i in sent] == ["COMPLETED", "COMPLETED"]
    finally:
        for listener in listeners:
            listener.close()


def test_a_failure_keeps_what_the_agent_said(sdk: AxmeClient, url: str, local_key: str) -> None:
    agent = address()
    listener = Listener(url, local_key, agent)
    try:
        intent_id = sdk.send_intent({"intent_type": "intent.check.v1", "to_agent": agent})
        listener.first()
        failures = [{"check": "disk", "error": "full"}, {"check": "dns", "error": "timeout"}]
        sdk.resume_intent(
            intent_id, {"action": "fail", "reason": "2 checks failed", "failures": failures}
        )
    finally:
        listener.close()
    error = sdk.get_intent(intent_id)["error"]
    assert error["message"] == "2 checks failed" and error["failures"] == failures
    final = sdk.wait_for(intent_id, timeout_seconds=10)
    assert final["status"] == "FAILED" and final["details"]["error"]["failures"] == failures


def test_mesh_heartbeats_health_kill_and_resume(daemon: Daemon, sdk: AxmeClient, url: str) -> None:
    agent = address()
    agent_key = make_key(daemon, f"agent:{agent}")
    reader = make_key(daemon, "intents:read")
    with client(url, agent_key) as me:
        beat = me.mesh.heartbeat(metrics={"intents_total": 3, "avg_latency_ms": 12.5})
        assert (beat["address"], beat["health_status"]) == (agent, "healthy")
        listed = {a["address"]: a for a in sdk.mesh.list_agents()["agents"]}
        assert listed[agent]["metrics"] == {"intents_total": 3, "avg_latency_ms": 12.5}
        aid = listed[agent]["address_id"]
        assert sdk.mesh.get_agent(aid)["agent"]["last_heartbeat_at"] == beat["last_heartbeat_at"]

        with client(url, reader) as r, pytest.raises(AxmeAuthError):
            r.mesh.kill(aid)  # agents:admin only
        killed = sdk.mesh.kill(aid)["agent"]
        assert killed["health_status"] == "killed" and killed["killed_at"]
        assert [a["address"] for a in sdk.mesh.list_agents(health="killed")["agents"]] == [agent]
        with pytest.raises(AxmeAuthError) as refused:
            sdk.send_intent({"intent_type": "intent.mesh.v1", "to_agent": agent})
        assert "killed" in str(refused.value)
        with pytest.raises(AxmeAuthError):
            me.send_intent({"intent_type": "intent.mesh.v1", "to_agent": address()})  # from it
        with pytest.raises(AxmeAuthError):
            next(iter(me.listen(agent, wait_seconds=1, timeout_seconds=5)))
        assert me.mesh.heartbeat()["health_status"] == "killed"
        assert sdk.mesh.resume(aid)["resumed"] is True
        assert sdk.mesh.resume(aid)["resumed"] is False
        assert me.mesh.heartbeat()["health_status"] == "healthy"
        sdk.send_intent({"intent_type": "intent.mesh.v1", "to_agent": agent})


def test_a_kill_outlives_the_daemon(axme_home: Path) -> None:
    own = Daemon(axme_home, "--listen", "127.0.0.1:0").start()
    try:
        agent = address()
        with own.client() as raw:
            raw.post("/v1/keys", json={"name": "a", "scopes": [f"agent:{agent}"]})
            killed = raw.post(f"/v1/mesh/agents/{agent.removeprefix('agent://')}/kill")
            assert killed.status_code == 200, killed.text
        own.stop()
        own.start()
        health = own.health()
        with client(health["tcp"], health["api_key"]) as c:
            assert c.mesh.get_agent(agent)["agent"]["health_status"] == "killed"
            with pytest.raises(AxmeAuthError):
                c.send_intent({"intent_type": "intent.mesh.v1", "to_agent": agent})
    finally:
        own.stop()


def test_mesh_bad_input_changes_nothing(daemon: Daemon, sdk: AxmeClient, url: str) -> None:
    before = sdk.mesh.list_agents()["agents"]
    with pytest.raises(AxmeHttpError) as unknown:
        sdk.mesh.kill("nobody/x/y")
    assert unknown.value.status_code == 404
    with pytest.raises(AxmeValidationError) as bad:
        sdk.mesh.kill("not an address")
    assert bad.value.status_code == 400
    with pytest.raises(AxmeValidationError):
        sdk.mesh.list_agents(health="sick")
    with pytest.raises(AxmeValidationError) as owner:
        sdk.mesh.heartbeat()  # the owner's key is no agent's
    assert "agent's key" in str(owner.value)
    agent = address()
    with client(url, make_key(daemon, f"agent:{agent}")) as me:
        for metrics in ({"intents_total": -1}, {"mood": 1}):
            with pytest.raises(AxmeValidationError):
                me.mesh.heartbeat(metrics=metrics)
    after = {a["address"]: a for a in sdk.mesh.list_agents()["agents"]}
    assert [a for a in after.values() if a["health_status"] == "killed"] == [
        a for a in before if a["health_status"] == "killed"
    ]
    assert (after[agent]["last_heartbeat_at"], after[agent]["metrics"]) == (None, {})
