"""The mesh's kill switch on an agent the daemon runs: its open stream ends, it gets no new
work, and it waits unharmed (not restarted, not FATAL) until it is resumed."""

from __future__ import annotations

from pathlib import Path

from tests.agents import add_agent, agent_status, running_pids, send, wait_final
from tests.daemon import Daemon, wait_for

ADDRESS = "agent://mesh/dev/echo"
TYPE = "intent.test.echo.v1"


def test_a_killed_supervised_agent_waits_until_resumed(daemon: Daemon, tmp_path: Path) -> None:
    path = ADDRESS.removeprefix("agent://")
    log = daemon.home / "logs" / "agents" / "mesh.dev.echo.log"
    with daemon.client() as c:
        add_agent(c, ADDRESS, "echo_agent.py", tmp_path)
        (pid,) = wait_for(lambda: running_pids(c, ADDRESS), timeout=30)
        first = send(c, ADDRESS, TYPE, {"n": 1})
        assert wait_final(daemon, [first])[first]["status"] == "COMPLETED"

        killed = c.post(f"/v1/mesh/agents/{path}/kill")
        assert killed.status_code == 200, killed.text
        refused = c.post("/v1/intents", json={"intent_type": TYPE, "to_agent": ADDRESS})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "agent_killed"
        # Its held stream ended at once; the one it asks for next is refused, and it says so.
        wait_for(lambda: log.exists() and "is killed" in log.read_text(), timeout=15)
        assert running_pids(c, ADDRESS) == [pid]

        assert c.post(f"/v1/mesh/agents/{path}/resume").json()["resumed"] is True
        second = send(c, ADDRESS, TYPE, {"n": 2})
        assert wait_final(daemon, [second], timeout=30)[second]["status"] == "COMPLETED"
        assert running_pids(c, ADDRESS) == [pid]
        assert agent_status(c, ADDRESS)["replicas"][0]["restarts"] == 0
