"""Finding a task by its id, its intent's id or a prefix of either, and deciding it: what
`axme approve`, `reject` and `tasks ...` do, without Typer (the launcher's quick
paths run them too).

A task is found by its id, its intent's id, or a unique prefix of either: the pending task
when there is one. Deciding is once only; the daemon keeps the first decision and answers any
later one (or the loser of two at once) with a conflict, exit 4.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from axme_cli.errors import AmbiguousId, BadInput, Conflict, NotFound
from axme_cli.session import Session
from axme_cli.views import CLOSED

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient


def actor() -> str:
    """Who this is, as recorded with a decision, a cancel or a retry."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")
#: Matches looked at per id prefix; more than this is reported as "and more".
MATCH_LIMIT = 10


#: AXME's decision verbs (`axme tasks approve|reject|confirm|complete`) and the outcome each
#: records; `axme tasks submit --outcome X` records any other.
VERB_OUTCOMES = {
    "approve": "approved",
    "reject": "rejected",
    "confirm": "confirmed",
    "complete": "completed",
}


def parse_data(pairs: list[str], data_json: str | None) -> dict[str, Any]:
    """`--data-json` (an object), then each `--data k=v` over it; a value is JSON when it
    parses as JSON (`rows=1200` is a number, `ok=true` a bool), else the text itself."""
    data: dict[str, Any] = {}
    if data_json is not None:
        from axme_cli.session import json_object

        data.update(json_object(data_json, "--data-json"))
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--data: expected KEY=VALUE, got {pair!r}")
        try:
            data[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            data[key.strip()] = text
    return data


# -- finding a task ------------------------------------------------------------------------


def _normalize(ref: str) -> str:
    ref = ref.strip().lower()
    if not _PREFIX.match(ref):
        raise BadInput(f"{ref!r} is not a task or intent id, or a prefix of one (hex digits)")
    return ref


def _matching(client: DaemonClient, ref: str, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
    """Tasks in `statuses` whose id starts with `ref`, and those of intents whose id does
    (of an intent's closed tasks, only its latest)."""
    found: dict[str, dict[str, Any]] = {}
    for status in statuses:
        for task in client.list_tasks(status=status, id_prefix=ref, limit=MATCH_LIMIT):
            found.setdefault(task["task_id"], task)
    if found and _UUID.match(ref):
        return list(found.values())  # a whole task id: it cannot be an intent's as well
    for intent in client.list_intents(id_prefix=ref, limit=MATCH_LIMIT)["intents"]:
        own = [
            task
            for status in statuses
            for task in client.list_tasks(status=status, intent_id=intent["intent_id"])
        ]
        if own and statuses == CLOSED:
            own = [max(own, key=lambda t: t.get("decided_at") or t["created_at"])]
        for task in own:
            found.setdefault(task["task_id"], task)
    return sorted(found.values(), key=lambda t: str(t["created_at"]))


def _listing(tasks: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"task {t['task_id']} ({t.get('title')!r}, intent {t['intent_id']}, {t['status']})"
        for t in tasks
    )


def _ambiguous(ref: str, tasks: list[dict[str, Any]]) -> AmbiguousId:
    return AmbiguousId(
        f"{ref!r} matches several tasks: {_listing(tasks)}; give more characters",
        details={"matches": [t["task_id"] for t in tasks]},
    )


def closed_message(task: dict[str, Any]) -> str:
    """`task 3517fbb9-... is already decided: approved by alice (intent 1fbc6bcd-...)`."""
    decision = task.get("decision") or {}
    if task.get("status") == "TIMED_OUT" or not decision:
        return (
            f"task {task['task_id']} timed out: nobody decided before its deadline, and it "
            f"can no longer be decided (intent {task['intent_id']})"
        )
    how = f"{decision.get('outcome')} by {decision.get('actor')} at {decision.get('at')}"
    if decision.get("comment"):
        how += f" ({decision['comment']})"
    return f"task {task['task_id']} is already decided: {how} (intent {task['intent_id']})"


def find_task(client: DaemonClient, ref: str, *, pending_only: bool) -> dict[str, Any]:
    """The task `ref` names: a task id, an intent id, or a unique prefix of either.

    The pending one first; with `pending_only`, a task that is already decided is a
    `Conflict`, otherwise the latest decided one is the answer.
    """
    ref = _normalize(ref)
    pending = _matching(client, ref, ("PENDING",))
    if len(pending) > 1:
        raise _ambiguous(ref, pending)
    if pending:
        return pending[0]
    closed = _matching(client, ref, CLOSED)
    if pending_only and closed:
        raise Conflict(
            "; ".join(closed_message(t) for t in closed),
            details={"tasks": [t["task_id"] for t in closed]},
        )
    if len(closed) > 1:
        raise _ambiguous(ref, closed)
    if closed:
        return closed[0]
    what = "pending task" if pending_only else "task"
    raise NotFound(f"no {what} for {ref!r} (no task or intent with a human task has that id)")


def decide(
    client: DaemonClient,
    ref: str,
    outcome: str,
    *,
    who: str | None,
    comment: str | None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Decide the pending task `ref` names; the task as decided."""
    task = find_task(client, ref, pending_only=True)
    try:
        return client.decide_task(
            task["task_id"], outcome, actor=who or actor(), comment=comment, data=data
        )
    except Conflict:
        # Someone else decided between our lookup and our decision: say who, as a repeat would.
        current = client.get_task(task["task_id"])
        if current.get("status") == "PENDING":
            raise
        raise Conflict(
            closed_message(current), details={"task_id": task["task_id"], "task": current}
        ) from None


def report(task: dict[str, Any], as_json: bool) -> None:
    """`approved 3517fbb9-... (intent 1fbc6bcd-...)`, or the task as JSON."""
    from axme_cli import render

    if as_json:
        render.print_json(task)
        return
    outcome = (task.get("decision") or {}).get("outcome", "decided")
    from axme_cli.output import line

    line(f"{outcome} {task['task_id']} (intent {task['intent_id']})", soft_wrap=True)


def decide_and_report(
    session: Session,
    ref: str,
    outcome: str,
    *,
    who: str | None,
    comment: str | None,
    as_json: bool,
    data: dict[str, Any] | None = None,
) -> None:
    """`axme approve | reject`, `axme tasks approve | ... | submit`: decide the task `ref`
    names, print the result."""
    with session.connect() as client:
        task = decide(client, ref, outcome, who=who, comment=comment, data=data)
    report(task, as_json)
