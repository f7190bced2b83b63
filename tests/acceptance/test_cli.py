"""The `axme` command as a user's shell runs it: exit codes, what it prints, what it leaves."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from axme_cli import __version__
from tests.daemon import env_for, run_cli, wait_for

TYPE = "intent.pipeline.process.v1"
AGENT = "agent://myorg/production/data-pipeline"
#: The id that starts each row of `axme list` (whole, since these tests read it from a pipe).
ROW_ID = re.compile(r"^([0-9a-f-]{36})\s", re.M)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# -- helpers -------------------------------------------------------------------------------


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{result.args[3:]} exited {result.returncode}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result


def send(home: Path, *args: str, input: str | None = None) -> str:
    """`axme send TYPE --to AGENT ARGS`; the id it printed."""
    result = ok(run_cli(home, "send", TYPE, "--to", AGENT, *args, input=input))
    intent_id = result.stdout.strip()
    assert UUID_RE.match(intent_id), f"send should print only the intent id: {result.stdout!r}"
    return intent_id


def stored(home: Path, *args: str) -> list[dict[str, Any]]:
    """Every intent the daemon holds (newest first), as `axme list --json` reports them."""
    result = ok(run_cli(home, "list", "--json", "--limit", "500", *args))
    return [json.loads(line) for line in result.stdout.splitlines()]


def show_json(home: Path, ref: str) -> dict[str, Any]:
    data = json.loads(ok(run_cli(home, "show", ref, "--json")).stdout)
    assert isinstance(data, dict)
    return data


def flat(text: str) -> str:
    """Text with any wrapping undone, to look for phrases in it."""
    return " ".join(text.split())


def start_cli(home: Path, out: Path, err: Path, *args: str) -> subprocess.Popen[bytes]:
    """`axme ARGS` running in the background, its stdout and stderr going to files."""
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "axme_cli", *args],
            env=env_for(home),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )


def reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


# -- sending, listing, showing -------------------------------------------------------------


def test_first_send_starts_the_daemon_and_the_intent_is_listed_and_shown(cli_home: Path) -> None:
    first = run_cli(cli_home, "send", TYPE, "--to", AGENT, "--payload", '{"source": "pg-main"}')
    ok(first)
    intent_id = first.stdout.strip()
    assert UUID_RE.match(intent_id), first.stdout
    assert first.stdout == intent_id + "\n", "stdout is the id alone, for $(axme send ...)"
    assert "started the axme daemon" in first.stderr
    ok(run_cli(cli_home, "daemon", "status"))  # and it is still running after `send` exited

    second = ok(run_cli(cli_home, "send", "intent.other.v1", "--to", "agent://x/y"))
    second_id = second.stdout.strip()
    assert UUID_RE.match(second_id) and second_id != intent_id
    assert "started" not in second.stderr, "the daemon was already running"

    table = ok(run_cli(cli_home, "list")).stdout
    row = next(line for line in table.splitlines() if line.startswith(intent_id[:8]))
    assert "SUBMITTED" in row

    listed = ok(run_cli(cli_home, "list", "--json"))
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    objects = [json.loads(line) for line in lines]  # each line is a JSON document on its own
    assert all(isinstance(o, dict) for o in objects)
    assert [o["intent_id"] for o in objects] == [second_id, intent_id], "newest first"
    mine = objects[1]
    assert mine["status"] == "SUBMITTED"
    assert mine["intent_type"] == TYPE and mine["to_agent"] == AGENT
    assert mine["payload"] == {"source": "pg-main"}

    shown = show_json(cli_home, intent_id)
    assert set(shown) >= {"intent", "events"}
    assert shown["intent"]["intent_id"] == intent_id
    assert shown["intent"]["status"] == "SUBMITTED"
    assert shown["intent"]["payload"] == {"source": "pg-main"}
    assert [e["event_type"] for e in shown["events"]] == ["intent.created", "intent.submitted"]
    assert [e["status"] for e in shown["events"]] == ["CREATED", "SUBMITTED"]

    text = ok(run_cli(cli_home, "show", intent_id)).stdout
    assert intent_id in text
    assert "timeline" in text
    assert "intent.created" in text and "intent.submitted" in text
    assert "SUBMITTED" in text and "pg-main" in text


def test_payload_from_a_file_or_stdin_and_the_idempotency_key(
    cli_home: Path, tmp_path: Path
) -> None:
    payload_file = tmp_path / "payload.json"
    payload_file.write_text(json.dumps({"from": "file", "rows": [1, 2, 3]}))
    from_file = send(cli_home, "--payload", f"@{payload_file}")
    from_stdin = send(cli_home, "--payload", "-", input='{"from": "stdin", "ok": true}\n')
    assert show_json(cli_home, from_file)["intent"]["payload"] == {
        "from": "file",
        "rows": [1, 2, 3],
    }
    assert show_json(cli_home, from_stdin)["intent"]["payload"] == {"from": "stdin", "ok": True}

    payload = '{"batch": 7}'
    first = send(cli_home, "--idempotency-key", "batch-7", "--payload", payload)
    again = run_cli(cli_home, "send", TYPE, "--to", AGENT, "-k", "batch-7", "--payload", payload)
    ok(again)
    assert again.stdout.strip() == first
    assert "existing intent" in again.stderr

    intents = stored(cli_home)
    assert [i["intent_id"] for i in intents] == [first, from_stdin, from_file]
    assert intents[0]["idempotency_key"] == "batch-7"


def test_bad_send_input_is_one_clear_error_line_exit_2_and_writes_nothing(
    cli_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a script, cron job or CI step sees: stderr is not a terminal, no COLUMNS set.
    monkeypatch.delenv("COLUMNS", raising=False)
    missing = tmp_path / "missing.json"

    # The very first command of a fresh home: it may fail before starting the daemon.
    first = run_cli(cli_home, "send", TYPE, "--to", AGENT, "--payload", f"@{missing}")
    cases: list[tuple[str, subprocess.CompletedProcess[str], str]] = [
        ("@missing-file", first, "missing.json")
    ]
    assert stored(cli_home) == [], "a failed send must not store an intent"
    send(cli_home)  # one good intent, so "unchanged" is not just "still empty"
    before = stored(cli_home)
    assert len(before) == 1

    bad = [
        ("invalid JSON", ["send", TYPE, "--to", AGENT, "--payload", "{bad"], "JSON"),
        ("a JSON array", ["send", TYPE, "--to", AGENT, "--payload", "[1,2]"], "object"),
        ("non-agent --to", ["send", TYPE, "--to", "https://example.com/x"], "agent://"),
        ("--to with a space", ["send", TYPE, "--to", "data pipeline"], "agent://"),
        ("type with spaces", ["send", "process this please", "--to", AGENT], "intent_type"),
        ("--timeout soon", ["send", TYPE, "--to", AGENT, "--wait", "--timeout", "soon"], "soon"),
        ("--timeout without --wait", ["send", TYPE, "--to", AGENT, "--timeout", "1s"], "--wait"),
    ]
    for label, args, mention in bad:
        cases.append((label, run_cli(cli_home, *args), mention))

    problems = []
    for label, result, mention in cases:
        err = result.stderr.strip()
        if result.returncode != 2:
            problems.append(f"{label}: exit {result.returncode}, want 2 ({err!r})")
        if result.stdout:
            problems.append(f"{label}: printed on stdout: {result.stdout!r}")
        if len(err.splitlines()) != 1:
            problems.append(f"{label}: stderr is not one line: {err!r}")
        if not err.startswith("error:"):
            problems.append(f"{label}: stderr does not start with 'error:': {err!r}")
        if mention.lower() not in err.lower():
            problems.append(f"{label}: stderr does not mention {mention!r}: {err!r}")
    assert not problems, "\n".join(problems)
    assert stored(cli_home) == before, "a rejected send must not store anything"


# -- id references -------------------------------------------------------------------------


def test_show_cancel_and_wait_take_a_unique_prefix_and_reject_bad_ones(cli_home: Path) -> None:
    ids: list[str] = []
    by_first: dict[str, list[str]] = {}
    while not any(len(group) > 1 for group in by_first.values()):
        assert len(ids) < 17, "17 uuid4s always share a first hex digit"
        intent_id = send(cli_home)
        ids.append(intent_id)
        by_first.setdefault(intent_id[0], []).append(intent_id)
    shared = next(c for c, group in by_first.items() if len(group) > 1)
    twins = by_first[shared]

    # A unique prefix works for show, cancel and wait.
    target = ids[0]
    prefix = target[:8]
    assert [i for i in ids if i.startswith(prefix)] == [target]
    assert show_json(cli_home, prefix)["intent"]["intent_id"] == target
    assert show_json(cli_home, prefix.upper())["intent"]["intent_id"] == target
    canceled = ok(run_cli(cli_home, "cancel", prefix))
    assert target in canceled.stdout and "CANCELED" in canceled.stdout
    waited = run_cli(cli_home, "wait", prefix, "--json")
    assert waited.returncode == 7, waited.stderr
    assert json.loads(waited.stdout)["intent_id"] == target

    # An ambiguous prefix: exit 2, naming every match, and nothing canceled.
    for command in ("show", "cancel", "wait"):
        result = run_cli(cli_home, command, shared)
        assert result.returncode == 2, (command, result.returncode, result.stderr)
        assert result.stdout == ""
        for intent_id in twins:
            assert intent_id in result.stderr, (command, result.stderr)
    statuses = {i["intent_id"]: i["status"] for i in stored(cli_home)}
    assert statuses == {i: "CANCELED" if i == target else "SUBMITTED" for i in ids}

    # An unknown prefix, or an unknown full id: exit 3.
    unknown = next(
        p
        for p in ("0000000000", "ffffffffff", "abcdef0123")
        if not any(i.startswith(p) for i in ids)
    )
    for command in ("show", "cancel", "wait"):
        result = run_cli(cli_home, command, unknown)
        assert result.returncode == 3, (command, result.returncode, result.stderr)
        assert unknown in result.stderr
    missing_id = str(uuid.uuid4())
    result = run_cli(cli_home, "show", missing_id)
    assert result.returncode == 3, result.stderr

    # Not hex at all: bad input.
    for command in ("show", "cancel", "wait"):
        result = run_cli(cli_home, command, "zzz")
        assert result.returncode == 2, (command, result.returncode, result.stderr)
        assert "zzz" in result.stderr
    assert {i["intent_id"]: i["status"] for i in stored(cli_home)} == statuses


# -- cancel, wait, tail --------------------------------------------------------------------


def test_cancel_and_wait_exit_codes(cli_home: Path) -> None:
    intent_id = send(cli_home)

    # wait on a running intent: exit 9 once --timeout elapses.
    began = time.monotonic()
    waited = run_cli(cli_home, "wait", intent_id, "--timeout", "1s")
    elapsed = time.monotonic() - began
    assert waited.returncode == 9, waited.stderr
    assert 1.0 <= elapsed < 6.0, f"wait --timeout 1s took {elapsed:.1f}s"
    assert intent_id in waited.stderr and "not final" in waited.stderr
    bad = run_cli(cli_home, "wait", intent_id, "--timeout", "soon")
    assert bad.returncode == 2, bad.stderr
    assert "--timeout" in bad.stderr and "soon" in bad.stderr

    # send --wait: the intent is sent, then the wait gives up with 9.
    before = len(stored(cli_home))
    began = time.monotonic()
    sent = run_cli(cli_home, "send", TYPE, "--to", AGENT, "--wait", "--timeout", "1s")
    elapsed = time.monotonic() - began
    assert sent.returncode == 9, sent.stderr
    assert 1.0 <= elapsed < 6.0, f"send --wait --timeout 1s took {elapsed:.1f}s"
    assert len(stored(cli_home)) == before + 1, "the intent was sent before the wait gave up"

    # cancel with a reason: CANCELED, with the reason and who did it in the timeline.
    result = ok(run_cli(cli_home, "cancel", intent_id, "--reason", "wrong source"))
    assert intent_id in result.stdout and "CANCELED" in result.stdout
    shown = show_json(cli_home, intent_id)
    assert shown["intent"]["status"] == "CANCELED"
    events = shown["events"]
    assert [e["event_type"] for e in events] == [
        "intent.created",
        "intent.submitted",
        "intent.canceled",
    ]
    last = events[-1]
    assert last["status"] == "CANCELED"
    assert (last.get("details") or {}).get("reason") == "wrong source"
    assert last.get("actor"), f"the cancel event names no actor: {last}"
    text = flat(ok(run_cli(cli_home, "show", intent_id)).stdout)
    assert "intent.canceled" in text and "wrong source" in text and f"by {last['actor']}" in text

    # cancel again: a conflict, and nothing changes.
    again = run_cli(cli_home, "cancel", intent_id, "--reason", "twice")
    assert again.returncode == 4, again.stderr
    assert again.stdout == ""
    assert "already" in again.stderr and ("final" in again.stderr or "CANCELED" in again.stderr)
    after = show_json(cli_home, intent_id)
    assert after["intent"]["status"] == "CANCELED"
    assert after["events"] == events, "a refused cancel must not touch the timeline"

    # wait on a canceled intent: exit 7 at once.
    waited = run_cli(cli_home, "wait", intent_id)
    assert waited.returncode == 7, waited.stderr
    assert intent_id in waited.stdout and "CANCELED" in waited.stdout
    waited = run_cli(cli_home, "wait", intent_id, "--json")
    assert waited.returncode == 7, waited.stderr
    assert json.loads(waited.stdout)["status"] == "CANCELED"


def test_tail_since_past_a_final_intents_last_event_ends_at_once(cli_home: Path) -> None:
    intent_id = send(cli_home)
    assert run_cli(cli_home, "cancel", intent_id).returncode == 0
    last = show_json(cli_home, intent_id)["events"][-1]["seq"]
    for since in (last, last + 50):
        tailed = run_cli(cli_home, "tail", intent_id, "--since", str(since), timeout=20)
        assert tailed.returncode == 7, tailed.stderr  # CANCELED, with nothing more to show
        assert tailed.stdout == ""


def test_send_wait_and_tail_end_with_7_when_another_process_cancels(
    cli_home: Path, tmp_path: Path
) -> None:
    """`send --wait --json`, `tail` and `tail --json` running while another shell cancels."""
    text_id, json_id = send(cli_home), send(cli_home)
    files = {
        name: tmp_path / name
        for name in ("send", "send.err", "text", "text.err", "json", "json.err")
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        waiter = start_cli(
            cli_home,
            files["send"],
            files["send.err"],
            "send",
            "intent.waited.v1",
            "--to",
            AGENT,
            "--wait",
            "--json",
        )
        procs.append(waiter)
        text_tail = start_cli(cli_home, files["text"], files["text.err"], "tail", text_id)
        procs.append(text_tail)
        json_tail = start_cli(cli_home, files["json"], files["json.err"], "tail", json_id, "--json")
        procs.append(json_tail)

        waited = wait_for(
            lambda: stored(cli_home, "--type", "intent.waited.v1"),
            timeout=20,
            what="send --wait to create its intent",
        )
        assert len(waited) == 1
        waited_id = waited[0]["intent_id"]
        wait_for(
            lambda: (
                "intent.submitted" in files["text"].read_text()
                and len(files["json"].read_text().splitlines()) >= 2
            ),
            timeout=20,
            what="both tails to print the events so far",
        )
        assert waiter.poll() is None, "send --wait returned before the intent was final"
        assert text_tail.poll() is None, "tail returned before the intent was final"
        assert json_tail.poll() is None, "tail --json returned before the intent was final"

        ok(run_cli(cli_home, "cancel", waited_id, "--reason", "not needed"))
        ok(run_cli(cli_home, "cancel", text_id[:8], "--reason", "wrong source"))
        ok(run_cli(cli_home, "cancel", json_id))
        codes = [proc.wait(20) for proc in procs]
    finally:
        for proc in procs:
            reap(proc)

    # send --wait --json: exit 7, one JSON intent, CANCELED.
    assert codes[0] == 7, files["send.err"].read_text()
    printed = json.loads(files["send"].read_text())
    assert printed["intent_id"] == waited_id
    assert printed["status"] == "CANCELED"

    # tail: exit 7, the whole timeline in order.
    assert codes[1] == 7, files["text.err"].read_text()
    text = files["text"].read_text()
    for word in ("intent.created", "intent.submitted", "intent.canceled"):
        assert word in text, text
    assert text.index("intent.created") < text.index("intent.submitted")
    assert text.index("intent.submitted") < text.index("intent.canceled")
    assert "CANCELED" in text and "wrong source" in flat(text)
    assert text_id in files["text.err"].read_text(), "tail says which intent it follows"

    # tail --json: exit 7, one JSON event a line, the last one CANCELED.
    assert codes[2] == 7, files["json.err"].read_text()
    events = [json.loads(line) for line in files["json"].read_text().splitlines()]
    assert [e["event_type"] for e in events] == [
        "intent.created",
        "intent.submitted",
        "intent.canceled",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert all(e["intent_id"] == json_id for e in events)
    assert events[-1]["status"] == "CANCELED"


# -- list ----------------------------------------------------------------------------------


def test_list_filters_by_status_and_pages_with_a_cursor(cli_home: Path) -> None:
    ids = [send(cli_home) for _ in range(3)]  # oldest first
    ok(run_cli(cli_home, "cancel", ids[1]))

    bogus = run_cli(cli_home, "list", "--status", "bogus")
    assert bogus.returncode == 2, bogus.stderr
    assert "--status" in bogus.stderr and "CANCELED" in bogus.stderr

    assert [i["intent_id"] for i in stored(cli_home, "--status", "canceled")] == [ids[1]]
    assert [i["intent_id"] for i in stored(cli_home, "--status", "SUBMITTED")] == [ids[2], ids[0]]
    table = ok(run_cli(cli_home, "list", "--status", "canceled")).stdout
    assert ids[1][:8] in table and ids[0][:8] not in table and ids[2][:8] not in table
    none = ok(run_cli(cli_home, "list", "--status", "completed"))
    assert "no intents" in none.stderr

    first = ok(run_cli(cli_home, "list", "--limit", "2"))
    rows = ROW_ID.findall(first.stdout)
    assert rows == [ids[2], ids[1]], first.stdout
    hint = re.search(r"more: axme list --limit 2 --cursor (\S+)", first.stderr)
    assert hint, f"no next-page hint on stderr: {first.stderr!r}"

    second = ok(run_cli(cli_home, "list", "--limit", "2", "--cursor", hint[1]))
    rows = ROW_ID.findall(second.stdout)
    assert rows == [ids[0]], second.stdout
    assert "more:" not in second.stderr, "the last page has no next page"
    page = stored(cli_home, "--cursor", hint[1])
    assert [i["intent_id"] for i in page] == [ids[0]]


# -- help, version, daemon trouble ---------------------------------------------------------


def test_version_and_help(cli_home: Path) -> None:
    version = ok(run_cli(cli_home, "--version"))
    assert version.stdout.strip() == f"axme {__version__}"

    helped = ok(run_cli(cli_home, "--help"))
    text = flat(helped.stdout)
    assert "Exit codes" in text
    assert "\x08" not in helped.stdout
    meanings = ["completed", "unexpected", "bad input", "not found", "conflict"]
    meanings += ["daemon unreachable", "FAILED", "CANCELED", "TIMED_OUT", "--timeout"]
    for code, meaning in enumerate(meanings):
        pattern = rf"(?<![\w-]){code}\s+(intent\s+)?{re.escape(meaning)}"
        assert re.search(pattern, text), f"--help does not explain exit code {code}: {text}"
    for word in ("send", "list", "show", "cancel", "wait", "tail", "daemon"):
        assert re.search(rf"^\s+{word}\s", helped.stdout, re.M), f"--help lists no {word}"
    assert not (cli_home / "run" / "axme.sock").exists(), "--help/--version started a daemon"


@pytest.mark.parametrize(
    "command",
    [
        ["send"],
        ["list"],
        ["show"],
        ["cancel"],
        ["wait"],
        ["tail"],
        ["daemon"],
        ["daemon", "start"],
        ["daemon", "stop"],
        ["daemon", "status"],
        ["daemon", "logs"],
    ],
    ids=" ".join,
)
def test_every_command_has_help(cli_home: Path, command: list[str]) -> None:
    result = ok(run_cli(cli_home, *command, "--help"))
    assert "Usage:" in result.stdout
    assert " ".join(command) in result.stdout
    assert not (cli_home / "run" / "axme.sock").exists(), "--help started a daemon"


def test_unreachable_daemon_is_exit_5_with_a_clear_message(cli_home: Path) -> None:
    # The daemon cannot create its socket directory when a plain file sits in its place.
    (cli_home / "run").write_text("not a directory\n")
    result = run_cli(cli_home, "list")
    assert result.returncode == 5, (result.returncode, result.stderr)
    assert result.stdout == ""
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith("error:") and "daemon" in first_line, result.stderr

    sent = run_cli(cli_home, "send", TYPE, "--to", AGENT)
    assert sent.returncode == 5, (sent.returncode, sent.stderr)
    assert sent.stdout == ""


def test_wait_and_tail_ride_out_a_daemon_restart(cli_home: Path, tmp_path: Path) -> None:
    """A daemon restart (an upgrade, `daemon stop` + `start`) under a waiting shell script:
    `wait` and `tail` say so on stderr, reconnect, and end with the intent's outcome."""
    intent_id = send(cli_home)
    files = {name: tmp_path / name for name in ("wait", "wait.err", "tail", "tail.err")}
    waiter = start_cli(cli_home, files["wait"], files["wait.err"], "wait", intent_id, "--json")
    tailer = start_cli(cli_home, files["tail"], files["tail.err"], "tail", intent_id, "--json")
    try:
        wait_for(lambda: files["tail"].read_text().count("\n") >= 2, timeout=20, what="tail")
        ok(run_cli(cli_home, "daemon", "stop"))
        wait_for(
            lambda: (
                "come back" in files["wait.err"].read_text()
                and "come back" in files["tail.err"].read_text()
            ),
            timeout=20,
            what="both to say the daemon went away",
        )
        assert waiter.poll() is None and tailer.poll() is None  # still waiting
        ok(run_cli(cli_home, "daemon", "start"))
        ok(run_cli(cli_home, "cancel", intent_id, "--reason", "after the restart"))
        assert waiter.wait(30) == 7
        assert tailer.wait(30) == 7
    finally:
        reap(waiter)
        reap(tailer)
    assert json.loads(files["wait"].read_text())["status"] == "CANCELED"
    events = [json.loads(line) for line in files["tail"].read_text().splitlines()]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "an event was missed or repeated across the restart"
    assert events[-1]["event_type"] == "intent.canceled"
