"""`axme inbox | approve | reject | signal` and `axme task submit | show`: people in the loop.

A task is found by its id, its intent's id, or a unique prefix of either: the pending task
when there is one. Deciding is once only; the daemon keeps the first decision and answers any
later one (or the loser of two at once) with a conflict, exit 4.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.commands.common import JsonOpt, connect, session
from axme_cli.errors import AmbiguousId, BadInput, Conflict, NotFound
from axme_cli.views import CLOSED

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient

task_app = typer.Typer(
    help="Human tasks: show one, or answer a form or a question with data.",
    no_args_is_help=True,
)

RefArg = Annotated[
    str,
    typer.Argument(help="Task id or intent id, or a unique prefix of either."),
]
CommentOpt = Annotated[
    str | None,
    typer.Option("--comment", "-c", help="Why; recorded with the decision and in the timeline."),
]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Who decides, as recorded (default: your user name)."),
]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")
#: Matches looked at per id prefix; more than this is reported as "and more".
MATCH_LIMIT = 10


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


def _decide(
    client: DaemonClient,
    ref: str,
    outcome: str,
    *,
    who: str | None,
    comment: str | None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from axme_cli.commands.intents import actor

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


def _report(task: dict[str, Any], as_json: bool) -> None:
    from axme_cli import render

    if as_json:
        render.print_json(task)
        return
    outcome = (task.get("decision") or {}).get("outcome", "decided")
    line = f"{outcome} {task['task_id']} (intent {task['intent_id']})"
    render.out().print(line, markup=False, soft_wrap=True)


# -- parsing --------------------------------------------------------------------------------


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


# -- commands -------------------------------------------------------------------------------


def inbox(
    ctx: typer.Context,
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Decided and timed-out tasks too.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Tasks waiting for a person, nearest deadline first, then oldest (JSON lines with --json).

    \b
    Then: axme approve TASK [-c TEXT], axme reject TASK -c TEXT,
          axme task submit TASK --outcome X --data k=v, axme task show TASK
    """
    from axme_cli import views

    views.inbox(session(ctx), all_=all_, as_json=as_json)


def approve(
    ctx: typer.Context,
    ref: RefArg,
    comment: CommentOpt = None,
    who: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a pending task; an intent's own task then COMPLETES it.

    \b
    Examples:
      axme approve 3f2a                     # a task id or its intent's id, or a prefix
      axme approve 3f2a -c "looks good" --as alice
    """
    with connect(ctx) as client:
        task = _decide(client, ref, "approved", who=who, comment=comment)
    _report(task, as_json)


def reject(
    ctx: typer.Context,
    ref: RefArg,
    comment: CommentOpt = None,
    who: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a pending task; an intent's own task then CANCELS it (or FAILS it)."""
    with connect(ctx) as client:
        task = _decide(client, ref, "rejected", who=who, comment=comment)
    _report(task, as_json)


@task_app.command()
def submit(
    ctx: typer.Context,
    ref: RefArg,
    outcome: Annotated[
        str, typer.Option("--outcome", "-o", help="One of the task's outcomes, e.g. approved.")
    ],
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            "-d",
            help="KEY=VALUE for the form; VALUE is JSON when it parses (1200, true), else text.",
        ),
    ] = None,
    data_json: Annotated[
        str | None, typer.Option("--data-json", help="The form as a JSON object.")
    ] = None,
    comment: CommentOpt = None,
    who: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a task with an outcome and data: forms, clarifications, reviews.

    \b
    Examples:
      axme task submit 3f2a --outcome approved --data rows=1200 --data table=orders
      axme task submit 3f2a --outcome answered --data-json '{"region": "eu"}' -c "per Bob"
    """
    values = parse_data(data or [], data_json)
    with connect(ctx) as client:
        task = _decide(client, ref, outcome, who=who, comment=comment, data=values)
    _report(task, as_json)


@task_app.command()
def show(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """A task: what it asks, for which intent, by when, and its decision once made."""
    from axme_cli import render

    with connect(ctx) as client:
        task = find_task(client, ref, pending_only=False)
    if as_json:
        render.print_json(task)
    else:
        render.task_panel(task)


def signal(
    ctx: typer.Context,
    intent: Annotated[str, typer.Argument(help="Intent id, or a unique prefix of one.")],
    name: Annotated[str, typer.Argument(help="The signal's name, as the handler waits for it.")],
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Any JSON value the waiting step gets.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a named signal to an intent: to the step that waits for it, or kept until one does.

    \b
    Example: axme signal 3f2a payment_received --data '{"amount": 42}'
    """
    from axme_cli import render
    from axme_cli.session import json_value

    value: Any = None if data is None else json_value(data, "--data")
    if not name or len(name) > 200 or "/" in name:
        raise BadInput("NAME: 1 to 200 characters, no '/'")
    with connect(ctx) as client:
        intent_id = client.resolve_id(intent)
        answer = client.send_signal(intent_id, name, value)
    delivered = bool(answer.get("delivered"))
    if as_json:
        render.print_json(
            {"intent_id": intent_id, "name": name, "delivered": delivered, "kept": not delivered}
        )
    else:
        line = (
            f"signal {name!r} delivered to a waiting step of {intent_id}"
            if delivered
            else f"signal {name!r} kept until the intent waits for it ({intent_id})"
        )
        render.out().print(line, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(inbox)
    app.command()(approve)
    app.command()(reject)
    app.command()(signal)
    app.add_typer(task_app, name="task")
