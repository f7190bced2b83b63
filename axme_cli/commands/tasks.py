"""`axme inbox | approve | reject | signal` and `axme tasks list | get | approve | reject |
confirm | complete | submit` (AXME's command shapes; `axme task` is the same group): people
in the loop.

How a task is found and decided is in `decisions.py`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.commands.common import JsonOpt, connect, session
from axme_cli.decisions import VERB_OUTCOMES, decide_and_report, find_task, parse_data
from axme_cli.errors import BadInput

TASKS_HELP = """Human tasks, as AXME's CLI names them: list them, look at one, decide it.

A task is named by its intent's id (what AXME's examples print), its own id, or a unique
prefix of either. A second decision is a conflict (exit 4).

\b
Examples:
  axme tasks list                              # pending, nearest deadline first
  axme tasks get 3f2a                          # what it asks, by when, and its decision
  axme tasks approve 3f2a -c "lgtm"            # reject, confirm, complete alike
  axme tasks submit 3f2a --outcome provided --data rows=1200
"""

APPROVE_HELP = """Approve a pending task; an intent's own task then COMPLETES it.

\b
Examples:
  axme approve 3f2a                     # a task id or its intent's id, or a prefix
  axme approve 3f2a -c "looks good" --as alice
"""
REJECT_HELP = "Reject a pending task; an intent's own task then CANCELS it (or FAILS it)."

task_app = typer.Typer(help=TASKS_HELP, no_args_is_help=True)

RefArg = Annotated[
    str,
    typer.Argument(metavar="REF", help="Intent id or task id, or a unique prefix of either."),
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
DataOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--data",
        "-d",
        metavar="KEY=VALUE",
        help="KEY=VALUE for the form; VALUE is JSON when it parses (1200, true), else text.",
    ),
]
DataJsonOpt = Annotated[
    str | None, typer.Option("--data-json", metavar="JSON", help="The form as a JSON object.")
]

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
          axme tasks submit TASK --outcome X --data k=v, axme tasks get TASK
    """
    from axme_cli import views

    views.inbox(session(ctx), all_=all_, as_json=as_json)


def _verb(verb: str, doc: str | None = None) -> Any:
    """`axme approve | reject` and `axme tasks approve|reject|confirm|complete`: one
    outcome each."""
    outcome = VERB_OUTCOMES[verb]

    def command(
        ctx: typer.Context,
        ref: RefArg,
        comment: CommentOpt = None,
        data: DataOpt = None,
        who: AsOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        values = parse_data(data or [], None)
        decide_and_report(
            session(ctx), ref, outcome, who=who, comment=comment, as_json=as_json, data=values
        )

    command.__doc__ = doc or (
        f"Decide a pending task with the outcome {outcome!r}.\n\n"
        "The outcome must be one the task allows (approved and rejected unless it lists\n"
        "its own): a confirmation task takes confirm, a manual action complete.\n\n"
        "\b\n"
        "Examples:\n"
        f"  axme tasks {verb} 3f2a                 # an intent id, a task id, or a prefix\n"
        f'  axme tasks {verb} 3f2a -c "checked" --data ticket=OPS-12\n'
    )
    return command


def submit(
    ctx: typer.Context,
    ref: RefArg,
    outcome: Annotated[
        str,
        typer.Option(
            "--outcome", "-o", metavar="OUTCOME", help="One of the task's outcomes, e.g. approved."
        ),
    ],
    data: DataOpt = None,
    data_json: DataJsonOpt = None,
    comment: CommentOpt = None,
    who: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a task with an outcome and data: forms, clarifications, reviews.

    \b
    Examples:
      axme tasks submit 3f2a --outcome approved --data rows=1200 --data table=orders
      axme tasks submit 3f2a --outcome answered --data-json '{"region": "eu"}' -c "per Bob"
    """
    values = parse_data(data or [], data_json)
    decide_and_report(
        session(ctx), ref, outcome, who=who, comment=comment, as_json=as_json, data=values
    )


def get(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """A task: what it asks, for which intent, by when, and its decision once made."""
    from axme_cli import render

    with connect(ctx) as client:
        task = find_task(client, ref, pending_only=False)
    if as_json:
        render.print_json(task)
    else:
        render.task_panel(task)


task_app.command("list")(inbox)
task_app.command()(get)
for _verb_name in VERB_OUTCOMES:
    task_app.command(_verb_name)(_verb(_verb_name))
task_app.command()(submit)
task_app.command("show", hidden=True)(get)  # the name it had first


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
    app.command("approve")(_verb("approve", APPROVE_HELP))
    app.command("reject")(_verb("reject", REJECT_HELP))
    app.command()(signal)
    app.add_typer(task_app, name="tasks")
    app.add_typer(task_app, name="task", hidden=True)  # the name it had first
