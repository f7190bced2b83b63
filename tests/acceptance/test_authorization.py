"""Who can do what on the TCP listener: a test per row of the README's table, over real TCP,
with real keys (the supervisor's per-process keys, keys from `/v1/keys`, `AXME_API_KEYS`),
against a real daemon.

Each principal tries every endpoint it must not use and is refused (403, or 409 for an
intent of its own agent delivered to another worker), and the store is the same after;
then it does what it may, and what it decides is recorded under its own name.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig
from axme_sdk.exceptions import AxmeAuthError

from tests.agents import add_agent, intent, send
from tests.daemon import Daemon, run_cli, wait_for

OWNER_KEY = "owner-" + secrets.token_hex(16)
A = "agent://t/dev/a"
B = "agent://t/dev/b"
TYPE = "intent.test.auth.v1"

#: The keys made for people and programs, by name.
NAMED = {
    "reader": ["intents:read"],
    "writer": ["intents:write"],
    "decider": ["tasks:decide"],
    "admin": ["agents:admin"],
}


@dataclass
class World:
    daemon: Daemon
    tcp: str
    keys: dict[str, str]  # principal → key: A1, A2, B1 (agent processes), NAMED, owner
    workers: dict[str, str]  # A1, A2, B1 → worker id
    ids: dict[str, str]  # iA1, iA2 (leased to A1, A2), iB (leased to B1), iH, tH (a task)
    marker: Path  # what the /bin/sh agent would write

    def client(self, who: str, **headers: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.tcp, headers={"x-api-key": self.keys[who], **headers}, timeout=15
        )

    def call(self, who: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
        with self.client(who, **headers) as c:
            return c.request(method, path, json=body)

    def snapshot(self) -> dict[str, Any]:
        """The store as the owner sees it: every intent's status and timeline length, every
        task, agent, process and key."""
        with self.daemon.client() as owner:
            intents = owner.get("/v1/intents", params={"limit": 500}).json()["intents"]
            tasks = owner.get("/v1/tasks", params={"status": ""}).json()["tasks"]
            agents = owner.get("/v1/agents").json()["agents"]
            keys = owner.get("/v1/keys").json()["keys"]
        return {
            "intents": sorted((i["intent_id"], i["status"], i["last_seq"]) for i in intents),
            "tasks": sorted((t["task_id"], t["status"], str(t.get("decision"))) for t in tasks),
            "agents": sorted(
                (a["address"], str([(r["pid"], r["restarts"]) for r in a["replicas"]]))
                for a in agents
            ),
            "keys": keys,
        }


def _held_keys(root: Path) -> dict[str, dict[str, str]] | None:
    """The keys the agent processes wrote (A1, A2, B1), once all three have."""
    held: dict[str, dict[str, str]] = {}
    for letter, replicas in (("a", 2), ("b", 1)):
        found = sorted(
            (json.loads(p.read_text()) for p in (root / letter / "keys").glob("*.json")),
            key=lambda k: k["AXME_WORKER_ID"],
        )
        if len(found) < replicas:
            return None
        for n, each in enumerate(found, 1):
            held[f"{letter.upper()}{n}"] = each
    return held


def _take(tcp: str, key: str, address: str) -> str:
    """Open the agent stream with `key` and return the first intent it delivers."""
    path = f"/v1/agents/{address.removeprefix('agent://')}/intents/stream"
    with (
        httpx.Client(base_url=tcp, headers={"x-api-key": key}, timeout=15) as c,
        c.stream("GET", path, params={"wait_seconds": 10}) as response,
    ):
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data:") and '"intent_id"' in line:
                return str(json.loads(line[5:])["intent_id"])
    raise AssertionError(f"nothing delivered to {address}")


@pytest.fixture
def world(axme_home: Path, tmp_path: Path) -> Iterator[World]:
    daemon = Daemon(axme_home, "--listen", "127.0.0.1:0", env={"AXME_API_KEYS": OWNER_KEY})
    daemon.start()
    try:
        with daemon.client() as owner:
            for address, replicas in ((A, 2), (B, 1)):
                cwd = tmp_path / address[-1]
                cwd.mkdir()
                add_agent(owner, address, "key_holder.py", cwd, replicas=replicas)
            held = wait_for(lambda: _held_keys(tmp_path), timeout=30, what="the agents' keys")
            keys = {who: k["AXME_API_KEY"] for who, k in held.items()}
            for name, scopes in NAMED.items():
                made = owner.post("/v1/keys", json={"name": name, "scopes": scopes})
                assert made.status_code == 200, made.text
                keys[name] = made.json()["key"]
            keys["owner"] = OWNER_KEY
            tcp = daemon.health()["tcp"]
            ids = {}
            for name, who, address in (("iA1", "A1", A), ("iA2", "A2", A), ("iB", "B1", B)):
                ids[name] = send(owner, address, TYPE, {"n": name})
                assert _take(tcp, keys[who], address) == ids[name]
            # A person's own task on A's address (else A's agent would get it first).
            human = {
                "intent_type": TYPE,
                "to_agent": A,
                "human_task": {"title": "Ship it?"},
                "agent_first": False,
            }
            ids["iH"] = owner.post("/v1/intents", json=human).json()["intent_id"]
            tasks = owner.get("/v1/tasks", params={"intent_id": ids["iH"]}).json()["tasks"]
            ids["tH"] = tasks[0]["task_id"]
        workers = {who: k["AXME_WORKER_ID"] for who, k in held.items()}
        yield World(daemon, tcp, keys, workers, ids, tmp_path / "pwned")
    finally:
        daemon.stop()


def endpoints(w: World) -> dict[str, tuple[str, str, Any, str | None]]:
    """Every endpoint, aimed at B's work and the task (so that one let through would change
    something), with the scope that opens it (None: the owner's, or the agent's own)."""
    i, t, b = w.ids["iB"], w.ids["tH"], B.removeprefix("agent://")
    sh = {"address": "agent://t/dev/sh", "command": ["/bin/sh", "-c", f"id > {w.marker}"]}
    return {
        "create": ("POST", "/v1/intents", {"intent_type": TYPE, "to_agent": B}, "intents:write"),
        "list": ("GET", "/v1/intents", None, "intents:read"),
        "get": ("GET", f"/v1/intents/{i}", None, "intents:read"),
        "events": ("GET", f"/v1/intents/{i}/events", None, "intents:read"),
        "follow": ("GET", f"/v1/intents/{i}/events/stream?wait_seconds=0", None, "intents:read"),
        "steps": ("GET", f"/v1/intents/{i}/steps", None, "intents:read"),
        "watch": ("GET", "/v1/watch?wait_seconds=0", None, "intents:read"),
        "resolve": ("POST", f"/v1/intents/{i}/resolve", {"status": "CANCELED"}, "intents:write"),
        "retry": ("POST", f"/v1/intents/{i}/retry", None, "intents:write"),
        "signal": ("POST", f"/v1/intents/{i}/signals/go", {"data": 1}, "intents:write"),
        "resume": ("POST", f"/v1/intents/{i}/resume", {"action": "complete"}, None),
        "record": ("POST", f"/v1/intents/{i}/steps", {"ordinal": 1, "key": "s", "result": 1}, None),
        "progress": ("POST", f"/v1/intents/{i}/progress", {"message": "hi"}, None),
        "wait": (
            "POST",
            f"/v1/intents/{i}/waits",
            {"kind": "time", "ordinal": 1, "key": "nap", "arguments": {"seconds": 60}},
            None,
        ),
        "report": (
            "POST",
            "/v1/reports",
            {"reports": [{"intent_id": i, "outcome": {"action": "complete"}}]},
            None,
        ),
        "stream": ("GET", f"/v1/agents/{b}/intents/stream?wait_seconds=0", None, None),
        "heartbeat": ("POST", f"/v1/workers/{w.workers['B1']}/heartbeat", None, None),
        "tasks": ("GET", "/v1/tasks", None, "tasks:decide"),
        "task": ("GET", f"/v1/tasks/{t}", None, "tasks:decide"),
        "my_tasks": ("GET", "/v1/me/tasks", None, "tasks:decide"),
        "inbox": ("GET", "/v1/inbox", None, "tasks:decide"),
        "thread": ("GET", f"/v1/inbox/{t}", None, "tasks:decide"),
        "decide": ("POST", f"/v1/tasks/{t}/decision", {"outcome": "approved"}, "tasks:decide"),
        "approval": (
            "POST",
            f"/v1/approvals/{t}/decision",
            {"decision": "approve"},
            "tasks:decide",
        ),
        "inbox_approve": ("POST", f"/v1/inbox/{t}/approve", None, "tasks:decide"),
        "inbox_reject": ("POST", f"/v1/inbox/{t}/reject", None, "tasks:decide"),
        "resume_decision": (
            "POST",
            f"/v1/intents/{w.ids['iH']}/resume",
            {"task_result": {"outcome": "approved"}, "actor": "alice"},
            "tasks:decide",
        ),
        "agents": ("GET", "/v1/agents", None, "agents:admin"),
        "agent": ("GET", f"/v1/agents/{b}", None, "agents:admin"),
        "add_agent": ("POST", "/v1/agents", {**sh, "cwd": "/"}, "agents:admin"),
        "apply": (
            "POST",
            "/v1/projects/apply",
            {"config_path": "/x/axme.toml", "project_dir": "/x", "digest": "d", "agents": []},
            "agents:admin",
        ),
        "restart": ("POST", f"/v1/agents/{b}/restart", None, "agents:admin"),
        "remove": ("DELETE", f"/v1/agents/{b}", None, "agents:admin"),
        "daemons": ("GET", "/v1/daemons", None, "intents:read"),
        "keys": ("GET", "/v1/keys", None, None),
        "make_key": ("POST", "/v1/keys", {"name": "mine", "scopes": ["agents:admin"]}, None),
        "revoke_key": ("DELETE", "/v1/keys/admin", None, None),
    }


_READS = {"list", "get", "events", "follow", "steps", "watch", "agents", "agent", "daemons"}
_TASK_READS = {"tasks", "task", "my_tasks", "inbox", "thread"}
_DECISIONS = {"decide", "approval", "inbox_approve", "inbox_reject", "resume_decision"}
#: What each principal may use of `endpoints` (all aimed at another agent's work).
MAY = {
    "A1": {"create"},  # an agent may send intents anywhere; B's work is not its own
    "reader": _READS | _TASK_READS,
    "writer": {"create", "resolve", "retry", "signal"},
    "decider": _TASK_READS | _DECISIONS,
    "admin": {"agents", "agent", "add_agent", "apply", "restart", "remove", "daemons"},
}


@pytest.mark.parametrize("who", sorted(MAY))
def test_each_principal_is_refused_every_endpoint_it_must_not_use_and_nothing_changes(
    world: World, who: str
) -> None:
    before = world.snapshot()
    refused = {}
    for name, (method, path, body, scope) in endpoints(world).items():
        if name in MAY[who]:
            continue
        response = world.call(who, method, path, body)
        refused[name] = response.status_code
        error = response.json()["error"]
        assert response.status_code == 403, f"{who} {name}: {response.text}"
        assert error["code"] == "forbidden"
        if scope is not None and name != "agents" and name != "agent":
            assert scope in error["message"], f"{who} {name}: {error['message']}"
        assert world.keys[who] not in response.text
    assert len(refused) == len(endpoints(world)) - len(MAY[who])
    assert world.snapshot() == before
    assert not world.marker.exists()


def test_an_agent_key_works_on_its_own_deliveries_and_reads_only_its_own(world: World) -> None:
    i = world.ids
    with world.client("A1") as a1:
        # It reads what is addressed to its agent, lists only its own address.
        assert a1.get(f"/v1/intents/{i['iH']}").status_code == 200
        assert a1.get("/v1/intents", params={"to_agent": A}).status_code == 200
        assert a1.get("/v1/intents", params={"to_agent": B}).status_code == 403
        # It sends as its own agent, and reads what it sent.
        sent = a1.post("/v1/intents", json={"intent_type": TYPE, "to_agent": B})
        assert sent.json()["intent"]["from_agent"] == A
        assert a1.get(f"/v1/intents/{sent.json()['intent_id']}").status_code == 200
        posing = {"intent_type": TYPE, "to_agent": B, "from_agent": B}
        refused = a1.post("/v1/intents", json=posing)
        assert refused.status_code == 403 and "from_agent" in refused.json()["error"]["message"]
        # Its own delivery: steps, progress, the outcome.
        steps = a1.post(f"/v1/intents/{i['iA1']}/steps", json={"ordinal": 1, "key": "s"})
        assert steps.status_code == 200, steps.text
        done = a1.post(f"/v1/intents/{i['iA1']}/resume", json={"action": "complete"})
        assert done.status_code == 200, done.text
    with world.daemon.client() as owner:
        assert intent(owner, i["iA1"])["status"] == "COMPLETED"


def test_a_spoofed_worker_header_is_ignored_on_tcp(world: World) -> None:
    """A1's key naming A2's or B1's worker is still A1: A2's lease is a 409, B's work a 403."""
    i, w = world.ids, world.workers
    before = world.snapshot()
    as_a2 = world.call(
        "A1", "POST", f"/v1/intents/{i['iA2']}/resume", {}, **{"X-Axme-Worker": w["A2"]}
    )
    assert as_a2.status_code == 409, as_a2.text
    report = {"reports": [{"intent_id": i["iA2"], "outcome": {"action": "complete"}}]}
    assert (
        world.call("A1", "POST", "/v1/reports", report, **{"X-Axme-Worker": w["A2"]}).status_code
        == 409
    )
    as_b1 = world.call(
        "A1", "POST", f"/v1/intents/{i['iB']}/resume", {}, **{"X-Axme-Worker": w["B1"]}
    )
    assert as_b1.status_code == 403, as_b1.text
    stream = f"/v1/agents/{B.removeprefix('agent://')}/intents/stream?wait_seconds=0"
    assert world.call("A1", "GET", stream, **{"X-Axme-Worker": w["B1"]}).status_code == 403
    assert world.snapshot() == before


def test_a_persons_decision_is_only_a_persons(world: World) -> None:
    """No agent outcome ends an intent that waits for a person, whoever sends it; a
    decision is recorded under the deciding key's name, never a name in the body."""
    i = world.ids
    before = world.snapshot()
    for who in ("A1", "owner"):
        answer = world.call(who, "POST", f"/v1/intents/{i['iH']}/resume", {"action": "complete"})
        assert answer.status_code == 409, f"{who}: {answer.text}"
    with world.daemon.client() as owner:  # the owner on the socket too
        answer = owner.post(f"/v1/intents/{i['iH']}/resume", json={"action": "complete"})
        assert answer.status_code == 409 and "person" in answer.json()["error"]["message"]
        retry = {"action": "fail", "error": "x", "retryable": True}
        assert owner.post(f"/v1/intents/{i['iH']}/resume", json=retry).status_code == 409
        report = {"reports": [{"intent_id": i["iH"], "outcome": {"action": "complete"}}]}
        (part,) = owner.post("/v1/reports", json=report).json()["reports"]
        assert part["status_code"] == 409, part
    posing = world.call(
        "decider",
        "POST",
        f"/v1/tasks/{i['tH']}/decision",
        {
            "outcome": "approved",
            "actor": "alice",
        },
    )
    assert posing.status_code == 403 and "actor" in posing.json()["error"]["message"]
    assert world.snapshot() == before

    decided = world.call(
        "decider", "POST", f"/v1/tasks/{i['tH']}/decision", {"outcome": "approved"}
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["task"]["decision"]["actor"] == "decider"


def test_reader_writer_and_admin_keys_do_what_their_scopes_say(world: World) -> None:
    i = world.ids
    assert world.call("reader", "GET", f"/v1/intents/{i['iB']}").status_code == 200
    assert world.call("reader", "GET", "/v1/tasks").status_code == 200
    for who in ("reader", "admin"):  # the daemons sharing the store: a read, or an admin's
        listed = world.call(who, "GET", "/v1/daemons")
        assert listed.status_code == 200 and len(listed.json()["daemons"]) == 1, listed.text
    canceled = world.call(
        "writer", "POST", f"/v1/intents/{i['iB']}/resolve", {"status": "CANCELED"}
    )
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["event"]["actor"] == "writer"
    restarted = world.call("admin", "POST", f"/v1/agents/{B.removeprefix('agent://')}/restart")
    assert restarted.status_code == 200, restarted.text


def test_owner_keys_and_the_socket_may_do_everything_and_act_as_someone_else(
    world: World,
) -> None:
    assert world.call("owner", "GET", "/v1/keys").status_code == 200
    made = world.call("owner", "POST", "/v1/keys", {"name": "ci", "scopes": ["intents:read"]})
    assert made.status_code == 200, made.text
    with world.daemon.client() as owner:
        decided = owner.post(
            f"/v1/tasks/{world.ids['tH']}/decision", json={"outcome": "approved", "actor": "alice"}
        )
    assert decided.json()["task"]["decision"]["actor"] == "alice"


def test_unknown_and_revoked_keys_are_401_for_the_official_sdk_too(world: World) -> None:
    for key in ("", "not-a-key-" + secrets.token_hex(8)):
        response = httpx.get(f"{world.tcp}/health", headers={"x-api-key": key}, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_platform_api_key"
        assert not key or key not in response.text
    with world.daemon.client() as owner:
        assert owner.delete("/v1/keys/reader").status_code == 200
    assert world.call("reader", "GET", "/v1/intents").status_code == 401
    sdk = AxmeClient(AxmeClientConfig(base_url=world.tcp, api_key=world.keys["reader"]))
    with pytest.raises(AxmeAuthError):
        sdk.get_intent(world.ids["iB"])
    sdk.close()
    log = world.daemon.log()
    assert log and not any(key in log for key in world.keys.values())


def test_axme_keys_cli_shows_a_key_once_and_stores_only_its_hash(cli_home: Path) -> None:
    made = run_cli(
        cli_home, "keys", "create", "ci-bot", "--scope", "intents:read", "-s", "tasks:decide"
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("axme_") and len(key) > 40
    listed = run_cli(cli_home, "keys", "list", "--json")
    (record,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (record["name"], record["scopes"]) == ("ci-bot", ["intents:read", "tasks:decide"])
    assert key not in listed.stdout and "key" not in record
    db = sqlite3.connect(cli_home / "axme.db")
    (stored,) = db.execute("SELECT key_hash FROM api_keys").fetchone()
    db.close()
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    for part in cli_home.glob("axme.db*"):  # the database and its WAL
        assert key.encode() not in part.read_bytes()
    again = run_cli(cli_home, "keys", "create", "ci-bot", "--scope", "intents:read")
    assert again.returncode == 4 and "exists already" in again.stderr
    bad = run_cli(cli_home, "keys", "create", "x", "--scope", "root")
    assert bad.returncode == 2 and "unknown scope 'root'" in bad.stderr
    assert run_cli(cli_home, "keys", "revoke", "ci-bot").returncode == 0
    assert run_cli(cli_home, "keys", "revoke", "ci-bot").returncode == 3


def test_an_agent_scoped_key_is_a_worker_of_that_agent_only(world: World) -> None:
    """`agent:ADDRESS`: a program that runs an agent outside the daemon gets that agent's
    deliveries under a worker named for the key, and nothing of another agent's."""
    with world.daemon.client() as owner:
        made = owner.post("/v1/keys", json={"name": "outside", "scopes": [f"agent:{B}"]})
        assert made.status_code == 200, made.text
        world.keys["outside"] = made.json()["key"]
        fresh = send(owner, B, TYPE, {"n": "outside"})
    assert _take(world.tcp, world.keys["outside"], B) == fresh
    with world.daemon.client() as owner:
        assert intent(owner, fresh)["leased_to"] == "key-outside"
    done = world.call("outside", "POST", f"/v1/intents/{fresh}/resume", {"action": "complete"})
    assert done.status_code == 200, done.text
    other = world.call("outside", "POST", f"/v1/intents/{world.ids['iA1']}/resume", {})
    assert other.status_code == 403
    stream = f"/v1/agents/{A.removeprefix('agent://')}/intents/stream?wait_seconds=0"
    assert world.call("outside", "GET", stream).status_code == 403
