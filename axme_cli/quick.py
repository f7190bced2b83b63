"""The commands `axme` runs without loading the Typer app, parsed with argparse.

Loading the Typer app costs about 70 ms, and when a command runs Typer coerces each option
through a pydantic adapter (about 130 ms more, to import pydantic): more than `axme list` in a
script's loop, or a plain `axme send` in a CI step, should wait. These parsers take the
commands people and scripts run most, each with the options its Typer command declares (a
test holds them equal); whatever they do not take whole (`--help`, an option they do not know,
a value they would read differently) goes to the Typer app, which owns the CLI and says what
is wrong. The work itself is the Typer commands' own (`views.py`, `decisions.py`,
`session.py`).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from axme_cli.launch import QUICK_COMMANDS, command_word
from axme_cli.session import Session, given_options
from axme_cli.views import CANCEL_REASON, LIST_LIMIT

#: `-s=X`: Click reads the value `=X` where argparse reads `X`.
_SHORT_WITH_EQUALS = re.compile(r"^-[^-]=")


#: What a quick command runs: its exit code, or None for 0.
Handler = Callable[[Session, argparse.Namespace], "int | None"]


class NotQuick(Exception):
    """argparse met something it does not take; the Typer app will say what it makes of it."""


class _Formatter(argparse.HelpFormatter):
    """Never prints (these parsers have no help): a fixed width spares importing shutil."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=80)


class _Parser(argparse.ArgumentParser):
    def __init__(self, prog: str | None = None, **kwargs: Any) -> None:
        kwargs.update(add_help=False, allow_abbrev=False, formatter_class=_Formatter)
        super().__init__(prog, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise NotQuick(message)


def _count(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer option in `low..high`, in plain digits: anything else is Typer's to judge."""

    def parse(text: str) -> int:
        if not text.isascii() or not text.isdigit():
            raise ValueError(text)
        value = int(text)
        if value < low or (high is not None and value > high):
            raise ValueError(text)
        return value

    return parse


def _send(session: Session, a: argparse.Namespace) -> None:
    from axme_cli import render
    from axme_cli.session import read_payload

    body = {"intent_type": a.intent_type, "to_agent": a.to, "payload": read_payload(a.payload)}
    with session.connect(project="required") as client:
        created = client.create_intent(body, idempotency_key=a.idempotency_key)
        render.sent(created, a.as_json)


def _list(session: Session, a: argparse.Namespace) -> None:
    from axme_cli import views

    views.list_intents(
        session,
        status=a.status,
        agent=a.agent,
        intent_type=a.intent_type,
        limit=a.limit,
        cursor=a.cursor,
        as_json=a.as_json,
    )


def _show(session: Session, a: argparse.Namespace) -> None:
    from axme_cli import views

    views.show(session, a.intent, a.as_json)


def _wait(session: Session, a: argparse.Namespace) -> int:
    from axme_cli import views

    return views.wait(session, a.intent, a.timeout, a.as_json)


def _tail(session: Session, a: argparse.Namespace) -> int:
    from axme_cli import views

    return views.tail(session, a.intent, a.since, a.as_json)


def _retry(session: Session, a: argparse.Namespace) -> None:
    from axme_cli import views

    views.retry(session, a.intent, a.as_json)


def _cancel(session: Session, a: argparse.Namespace) -> None:
    from axme_cli import views

    views.cancel(session, a.intent, a.reason, a.as_json)


def _decide(outcome: str) -> Handler:
    def run(session: Session, a: argparse.Namespace) -> None:
        from axme_cli.decisions import decide_and_report, parse_data

        data = parse_data(a.data, None)
        decide_and_report(
            session, a.ref, outcome, who=a.who, comment=a.comment, as_json=a.as_json, data=data
        )

    return run


def _inbox(session: Session, a: argparse.Namespace) -> None:
    from axme_cli import views

    views.inbox(session, all_=a.all_, as_json=a.as_json)


def _agents_list(session: Session, a: argparse.Namespace) -> None:
    from axme_cli import views

    views.list_agents(session, as_json=a.as_json)


def _keys_list(session: Session, a: argparse.Namespace) -> None:
    from axme_cli import views

    views.list_keys(session, as_json=a.as_json)


def _daemon_status(session: Session, a: argparse.Namespace) -> int | None:
    from axme_cli import views

    return views.daemon_status(session.paths, as_json=a.as_json)


def _command(
    commands: argparse._SubParsersAction[_Parser],
    name: str,
    run: Handler,
    *arguments: str,
) -> argparse.ArgumentParser:
    """A quick command: its positional `arguments`, `--json`, and what runs it."""
    command = commands.add_parser(name)
    for argument in arguments:
        command.add_argument(argument)
    command.add_argument("--json", dest="as_json", action="store_true")
    command.set_defaults(run=run)
    return command


def _list_options(list_: argparse.ArgumentParser) -> None:
    list_.add_argument("--status", "-s")
    list_.add_argument("--agent", "--to")
    list_.add_argument("--type", "-t", dest="intent_type")
    list_.add_argument("--limit", "-n", type=_count(1, 500), default=LIST_LIMIT)
    list_.add_argument("--cursor")


def _decision(
    commands: argparse._SubParsersAction[_Parser], name: str, outcome: str
) -> argparse.ArgumentParser:
    decision = _command(commands, name, _decide(outcome), "ref")
    decision.add_argument("--comment", "-c")
    decision.add_argument("--as", dest="who")
    decision.add_argument("--data", "-d", action="append", default=[])
    return decision


def _nouns(commands: argparse._SubParsersAction[_Parser], wanted: Callable[[str], bool]) -> None:
    """AXME's command shapes: `axme tasks list|approve|...`, `axme intents get|list|...`."""
    if wanted("tasks"):
        from axme_cli.decisions import VERB_OUTCOMES

        tasks = commands.add_parser("tasks").add_subparsers(dest="tasks_command", required=True)
        _command(tasks, "list", _inbox).add_argument(
            "--all", "-a", dest="all_", action="store_true"
        )
        for verb, outcome in VERB_OUTCOMES.items():
            _decision(tasks, verb, outcome)
    if wanted("intents"):
        intents = commands.add_parser("intents").add_subparsers(
            dest="intents_command", required=True
        )
        _command(intents, "get", _show, "intent")
        _list_options(_command(intents, "list", _list))
        _command(intents, "watch", _tail, "intent").add_argument(
            "--since", type=_count(0), default=0
        )
        _command(intents, "cancel", _cancel, "intent").add_argument(
            "--reason", "-r", default=CANCEL_REASON
        )


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """`axme [--home H] [--config C] [--no-config] COMMAND ...` for the quick commands: all
    of them, or only `command` (building the two dozen parsers takes longer than parsing)."""

    def wanted(name: str) -> bool:
        return command is None or name == command

    root = _Parser(prog="axme")
    root.add_argument("--home")
    root.add_argument("--config")
    root.add_argument("--no-config", action="store_true")
    commands = root.add_subparsers(dest="command", required=True)

    if wanted("send"):
        send = _command(commands, "send", _send, "intent_type")
        send.add_argument("--to", required=True)
        send.add_argument("--payload", "-p")
        send.add_argument("--idempotency-key", "-k")
    if wanted("list"):
        _list_options(_command(commands, "list", _list))
    if wanted("show"):
        _command(commands, "show", _show, "intent")
    if wanted("wait"):
        _command(commands, "wait", _wait, "intent").add_argument("--timeout")
    if wanted("tail"):
        _command(commands, "tail", _tail, "intent").add_argument(
            "--since", type=_count(0), default=0
        )
    if wanted("retry"):
        _command(commands, "retry", _retry, "intent")
    if wanted("cancel"):
        _command(commands, "cancel", _cancel, "intent").add_argument(
            "--reason", "-r", default=CANCEL_REASON
        )
    for name, outcome in (("approve", "approved"), ("reject", "rejected")):
        if wanted(name):
            _decision(commands, name, outcome)
    if wanted("inbox"):
        _command(commands, "inbox", _inbox).add_argument(
            "--all", "-a", dest="all_", action="store_true"
        )
    if wanted("agents"):
        agents = commands.add_parser("agents").add_subparsers(dest="agents_command", required=True)
        _command(agents, "list", _agents_list)
    if wanted("keys"):
        keys = commands.add_parser("keys").add_subparsers(dest="keys_command", required=True)
        _command(keys, "list", _keys_list)
    if wanted("daemon"):
        daemon = commands.add_parser("daemon").add_subparsers(dest="daemon_command", required=True)
        _command(daemon, "status", _daemon_status)
    _nouns(commands, wanted)
    return root


class Quick:
    """A command line the quick path runs: where, with which arguments, and what."""

    def __init__(self, session: Session, args: argparse.Namespace) -> None:
        self.session = session
        self.args = args

    def run(self) -> int | None:
        """The command's exit code (None: 0)."""
        handler: Handler = self.args.run
        return handler(self.session, self.args)


def parse(argv: list[str]) -> Quick | None:
    """The quick command this command line asks for, or None: the Typer app's to run."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    if any(_SHORT_WITH_EQUALS.match(arg) for arg in options):
        return None
    command = command_word(options)
    if command not in QUICK_COMMANDS:
        return None
    try:
        args = parser(command).parse_args(argv)
    except NotQuick:
        return None
    positional = [getattr(args, name, None) for name in ("intent_type", "intent", "ref")]
    if "--" not in argv and any(p and p.startswith("-") for p in positional):
        return None  # argparse takes `-5` or `-x y` as a value; Click as an unknown option
    from axme_cli.paths import home_paths

    home = Path(args.home) if args.home is not None else None
    config = Path(args.config) if args.config is not None else None
    # As Typer has them: `Path`s (`./h/` is `h`), an AXME_HOME not among them.
    given = given_options(
        None if home is None else str(home),
        None if config is None else str(config),
        args.no_config,
    )
    home_dir = home.expanduser().absolute() if home is not None else None
    return Quick(Session(home_paths(home_dir), config, args.no_config, given), args)
