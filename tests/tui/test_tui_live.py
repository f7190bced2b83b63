"""The TUI against a real daemon and a real agent, driven by keys through Textual's Pilot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from textual.widgets import RichLog

from axme_cli.tui.decide import DecisionScreen
from axme_cli.tui.inbox import InboxScreen, TaskScreen
from axme_cli.tui.intents import IntentScreen, IntentsScreen
from axme_cli.tui.widgets import ConfirmScreen, HelpScreen
from tests.agents import add_agent, agent_status, running_pids, send, wait_final
from tests.daemon import Daemon, wait_for
from tests.tui.pilot import SIZE, app_for, cell, rows, text_of, type_text, until

ADDRESS = "agent://test/tui/ops"
APPROVAL = "intent.test.approval.v1"


def _start_agent(daemon: Daemon, home: Path) -> None:
    with daemon.client() as client:
        add_agent(client, ADDRESS, "waiting_agent.py", home, env={"STEP_LOG": str(home / "s.log")})
        wait_for(lambda: running_pids(client, ADDRESS), timeout=20, what="the agent")


def _pending(client: httpx.Client, count: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = client.get("/v1/tasks").json()["tasks"]
        return tasks if len(tasks) >= count else []

    return wait_for(enough, timeout=20, what=f"{count} pending tasks")  # type: ignore[no-any-return]


def _waiting(daemon: Daemon, home: Path) -> tuple[str, dict[str, Any]]:
    """An agent running, and an intent of it waiting for a person: (its id, its task)."""
    _start_agent(daemon, home)
    with daemon.client() as client:
        intent_id = send(client, ADDRESS, APPROVAL, {})
        (task,) = _pending(client, 1)
    return intent_id, task


def _task(client: httpx.Client, task_id: str) -> dict[str, Any]:
    return client.get(f"/v1/tasks/{task_id}").json()["task"]  # type: ignore[no-any-return]


async def test_approve_by_keys_then_see_the_intent_complete_in_the_intents_screen(
    daemon: Daemon, axme_home: Path
) -> None:
    intent_id, task = _waiting(daemon, axme_home)
    app = app_for(daemon, actor="oncall")
    async with app.run_test(size=SIZE) as pilot:
        # The inbox is the first screen when something waits for a person.
        await until(pilot, lambda: rows(pilot, "tasks") == [task["task_id"]], what="the inbox")
        assert isinstance(app.screen, InboxScreen)
        assert cell(pilot, "tasks", task["task_id"], "title") == "Apply migration?"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TaskScreen), what="the task")
        # The approver sees the steps already done and the plan the agent proposes.
        await until(pilot, lambda: "validate" in text_of(pilot, "#steps"), what="steps")
        assert '"plan": "validate"' in text_of(pilot, "#details")
        assert "intent.human_task_assigned" in text_of(pilot, "#timeline")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, DecisionScreen), what="the form")
        await type_text(pilot, "looks fine")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, InboxScreen), what="back in inbox")
        await until(pilot, lambda: rows(pilot, "tasks") == [], what="an empty inbox")
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, IntentsScreen), what="intents")
        await until(
            pilot,
            lambda: cell(pilot, "intents", intent_id, "status") == "COMPLETED",
            what="COMPLETED in the intents table",
        )
    final = wait_final(daemon, [intent_id])[intent_id]
    assert final["result"] == {"status": "apply", "by": "oncall", "comment": "looks fine"}


async def test_approve_from_the_intents_own_screen_while_it_waits_for_a_person(
    daemon: Daemon, axme_home: Path
) -> None:
    intent_id, _ = _waiting(daemon, axme_home)
    app = app_for(daemon, start_mode="intents", actor="oncall")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: rows(pilot, "intents") == [intent_id], what="the intent")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IntentScreen), what="its screen")
        # It says what it waits for, and the footer offers the decision.
        await until(pilot, lambda: "Apply migration?" in text_of(pilot, "#fields"))
        assert {"a", "r"} <= set(app.screen.active_bindings)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, DecisionScreen), what="the form")
        await type_text(pilot, "from the detail")
        await pilot.press("ctrl+s")
        # Back on the same intent, which goes on to complete; nothing is left to decide.
        await until(pilot, lambda: isinstance(app.screen, IntentScreen), what="back")
        await until(pilot, lambda: "COMPLETED" in text_of(pilot, "#fields"), what="done")
        await until(pilot, lambda: not {"a", "r"} & set(app.screen.active_bindings))
        assert "Apply migration?" not in text_of(pilot, "#fields")
        await pilot.press("a")  # no task: the key does nothing
        await pilot.pause()
        assert isinstance(app.screen, IntentScreen)
    final = wait_final(daemon, [intent_id])[intent_id]
    assert final["result"] == {"status": "apply", "by": "oncall", "comment": "from the detail"}


async def test_reject_with_a_comment_the_task_requires(daemon: Daemon, axme_home: Path) -> None:
    _start_agent(daemon, axme_home)
    with daemon.client() as client:
        intent_id = send(client, ADDRESS, APPROVAL, {"task": {"required_comment": True}})
        (task,) = _pending(client, 1)
        app = app_for(daemon, start_mode="inbox")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: rows(pilot, "tasks") == [task["task_id"]], what="inbox")
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, DecisionScreen), what="the form")
            await pilot.press("ctrl+s")  # no comment yet: refused here, nothing sent
            await until(pilot, lambda: "needs a comment" in text_of(pilot, "#error"))
            assert _task(client, task["task_id"])["status"] == "PENDING"
            await type_text(pilot, "not during the freeze")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, InboxScreen), what="the inbox")
        final = wait_final(daemon, [intent_id])[intent_id]
        decided = _task(client, task["task_id"])
    assert decided["decision"]["outcome"] == "rejected"
    assert decided["decision"]["comment"] == "not during the freeze"
    assert final["result"]["status"] == "rejected"


FORM = {
    "type": "object",
    "properties": {
        "ticket": {"type": "string", "pattern": "^OPS-[0-9]+$", "description": "change ticket"},
        "replicas": {"type": "integer", "minimum": 1},
    },
    "required": ["ticket"],
}


async def test_a_form_refuses_an_invalid_value_then_takes_a_valid_one(
    daemon: Daemon, axme_home: Path
) -> None:
    _start_agent(daemon, axme_home)
    with daemon.client() as client:
        intent_id = send(client, ADDRESS, APPROVAL, {"task": {"form_schema": FORM}})
        (task,) = _pending(client, 1)
        app = app_for(daemon, start_mode="inbox")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: rows(pilot, "tasks"), what="the inbox")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TaskScreen), what="the task")
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, DecisionScreen), what="the form")
            await type_text(pilot, "abc")  # the ticket field has the focus
            await pilot.press("tab")
            await type_text(pilot, "0")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: "does not match" in text_of(pilot, "#error-ticket"))
            assert "minimum of 1" in text_of(pilot, "#error-replicas")
            assert isinstance(app.screen, DecisionScreen)
            assert _task(client, task["task_id"])["status"] == "PENDING"
            await pilot.click("#field-ticket")
            await pilot.press("end", "ctrl+u")
            await type_text(pilot, "OPS-7")
            await pilot.click("#field-replicas")
            await pilot.press("end", "ctrl+u")
            await type_text(pilot, "3")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, InboxScreen), what="the inbox")
        wait_final(daemon, [intent_id])[intent_id]
        decided = _task(client, task["task_id"])
    assert decided["decision"]["data"] == {"ticket": "OPS-7", "replicas": 3}


async def test_cancel_an_intent_after_confirming(daemon: Daemon, axme_home: Path) -> None:
    _start_agent(daemon, axme_home)
    with daemon.client() as client:
        keep_id = send(client, ADDRESS, APPROVAL, {})
        cancel_id = send(client, ADDRESS, APPROVAL, {})
        _pending(client, 2)
        app = app_for(daemon, start_mode="intents")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: rows(pilot, "intents") == [cancel_id, keep_id])
            # Newest first: the cursor is on the intent to cancel. `n` changes nothing.
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="a question")
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, IntentsScreen))
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="a question")
            await pilot.press("y")
            await until(
                pilot,
                lambda: cell(pilot, "intents", cancel_id, "status") == "CANCELED",
                what="CANCELED in the table",
            )
            assert cell(pilot, "intents", keep_id, "status") == "WAITING"
            # The detail view of the canceled intent shows it in the timeline.
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, IntentScreen))
            await until(pilot, lambda: "intent.canceled" in text_of(pilot, "#timeline"))
        assert wait_final(daemon, [cancel_id])[cancel_id]["status"] == "CANCELED"
        assert client.get(f"/v1/intents/{keep_id}").json()["status"] == "WAITING"


async def test_restart_an_agent_from_the_agents_screen(daemon: Daemon, axme_home: Path) -> None:
    _start_agent(daemon, axme_home)
    with daemon.client() as client:
        (old_pid,) = running_pids(client, ADDRESS)
        app = app_for(daemon, start_mode="agents")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: cell(pilot, "agents", ADDRESS, "pid") == str(old_pid))
            assert cell(pilot, "agents", ADDRESS, "state") == "RUNNING"
            # The log pane follows the selected agent's output.
            await until(
                pilot, lambda: app.screen.query_one("#log", RichLog).lines, what="log lines"
            )
            await pilot.press("ctrl+r")

            def new_pid() -> bool:
                shown = cell(pilot, "agents", ADDRESS, "pid")
                return (
                    shown not in (str(old_pid), "-")
                    and cell(pilot, "agents", ADDRESS, "state") == "RUNNING"
                )

            await until(pilot, new_pid, what="a new pid, RUNNING")
        status = agent_status(client, ADDRESS)
    assert status["replicas"][0]["pid"] not in (None, old_pid)


async def test_a_new_task_rings_the_bell_and_shows_a_toast(daemon: Daemon, axme_home: Path) -> None:
    _start_agent(daemon, axme_home)
    app = app_for(daemon, start_mode="intents")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.connected and app.connection.startswith("live"))
        with daemon.client() as client:
            send(client, ADDRESS, APPROVAL, {})
        await until(pilot, lambda: app.bells == 1, what="the bell")

        def toast() -> bool:  # the toast is a message the app handles after the bell
            return any(
                "New task" in (n.title or "") and "Apply migration?" in n.message
                for n in app._notifications
            )

        await until(pilot, toast, what="the toast")
        assert app.bells == 1  # one task, one bell


async def test_says_when_the_daemon_goes_away_and_reconnects_by_itself(
    daemon: Daemon, axme_home: Path
) -> None:
    app = app_for(daemon, start_mode="intents")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.connection.startswith("live"), what="live")
        daemon.stop()
        await until(pilot, lambda: "daemon unreachable" in app.connection, what="the warning")
        assert not app.connected
        again = Daemon(axme_home).start()
        try:
            with again.client() as client:
                intent_id = send(client, "agent://nobody/home", "intent.test.quick.v1", {})
            await until(pilot, lambda: app.connection.startswith("live"), what="live again")
            # What happened while it was away shows up: the screen loaded again.
            await until(pilot, lambda: intent_id in rows(pilot, "intents"), what="the new row")
        finally:
            again.stop()


async def test_question_mark_shows_every_key_of_the_screen(daemon: Daemon) -> None:
    app = app_for(daemon, start_mode="intents")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, IntentsScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = text_of(pilot, "Static")
        for words in ("Cancel", "Retry", "Filter", "Inbox", "Agents", "Quit", "escape"):
            assert words in shown
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, IntentsScreen))


async def test_filter_by_text_and_status_then_retry_a_failed_intent(daemon: Daemon) -> None:
    nobody = "agent://test/tui/nobody"
    with daemon.client() as client:
        deploy = send(client, nobody, "intent.deploy.v1", {})
        report = send(client, nobody, "intent.report.v1", {})
        failed = {"status": "FAILED", "error": {"message": "quota"}}
        assert client.post(f"/v1/intents/{deploy}/resolve", json=failed).status_code == 200
    app = app_for(daemon, start_mode="intents")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: rows(pilot, "intents") == [report, deploy], what="both")
        await pilot.press("slash")
        await type_text(pilot, "report")
        await until(pilot, lambda: rows(pilot, "intents") == [report], what="the text filter")
        assert "1 intent matching" in text_of(pilot, "#count")
        await pilot.press("ctrl+u", "enter")  # clear it; enter goes back to the table
        await until(pilot, lambda: rows(pilot, "intents") == [report, deploy], what="cleared")
        await pilot.click("#status")
        await type_text(pilot, "FAI")
        await pilot.press("enter")
        await until(pilot, lambda: rows(pilot, "intents") == [deploy], what="FAILED only")
        await pilot.press("R")
        # Retried, it is no longer FAILED: it leaves the filtered table and the API agrees.
        await until(pilot, lambda: rows(pilot, "intents") == [], what="the retried row to go")
    with daemon.client() as client:
        assert client.get(f"/v1/intents/{deploy}").json()["status"] == "SUBMITTED"


async def test_an_open_task_decided_elsewhere_closes_with_a_warning(
    daemon: Daemon, axme_home: Path
) -> None:
    _start_agent(daemon, axme_home)
    with daemon.client() as client:
        send(client, ADDRESS, APPROVAL, {})
        (task,) = _pending(client, 1)
        app = app_for(daemon, start_mode="inbox")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: rows(pilot, "tasks") == [task["task_id"]], what="inbox")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TaskScreen), what="the task")
            body = {"outcome": "approved", "actor": "bob"}
            response = client.post(f"/v1/tasks/{task['task_id']}/decision", json=body)
            assert response.status_code == 200
            await until(pilot, lambda: isinstance(app.screen, InboxScreen), what="back in inbox")
            await until(
                pilot,
                lambda: any("decided elsewhere" in n.message for n in app._notifications),
                what="the warning",
            )


async def test_a_scenarios_intent_shows_its_step_and_who_holds_it(daemon: Daemon) -> None:
    """A scenario's sign-off step, decided from the intent's screen: the fields say which
    step it is at and that a person holds it."""
    from tests.acceptance.test_scenarios_cli import SIGN_ONLY

    with daemon.client() as client:
        applied = client.post("/v1/scenarios/apply", json=SIGN_ONLY).json()
    app = app_for(daemon, start_mode="intents", actor="oncall")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: rows(pilot, "intents") == [applied["intent_id"]])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IntentScreen), what="its screen")
        line = "release.gate.v1: step 1 of 1 sign, with a person: ops"
        await until(pilot, lambda: line in text_of(pilot, "#fields"), what="the step")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, DecisionScreen), what="the form")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "COMPLETED" in text_of(pilot, "#fields"), what="done")
        assert "with a person" not in text_of(pilot, "#fields")


async def test_an_intents_screen_tells_its_saga(daemon: Daemon, axme_home: Path) -> None:
    steer = axme_home / "steer"
    steer.mkdir()
    (steer / "fail-notify").touch()
    (steer / "down-book").touch()  # the booking's release keeps failing: a person decides
    saga = "agent://test/tui/trip"
    with daemon.client() as client:
        env = {"STEP_LOG": str(axme_home / "s.log"), "SAGA_DIR": str(steer)}
        add_agent(client, saga, "saga_agent.py", axme_home, env=env)
        wait_for(lambda: running_pids(client, saga), timeout=20, what="the agent")
        intent_id = send(client, saga, "intent.test.saga.v1", {})
        _pending(client, 1)
        app = app_for(daemon, start_mode="intents")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: rows(pilot, "intents") == [intent_id], what="the intent")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, IntentScreen), what="its screen")
            await until(pilot, lambda: "a compensation failed (book)" in text_of(pilot, "#fields"))
            assert "Manual compensation needed: undo for step book" in text_of(pilot, "#fields")
            assert "undo undo: compensated" in text_of(pilot, "#steps")  # the charge's
            assert "undo of charge: compensated" in text_of(pilot, "#timeline")
            (steer / "down-book").unlink()
            assert client.post(f"/v1/intents/{intent_id}/retry", json={}).status_code == 200
            await until(pilot, lambda: "steps undone, FAILED" in text_of(pilot, "#fields"))
        assert wait_final(daemon, [intent_id])[intent_id]["compensated"] is True


async def test_a_task_without_details_says_none(daemon: Daemon) -> None:
    """A scenario's sign-off carries no details: the task screen says so in words, not
    `null`."""
    from tests.acceptance.test_scenarios_cli import SIGN_ONLY

    with daemon.client() as client:
        client.post("/v1/scenarios/apply", json=SIGN_ONLY).raise_for_status()
        (task,) = _pending(client, 1)
    app = app_for(daemon, actor="oncall")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: rows(pilot, "tasks") == [task["task_id"]], what="the inbox")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TaskScreen), what="the task")
        assert text_of(pilot, "#details").strip() == "none"
