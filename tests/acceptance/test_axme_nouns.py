"""AXME's CLI command shapes beside ours, as AXME's examples tell their users to type them:
`axme tasks list|get|approve|reject|confirm|complete|submit`, `axme intents
get|list|watch|cancel`, and `axme daemon start --listen` with `axme daemon status` printing
what an AXME SDK program needs (base URL, key)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeAuthError, AxmeClient, AxmeClientConfig

from axme_cli.errors import EXIT_BAD_INPUT, EXIT_CANCELED, EXIT_CONFLICT, EXIT_OK
from tests.acceptance.test_tasks_cli import create, fails, ok
from tests.daemon import run_cli

pytestmark = pytest.mark.acceptance


def as_json(home: Path, *args: str) -> Any:
    return json.loads(ok(run_cli(home, *args, "--json")).stdout)


def test_tasks_take_intent_ids_task_ids_and_prefixes(cli_home: Path, api: httpx.Client) -> None:
    first = create(api, "Ship 1.2?")
    second = create(api, "Ship 1.3?")
    listed = [
        json.loads(line)
        for line in ok(run_cli(cli_home, "tasks", "list", "--json")).stdout.splitlines()
    ]
    assert {t["intent_id"] for t in listed} == {first, second}

    task = as_json(cli_home, "tasks", "get", first)  # an intent id, as AXME's examples print
    assert task["intent_id"] == first and task["status"] == "PENDING"

    decided = as_json(
        cli_home, "tasks", "approve", first[:8], "-c", "lgtm", "--data", "ticket=OPS-1"
    )
    assert decided["decision"]["outcome"] == "approved"
    assert decided["decision"]["comment"] == "lgtm"
    assert decided["decision"]["data"] == {"ticket": "OPS-1"}
    assert as_json(cli_home, "intents", "get", first)["intent"]["status"] == "COMPLETED"
    again = fails(run_cli(cli_home, "tasks", "approve", first), EXIT_CONFLICT)
    assert "already decided: approved" in again

    # An outcome the task does not allow changes nothing, and says which ones it takes.
    other = as_json(cli_home, "tasks", "get", second)["task_id"]
    refused = fails(run_cli(cli_home, "tasks", "confirm", second), EXIT_BAD_INPUT)
    assert "'confirmed' is not allowed" in refused and "approved, rejected" in refused
    ok(run_cli(cli_home, "tasks", "reject", other, "-c", "not now"))  # the task's own id
    assert as_json(cli_home, "intents", "get", second)["intent"]["status"] == "CANCELED"


def test_confirm_complete_and_submit_record_their_outcomes(
    cli_home: Path, api: httpx.Client
) -> None:
    confirm = create(api, "Backup taken?", task_type="confirmation", allowed_outcomes=["confirmed"])
    manual = create(
        api, "Rotate the key", task_type="manual_action", allowed_outcomes=["completed"]
    )
    form = create(api, "How many rows?", task_type="form", allowed_outcomes=["provided"])
    assert as_json(cli_home, "tasks", "confirm", confirm)["decision"]["outcome"] == "confirmed"
    assert as_json(cli_home, "tasks", "complete", manual)["decision"]["outcome"] == "completed"
    submitted = as_json(
        cli_home, "tasks", "submit", form, "--outcome", "provided", "--data", "rows=1200"
    )
    assert submitted["decision"]["outcome"] == "provided"
    assert submitted["decision"]["data"] == {"rows": 1200}
    assert run_cli(cli_home, "tasks", "list").stderr.strip().endswith("no task waits for a person")


def test_intents_get_list_watch_cancel(cli_home: Path, api: httpx.Client) -> None:
    sent = ok(run_cli(cli_home, "send", "intent.noun.v1", "--to", "agent://n/dev/x")).stdout.strip()
    listed = [
        json.loads(line)
        for line in ok(
            run_cli(cli_home, "intents", "list", "--json", "-n", "5")
        ).stdout.splitlines()
    ]
    assert [i["intent_id"] for i in listed] == [sent]
    assert as_json(cli_home, "intents", "get", sent[:6])["intent"]["status"] == "SUBMITTED"
    canceled = as_json(cli_home, "intents", "cancel", sent, "--reason", "test")
    assert canceled["status"] == "CANCELED"
    fails(run_cli(cli_home, "intents", "cancel", sent), EXIT_CONFLICT)
    watched = run_cli(cli_home, "intents", "watch", sent, "--json")
    assert watched.returncode == EXIT_CANCELED, watched.stderr
    assert json.loads(watched.stdout.splitlines()[-1])["event_type"] == "intent.canceled"
    assert run_cli(cli_home, "intents", "get", "ffffffff").returncode == 3
    # A bare name is that agent's address, as AXME's `listen("name")` has it.
    bare = ok(run_cli(cli_home, "send", "intent.noun.v1", "--to", "data-pipeline")).stdout.strip()
    assert (
        as_json(cli_home, "intents", "get", bare)["intent"]["to_agent"] == "agent://data-pipeline"
    )


def test_help_teaches_the_axme_shapes(cli_home: Path) -> None:
    tasks = ok(run_cli(cli_home, "tasks", "--help")).stdout
    for verb in ("list", "get", "approve", "reject", "confirm", "complete", "submit"):
        assert re.search(rf"^  {verb}\b", tasks, re.M), verb
    assert "axme tasks approve 3f2a" in tasks
    intents = ok(run_cli(cli_home, "intents", "--help")).stdout
    for verb in ("get", "list", "watch", "cancel"):
        assert re.search(rf"^  {verb}\b", intents, re.M), verb
    assert "axme intents get 3f2a" in intents
    assert "--listen" in ok(run_cli(cli_home, "daemon", "start", "--help")).stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_daemon_start_listen_and_status_give_an_sdk_program_its_url_and_key(
    cli_home: Path,
) -> None:
    fails(run_cli(cli_home, "daemon", "start", "--listen", "0.0.0.0:8765"), EXIT_BAD_INPUT)
    assert run_cli(cli_home, "daemon", "status").returncode != EXIT_OK  # nothing started

    port = _free_port()
    started = ok(run_cli(cli_home, "daemon", "start", "--listen", f"127.0.0.1:{port}")).stdout
    assert f"base url http://127.0.0.1:{port}" in started
    status = ok(run_cli(cli_home, "daemon", "status")).stdout
    url = re.search(r"base url (\S+)", status)
    key = re.search(r"api key  (\S+)", status)
    assert url and key, status
    assert url[1] == f"http://127.0.0.1:{port}"
    shown = as_json(cli_home, "daemon", "status")
    assert (shown["tcp"], shown["api_key"]) == (url[1], key[1])

    config = AxmeClientConfig(base_url=url[1], api_key=key[1])
    with AxmeClient(config) as client:
        intent_id = client.send_intent(
            {"intent_type": "intent.sdk.v1", "to_agent": "agent://n/dev/x"}
        )
        assert client.get_intent(intent_id)["intent"]["status"] == "SUBMITTED"
        assert "api_key" not in client.health()  # told over the socket only
    with AxmeClient(AxmeClientConfig(base_url=url[1], api_key="axme_local_guess")) as client:
        with pytest.raises(AxmeAuthError):
            client.get_intent(intent_id)

    # Already running: the same listener is fine, another one is a conflict.
    ok(run_cli(cli_home, "daemon", "start", "--listen", f"localhost:{port}"))
    other = fails(run_cli(cli_home, "daemon", "start", "--listen", "127.0.0.1:1"), EXIT_CONFLICT)
    assert f"its TCP listener at http://127.0.0.1:{port}" in other
