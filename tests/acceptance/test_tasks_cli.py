"""People in the loop from a shell: `axme inbox | approve | reject | task | signal`.

Tasks come from intents that carry a `human_task` (created over the daemon's API, since `axme
send` has no flag for one) and from an agent's `ctx.request_approval`; everything else is the
CLI as a user runs it, against a real daemon the CLI started.
"""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.agents import add_agent, running_pids
from tests.daemon import env_for, run_cli, wait_for

TYPE = "intent.change.approval.v1"
AGENT = "agent://myorg/production/deployer"
FORM = {
    "type": "object",
    "properties": {"rows": {"type": "integer", "minimum": 1}},
    "required": ["rows"],
}


# -- helpers ---------------------------------------------------------------------------------


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{result.args[3:]} exited {result.returncode}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result


def fails(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one red `error:` line of a command that exited `code` (nothing on stdout)."""
    assert result.returncode == code, (
        f"{result.args[3:]} exited {result.returncode}, expected {code}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == "", result.stdout
    return lines[0]


def flat(text: str) -> str:
    return " ".join(text.split())


def create(api: httpx.Client, title: str = "Apply migration?", **task: Any) -> str:
    """An intent carrying its own `human_task`; it waits for the decision. Its id."""
    body = {
        "intent_type": TYPE,
        "to_agent": AGENT,
        "payload": {"change": title},
        "human_task": {"title": title, **task},
    }
    response = api.post("/v1/intents", json=body)
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["status"] == "WAITING", created
    return str(created["intent_id"])


def task_of(home: Path, ref: str) -> dict[str, Any]:
    """`axme task show REF --json`."""
    task = json.loads(ok(run_cli(home, "task", "show", ref, "--json")).stdout)
    assert isinstance(task, dict)
    return task


def intent_json(home: Path, intent_id: str) -> dict[str, Any]:
    shown = json.loads(ok(run_cli(home, "show", intent_id, "--json")).stdout)
    assert isinstance(shown, dict)
    return shown


def inbox(home: Path, *args: str) -> list[dict[str, Any]]:
    result = ok(run_cli(home, "inbox", "--json", *args))
    return [json.loads(line) for line in result.stdout.splitlines()]


def cli_popen(home: Path, out: Path, err: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "axme_cli", *args],
            env=env_for(home),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )


def reap(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def still_pending(home: Path, intent_id: str) -> None:
    """Nothing was decided: the task is PENDING and its intent still WAITING for it."""
    task = task_of(home, intent_id)
    assert task["status"] == "PENDING" and task["decision"] is None, task
    shown = intent_json(home, intent_id)
    assert shown["intent"]["status"] == "WAITING", shown["intent"]
    assert "intent.human_task_decided" not in [e["event_type"] for e in shown["events"]]


# -- the inbox ---------------------------------------------------------------------------------


def test_inbox_lists_pending_tasks_nearest_deadline_first(
    cli_home: Path, api: httpx.Client
) -> None:
    empty = ok(run_cli(cli_home, "inbox"))
    assert empty.stdout == "" and "inbox empty" in empty.stderr
    assert ok(run_cli(cli_home, "inbox", "--json")).stdout == ""

    later = create(api, "Rotate the keys", deadline_seconds=600)
    whenever = create(api, "Review the report", task_type="review")
    soon = create(api, "Apply migration to prod", deadline_seconds=120)

    listed = inbox(cli_home)
    assert [t["intent_id"] for t in listed] == [soon, later, whenever], "deadline, then age"
    titles = ["Apply migration to prod", "Rotate the keys", "Review the report"]
    assert [t["title"] for t in listed] == titles
    assert all(t["status"] == "PENDING" and t["reminders_sent"] == 0 for t in listed)
    assert listed[0]["deadline_at"] and listed[1]["deadline_at"] and not listed[2]["deadline_at"]
    assert listed[2]["task_type"] == "review"

    table = ok(run_cli(cli_home, "inbox")).stdout  # piped: a row per line, nothing cut
    lines = table.splitlines()
    assert lines[0].split() == [
        "TASK", "TITLE", "INTENT", "AGENT", "TYPE", "AGE", "DUE", "REMINDERS"
    ]  # fmt: skip
    assert len(lines) == 4, table
    by_intent = {t["intent_id"]: t for t in listed}
    for intent_id, first_word, expected_due in (
        (soon, "Apply", r" in (1m|\d+s) "),
        (later, "Rotate", r" in (9|10)m "),
        (whenever, "Review", r" - "),
    ):
        row = next(line for line in lines if line.startswith(by_intent[intent_id]["task_id"][:8]))
        assert first_word in row and intent_id[:8] in row, row
        assert "myorg/" in row and "agent://" not in row, row
        assert re.search(expected_due, row), row
        assert row.rstrip().endswith(" 0"), "no reminders sent yet"
    assert "review" in next(line for line in lines if "Review" in line)

    ok(run_cli(cli_home, "approve", soon))
    assert [t["intent_id"] for t in inbox(cli_home)] == [later, whenever]
    everything = inbox(cli_home, "--all")
    assert {t["intent_id"]: t["status"] for t in everything} == {
        soon: "DECIDED",
        later: "PENDING",
        whenever: "PENDING",
    }
    assert "DECIDED" in ok(run_cli(cli_home, "inbox", "--all")).stdout


# -- approving and rejecting -----------------------------------------------------------------


def test_approve_by_intent_prefix_completes_the_intent(cli_home: Path, api: httpx.Client) -> None:
    intent_id = create(api, "Ship release 4.2")
    task_id = inbox(cli_home)[0]["task_id"]

    approved = ok(run_cli(cli_home, "approve", intent_id[:8], "-c", "ship it", "--as", "alice"))
    assert approved.stdout.strip() == f"approved {task_id} (intent {intent_id})"

    waited = run_cli(cli_home, "wait", intent_id, "--json", "--timeout", "20s")
    assert waited.returncode == 0, waited.stderr
    intent = json.loads(waited.stdout)
    assert intent["status"] == "COMPLETED"
    result = intent["result"]
    assert result["outcome"] == "approved" and result["approved"] is True
    assert result["actor"] == "alice" and result["comment"] == "ship it"
    assert result["task_id"] == task_id
    assert inbox(cli_home) == []

    task = task_of(cli_home, task_id[:6])  # by a task id prefix too, once decided
    assert task["status"] == "DECIDED"
    assert task["decision"]["actor"] == "alice" and task["decision"]["outcome"] == "approved"
    shown = flat(ok(run_cli(cli_home, "task", "show", intent_id)).stdout)
    assert "Ship release 4.2" in shown and "DECIDED" in shown
    assert "approved by alice" in shown and "ship it" in shown


def test_reject_with_a_comment_cancels_and_the_timeline_says_who(
    cli_home: Path, api: httpx.Client
) -> None:
    intent_id = create(api, "Drop the old table")
    task_id = inbox(cli_home)[0]["task_id"]

    rejected = ok(run_cli(cli_home, "reject", task_id[:8], "-c", "not during business hours"))
    assert rejected.stdout.strip() == f"rejected {task_id} (intent {intent_id})"
    assert run_cli(cli_home, "wait", intent_id, "--timeout", "20s").returncode == 7

    shown = intent_json(cli_home, intent_id)
    assert shown["intent"]["status"] == "CANCELED"
    decided = [e for e in shown["events"] if e["event_type"] == "intent.human_task_decided"]
    assert len(decided) == 1
    me = getpass.getuser()
    assert decided[0]["actor"] == me, "without --as, the user running the command"
    assert decided[0]["details"]["comment"] == "not during business hours"
    assert decided[0]["details"]["outcome"] == "rejected"
    assert shown["events"][-1]["event_type"] == "intent.canceled"
    assert shown["events"][-1]["actor"] == me


def test_reject_status_failed_ends_the_intent_failed(cli_home: Path, api: httpx.Client) -> None:
    intent_id = create(api, "Risky change", reject_status="FAILED")
    ok(run_cli(cli_home, "reject", intent_id, "-c", "no", "--as", "carol", "--json"))
    assert run_cli(cli_home, "wait", intent_id, "--timeout", "20s").returncode == 6


def test_a_second_decision_is_refused_and_the_first_stands(
    cli_home: Path, api: httpx.Client
) -> None:
    intent_id = create(api, "Open the firewall")
    first = json.loads(
        ok(run_cli(cli_home, "approve", intent_id, "--as", "alice", "--json")).stdout
    )
    assert first["status"] == "DECIDED" and first["decision"]["actor"] == "alice"

    for again in (
        run_cli(cli_home, "approve", intent_id[:8], "--as", "bob"),
        run_cli(cli_home, "reject", first["task_id"], "-c", "changed my mind", "--as", "bob"),
        run_cli(cli_home, "task", "submit", intent_id, "--outcome", "rejected", "--as", "bob"),
    ):
        line = fails(again, 4)
        assert "already decided" in line and "approved by alice" in line

    task = task_of(cli_home, intent_id)
    assert task["decision"]["actor"] == "alice" and task["decision"]["outcome"] == "approved"
    shown = intent_json(cli_home, intent_id)
    assert shown["intent"]["status"] == "COMPLETED"
    decided = [e for e in shown["events"] if e["event_type"] == "intent.human_task_decided"]
    assert [e["actor"] for e in decided] == ["alice"]


def test_two_approvals_at_once_exactly_one_wins(
    cli_home: Path, api: httpx.Client, tmp_path: Path
) -> None:
    intents = [create(api, f"Race {n}") for n in range(3)]
    procs: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
    try:
        for intent_id in intents:
            for who in ("alice", "bob"):
                out, err = tmp_path / f"{intent_id}-{who}.out", tmp_path / f"{intent_id}-{who}.err"
                procs[intent_id, who] = cli_popen(
                    cli_home, out, err, "approve", intent_id, "--as", who
                )
        codes = {key: proc.wait(60) for key, proc in procs.items()}
    finally:
        for proc in procs.values():
            reap(proc)

    for intent_id in intents:
        pair = {who: codes[intent_id, who] for who in ("alice", "bob")}
        assert sorted(pair.values()) == [0, 4], pair
        winner = next(who for who, code in pair.items() if code == 0)
        loser = "bob" if winner == "alice" else "alice"
        won = (tmp_path / f"{intent_id}-{winner}.out").read_text()
        assert won.startswith("approved ") and intent_id in won
        lost = (tmp_path / f"{intent_id}-{loser}.err").read_text()
        assert "already decided" in lost and f"by {winner}" in lost, lost
        assert (tmp_path / f"{intent_id}-{loser}.out").read_text() == ""

        task = task_of(cli_home, intent_id)
        assert task["decision"]["actor"] == winner
        shown = intent_json(cli_home, intent_id)
        assert shown["intent"]["status"] == "COMPLETED"
        assert shown["intent"]["result"]["actor"] == winner
        decided = [e for e in shown["events"] if e["event_type"] == "intent.human_task_decided"]
        assert [e["actor"] for e in decided] == [winner], "one decision recorded"


# -- bad input changes nothing ------------------------------------------------------------------


def test_a_form_is_checked_against_its_schema(cli_home: Path, api: httpx.Client) -> None:
    intent_id = create(api, "How many rows to load?", task_type="form", form_schema=FORM)
    ref = intent_id[:8]
    submit = ("task", "submit", ref)

    line = fails(run_cli(cli_home, *submit, "--outcome", "maybe", "--data", "rows=5"), 2)
    assert "'maybe' is not allowed" in line and "approved, rejected" in line
    for data, says in (
        (["--data", "rows=0"], "minimum of 1"),
        (["--data", "rows=abc"], "not of type 'integer'"),
        (["--data", "other=1"], "'rows' is a required property"),
        ([], "'rows' is a required property"),
        (["--data-json", '{"rows": 1.5}'], "not of type 'integer'"),
    ):
        line = fails(run_cli(cli_home, *submit, "--outcome", "approved", *data), 2)
        assert "does not validate" in line and says in line, line
    line = fails(run_cli(cli_home, *submit, "--outcome", "approved", "--data-json", "{rows"), 2)
    assert "--data-json: not valid JSON" in line
    line = fails(run_cli(cli_home, *submit, "--outcome", "approved", "--data-json", "[1]"), 2)
    assert "must be a JSON object" in line
    line = fails(run_cli(cli_home, *submit, "--outcome", "approved", "--data", "rows"), 2)
    assert "KEY=VALUE" in line
    still_pending(cli_home, intent_id)

    submitted = ok(
        run_cli(
            cli_home, *submit, "--outcome", "approved", "--data", "rows=1200",
            "--data", "table=orders", "--data", "dry=false", "--data-json", '{"rows": 1, "n": [1]}',
            "-c", "checked", "--as", "dana",
        )
    )  # fmt: skip
    assert submitted.stdout.startswith("approved ")
    waited = run_cli(cli_home, "wait", intent_id, "--json", "--timeout", "20s")
    assert waited.returncode == 0, waited.stderr
    result = json.loads(waited.stdout)["result"]
    assert result["data"] == {"rows": 1200, "table": "orders", "dry": False, "n": [1]}
    assert type(result["data"]["rows"]) is int, "rows=1200 is the number 1200"
    assert result["actor"] == "dana" and result["comment"] == "checked"


def test_allowed_outcomes_and_a_required_comment(cli_home: Path, api: httpx.Client) -> None:
    intent_id = create(
        api,
        "Which region?",
        task_type="clarification",
        allowed_outcomes=["answered", "declined"],
        required_comment=True,
    )
    line = fails(run_cli(cli_home, "approve", intent_id), 2)
    assert "'approved' is not allowed" in line and "answered, declined" in line
    line = fails(run_cli(cli_home, "task", "submit", intent_id, "--outcome", "answered"), 2)
    assert "requires a comment" in line
    line = fails(run_cli(cli_home, "task", "submit", intent_id, "-o", "answered", "-c", "   "), 2)
    assert "requires a comment" in line
    still_pending(cli_home, intent_id)

    ok(
        run_cli(
            cli_home, "task", "submit", intent_id, "-o", "answered", "-d", "region=eu",
            "-c", "per the customer",
        )
    )  # fmt: skip
    assert run_cli(cli_home, "wait", intent_id, "--timeout", "20s").returncode == 0
    task = task_of(cli_home, intent_id)
    assert task["decision"]["outcome"] == "answered"
    assert task["decision"]["data"] == {"region": "eu"}


def test_unknown_malformed_and_ambiguous_refs(cli_home: Path, api: httpx.Client) -> None:
    for command, says in (
        (("approve",), "no pending task for 'ffffffff-0000'"),
        (("reject",), "no pending task for 'ffffffff-0000'"),
        (("task", "submit", "-o", "approved"), "no pending task for 'ffffffff-0000'"),
        (("task", "show"), "no task for 'ffffffff-0000'"),
    ):
        line = fails(run_cli(cli_home, *command, "ffffffff-0000"), 3)
        assert says in line, line
        line = fails(run_cli(cli_home, *command, "not-an-id"), 2)
        assert "not a task or intent id" in line
    plain = ok(run_cli(cli_home, "send", TYPE, "--to", AGENT)).stdout.strip()
    line = fails(run_cli(cli_home, "approve", plain), 3)
    assert "no pending task" in line

    # Tasks until one hex digit starts two of them (by task id or intent id): 17 suffice.
    made: list[str] = []

    def shared_digit() -> str | None:
        made.append(create(api, f"Task {len(made)}"))
        owners: dict[str, set[str]] = {}
        for task in api.get("/v1/tasks").json()["tasks"]:
            for ref in (task["task_id"], task["intent_id"]):
                owners.setdefault(ref[0], set()).add(task["task_id"])
        return next((digit for digit, tasks in owners.items() if len(tasks) > 1), None)

    digit = wait_for(shared_digit, timeout=60, interval=0, what="two tasks sharing a digit")
    line = fails(run_cli(cli_home, "approve", digit, "--as", "eve"), 2)
    assert "matches several tasks" in line and line.count("task ") >= 2
    fails(run_cli(cli_home, "task", "show", digit), 2)
    pending = inbox(cli_home)
    assert sorted(t["intent_id"] for t in pending) == sorted(made), "nothing was decided"


# -- a CI gate ---------------------------------------------------------------------------------


def test_wait_gates_a_shell_on_the_decision(cli_home: Path, api: httpx.Client) -> None:
    """`axme wait` in a shell script, started before anyone decides: 0, 7 or 8."""
    approved = create(api, "Deploy to prod?")
    rejected = create(api, "Deploy on Friday?")
    timed_out = create(api, "Nobody answers", deadline_seconds=1, on_timeout="fail")
    axme = f"{sys.executable} -m axme_cli"
    script = (
        f'if {axme} wait "$1" --timeout 20s > /dev/null; then echo "deploy $1"; '
        'else code=$?; echo "blocked $1: $code"; exit $code; fi'
    )
    gates: dict[str, subprocess.Popen[str]] = {}
    try:
        for intent_id in (approved, rejected, timed_out):
            gates[intent_id] = subprocess.Popen(
                ["bash", "-c", script, "gate", intent_id],
                env=env_for(cli_home),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        ok(run_cli(cli_home, "approve", approved, "-c", "go"))
        ok(run_cli(cli_home, "reject", rejected, "-c", "no deploys on Friday"))
        outputs = {key: proc.communicate(timeout=60)[0] for key, proc in gates.items()}
    finally:
        for proc in gates.values():
            reap(proc)
    assert gates[approved].returncode == 0 and outputs[approved].strip() == f"deploy {approved}"
    assert gates[rejected].returncode == 7
    assert outputs[rejected].strip() == f"blocked {rejected}: 7"
    assert gates[timed_out].returncode == 8
    assert outputs[timed_out].strip() == f"blocked {timed_out}: 8"

    task = task_of(cli_home, timed_out)
    assert task["status"] == "TIMED_OUT" and task["decision"] is None
    line = fails(run_cli(cli_home, "approve", timed_out), 4)
    assert "timed out" in line


# -- signals -----------------------------------------------------------------------------------


def test_a_signal_is_kept_refused_when_final_and_checked(cli_home: Path) -> None:
    intent_id = ok(run_cli(cli_home, "send", TYPE, "--to", AGENT)).stdout.strip()

    kept = ok(run_cli(cli_home, "signal", intent_id[:8], "go", "--data", '{"n": 1}'))
    assert "kept until the intent waits for it" in kept.stdout
    answer = json.loads(ok(run_cli(cli_home, "signal", intent_id, "go", "--json")).stdout)
    assert answer == {"intent_id": intent_id, "name": "go", "delivered": False, "kept": True}

    line = fails(run_cli(cli_home, "signal", intent_id, "go", "--data", "{n: 1}"), 2)
    assert "--data: not valid JSON" in line
    events = intent_json(cli_home, intent_id)["events"]
    signals = [e for e in events if e["event_type"] == "intent.signal"]
    assert [e["details"].get("data") for e in signals] == [{"n": 1}, None]

    fails(run_cli(cli_home, "signal", "ffffffff", "go"), 3)
    ok(run_cli(cli_home, "cancel", intent_id))
    line = fails(run_cli(cli_home, "signal", intent_id, "go", "--data", "1"), 4)
    assert "CANCELED" in line


def test_an_agent_step_waits_for_approval_and_a_signal(
    cli_home: Path, api: httpx.Client, tmp_path: Path
) -> None:
    """Tasks and signals for a handler's own waits: the handler gets the decision and data."""
    address = "agent://test/dev/waiter"
    add_agent(api, address, "waiting_agent.py", tmp_path, env={"STEP_LOG": str(tmp_path / "s")})
    wait_for(lambda: running_pids(api, address), timeout=30, what="the agent to run")

    def send(intent_type: str) -> str:
        body = {"intent_type": intent_type, "to_agent": address, "payload": {}}
        response = api.post("/v1/intents", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["intent_id"])

    change = send("intent.test.approval.v1")
    task = wait_for(lambda: inbox(cli_home), timeout=30, what="the agent's task")[0]
    assert task["intent_id"] == change and task["title"] == "Apply migration?"
    assert task["details"] == {"plan": "validate"}
    ok(run_cli(cli_home, "approve", change[:8], "-c", "go ahead", "--as", "frank"))
    waited = run_cli(cli_home, "wait", change, "--json", "--timeout", "30s")
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["result"] == {
        "status": "apply",
        "by": "frank",
        "comment": "go ahead",
    }

    waiting = send("intent.test.signal.v1")

    def waits_for_go() -> bool:
        events = intent_json(cli_home, waiting)["events"]
        return any("waiting for signal 'go'" in str(e.get("details")) for e in events)

    wait_for(waits_for_go, timeout=30, what="the handler to wait for 'go'")
    sent = ok(run_cli(cli_home, "signal", waiting, "go", "--data", '{"n": 1}'))
    assert "delivered to a waiting step" in sent.stdout
    waited = run_cli(cli_home, "wait", waiting, "--json", "--timeout", "30s")
    assert waited.returncode == 0, waited.stderr
    got = json.loads(waited.stdout)["result"]["signal"]
    assert got["name"] == "go" and got["data"] == {"n": 1}
