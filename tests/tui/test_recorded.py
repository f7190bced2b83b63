"""The recorded source the snapshots use answers in the daemon's own shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from axme_cli.aclient import AsyncDaemonClient
from tests.agents import add_agent, running_pids, send
from tests.daemon import Daemon, wait_for
from tests.tui import recorded

ADDRESS = "agent://test/tui/shapes"


def _missing(recorded_row: dict[str, Any], real_row: dict[str, Any]) -> set[str]:
    return set(recorded_row) - set(real_row)


async def test_recorded_shapes_match_a_real_daemon(daemon: Daemon, axme_home: Path) -> None:
    with daemon.client() as client:
        add_agent(client, ADDRESS, "waiting_agent.py", axme_home, env={"STEP_LOG": "/dev/null"})
        wait_for(lambda: running_pids(client, ADDRESS), timeout=20, what="the agent")
        send(client, ADDRESS, "intent.test.approval.v1", {})
        wait_for(lambda: client.get("/v1/tasks").json()["tasks"], timeout=20, what="a task")
    source = AsyncDaemonClient(daemon.socket)
    try:
        (task,) = await source.list_tasks()
        (intent,) = await source.list_intents()
        detail = await source.get_intent(intent["intent_id"])
        steps = await source.list_steps(intent["intent_id"])
        events = await source.list_events(intent["intent_id"])
        (agent,) = await source.list_agents()
    finally:
        await source.aclose()
    assert not _missing(recorded.TASKS[0], task)
    assert not _missing(recorded.INTENTS[0], intent)
    fake_detail = await recorded.RecordedSource().get_intent(recorded.INTENTS[0]["intent_id"])
    assert not _missing(fake_detail, detail)
    assert not _missing(recorded.STEPS[0], steps[0])
    assert not _missing(recorded.AGENT_ROWS[0], agent)
    assert not _missing(recorded.AGENT_ROWS[0]["replicas"][0], agent["replicas"][0])
    kinds = {e["event_type"] for e in events}
    assert {"intent.submitted", "intent.delivered", "intent.human_task_assigned"} <= kinds
    assert not _missing(recorded.events("x")[0], events[0])
