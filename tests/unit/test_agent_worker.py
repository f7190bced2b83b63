"""The worker's last word on a delivery: an intent whose handler could not finish normally
fails, saying why, rather than staying IN_PROGRESS with nobody working on it."""

from __future__ import annotations

import threading
from typing import Any

from axme_cli.agent import Agent
from axme_cli.errors import BadInput, Conflict


class Daemon:
    """Stands in for DaemonClient: refuses what `refuse` says, keeps every outcome sent."""

    def __init__(self, refuse: Exception | None = None) -> None:
        self.refuse = refuse
        self.outcomes: list[dict[str, Any]] = []

    def resume(self, intent_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        self.outcomes.append(outcome)
        if self.refuse is not None and outcome["action"] == "complete":
            raise self.refuse
        return {}


def _run(agent: Agent, daemon: Daemon) -> None:
    agent._local.client = daemon
    delivery = {"intent_id": "i-1", "seq": 1, "intent": {"intent_type": "t.v1"}, "steps": []}
    agent._run_one("w-1", delivery, {1}, threading.Lock())


def test_a_refused_report_fails_the_intent_with_the_reason() -> None:
    agent = Agent("agent://t/e/a")
    agent.handler("t.v1")(lambda ctx: {"ok": True})
    daemon = Daemon(refuse=BadInput("step ordinal 4 is out of order: 2 steps are recorded"))
    _run(agent, daemon)
    assert [o["action"] for o in daemon.outcomes] == ["complete", "fail"]
    failure = daemon.outcomes[1]
    assert failure["retryable"] is False
    assert failure["error"] == {
        "type": "ReportRefused",
        "message": "step ordinal 4 is out of order: 2 steps are recorded",
    }


def test_a_lost_lease_sends_nothing_more() -> None:
    agent = Agent("agent://t/e/a")
    agent.handler("t.v1")(lambda ctx: {"ok": True})
    daemon = Daemon(refuse=Conflict("no longer delivered to this worker"))
    _run(agent, daemon)
    assert [o["action"] for o in daemon.outcomes] == ["complete"]  # another worker has it


def test_system_exit_in_a_handler_fails_its_intent() -> None:
    agent = Agent("agent://t/e/a")

    def leave(ctx: Any) -> None:
        raise SystemExit(2)

    agent.handler("t.v1")(leave)
    daemon = Daemon()
    _run(agent, daemon)
    assert daemon.outcomes == [
        {"action": "fail", "error": {"type": "SystemExit", "message": "2"}, "retryable": False}
    ]


def test_a_normal_completion_is_one_outcome() -> None:
    agent = Agent("agent://t/e/a")
    agent.handler("t.v1")(lambda ctx: 7)
    daemon = Daemon()
    _run(agent, daemon)
    assert daemon.outcomes == [{"action": "complete", "result": 7}]


def test_a_daemon_at_its_cap_of_agent_streams_is_asked_again_later() -> None:
    from axme_cli.errors import TooManyStreams

    agent = Agent("agent://t/e/a")
    asked: list[int] = []

    class Full:
        def agent_stream(self, *args: Any, **kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
            asked.append(1)
            if len(asked) == 1:
                raise TooManyStreams("too many agent streams", details={"retry_after": 0.01})
            agent.stop()  # asked again after the pause: enough
            return []

    agent._local.client = Full()
    agent.run()  # returns: the 503 did not end the loop (or the process)
    assert len(asked) == 2
