"""`axme inbox | approve | reject | signal` and `axme task submit | show`: people in the loop.

How a task is found and decided is in `decisions.py`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from axme_cli.commands.common import JsonOpt, connect, session
from axme_cli.decisions import decide_and_report, find_task
from axme_cli.errors import BadInput

task_app = typer.Typer(
    help="Human tasks: show one, or answer a form or a question with data.",
    no_args_is_help=True,
)

RefArg = Annotated[
    str,
    typer.Argument(metavar="REF", help="Task id or intent id, or a unique prefix of either."),
]
CommentOpt = Annotated[
    str | None,
    typer.Option(
        "--comment",
        "-c",
        metavar="TEXT",
        help="Why; recorded with the decision and in the timeline.",
    ),
]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as", metavar="NAME", help="Who decides, as recorded (default: your user name)."
    ),
]

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
    decide_and_report(session(ctx), ref, "approved", who=who, comment=comment, as_json=as_json)


def reject(
    ctx: typer.Context,
    ref: RefArg,
    comment: CommentOpt = None,
    who: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a pending task; an intent's own task then CANCELS it (or FAILS it)."""
    decide_and_report(session(ctx), ref, "rejected", who=who, comment=comment, as_json=as_json)


@task_app.command()
def submit(
    ctx: typer.Context,
    ref: RefArg,
    outcome: Annotated[
        str,
        typer.Option(
            "--outcome", "-o", metavar="OUTCOME", help="One of the task's outcomes, e.g. approved."
        ),
    ],
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            "-d",
            metavar="KEY=VALUE",
            help="KEY=VALUE for the form; VALUE is JSON when it parses (1200, true), else text.",
        ),
    ] = None,
    data_json: Annotated[
        str | None, typer.Option("--data-json", metavar="JSON", help="The form as a JSON object.")
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
    decide_and_report(
        session(ctx), ref, outcome, who=who, comment=comment, as_json=as_json, data=values
    )


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
    intent: Annotated[
        str, typer.Argument(metavar="INTENT", help="Intent id, or a unique prefix of one.")
    ],
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The signal's name, as the handler waits for it.")
    ],
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", metavar="JSON", help="Any JSON value the waiting step gets."),
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
