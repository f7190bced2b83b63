"""`axme demo`: an agent is SIGKILLed in the middle of a step, and its intent completes anyway.

No setup. The demo starts the daemon when none runs, registers the bundled example agent
(`axme_cli/demo/pipeline_agent.py`) in a fresh temp dir, sends it one intent, SIGKILLs the
agent while its second step runs, and narrates what follows: the supervisor restarts it, the
intent is redelivered, the finished step comes back from the record instead of running again.
The agent counts its real step executions in a side file, so the summary is evidence, not a
claim. Afterwards it removes what it added (the agent, the temp dir, the daemon if it started
it); the intent stays, for `axme show`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.commands.common import JsonOpt, connect, parse_duration
from axme_cli.errors import STATUS_EXIT, AxmeError, WaitTimedOut
from axme_cli.paths import HomePaths
from axme_cli.protocol import FINAL_STATUSES, IntentStatus

if TYPE_CHECKING:
    import queue
    from datetime import datetime

    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.spinner import Spinner

    from axme_cli.client import DaemonClient

#: Real executions of each step when the demo works: the kill costs one re-run of `transform`.
EXPECTED_RUNS = {"extract": 1, "transform": 2, "load": 1}
#: How long the demo waits for the agent to note that `transform` started, before killing it.
_KILL_WAIT = 5.0


class _View:
    """What the demo prints: story lines that stay, and the intent's events as they arrive.

    On a terminal a Live region under the story shows a spinner and the latest events, and
    goes away at the end (`axme show` prints the whole timeline). Otherwise (CI, a pipe) every
    line is printed once, in order, with no cursor tricks. Without a console (`--json`), nothing.
    """

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self.fancy = console is not None and console.is_terminal and not console.is_dumb_terminal
        utf = console is not None and console.encoding.lower().replace("-", "").startswith("utf")
        self.marks = (
            {"send": "▶", "kill": "⚡", "restart": "↻", "ok": "✓", "fail": "✗", "arrow": "→"}
            if utf
            else {"send": ">", "kill": "!", "restart": "~", "ok": "+", "fail": "x", "arrow": "->"}
        )
        self._events: deque[str] = deque(maxlen=6)
        self._live: Live | None = None
        self._spinner: Spinner | None = None

    def __enter__(self) -> _View:
        if self.fancy and self.console is not None:
            from rich.live import Live
            from rich.spinner import Spinner

            self._spinner = Spinner("dots", text="starting", style="cyan")
            self._live = Live(
                console=self.console,
                transient=True,
                refresh_per_second=12.5,
                get_renderable=self._render,
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        assert self._spinner is not None
        lines = [
            Text.from_markup(f"    {line}", style="dim", overflow="ellipsis")
            for line in self._events
        ]
        for text in lines:
            text.no_wrap = True
        return Group(*lines, self._spinner)

    def story(self, mark: str, markup: str) -> None:
        if self.console is not None:
            self.console.print(f"{self.marks[mark]} {markup}", soft_wrap=True)

    def line(self, markup: str = "") -> None:
        if self.console is not None:
            self.console.print(markup, soft_wrap=True)

    def status(self, text: str) -> None:
        if self._spinner is not None:
            self._spinner.update(text=text)

    def event(self, event: dict[str, Any]) -> None:
        from axme_cli.render import event_line

        if self.console is None:
            return
        line = event_line(_compact(event))
        if self.fancy:
            self._events.append(line)
        else:
            self.console.print(f"    {line}", soft_wrap=True)


def _compact(event: dict[str, Any]) -> dict[str, Any]:
    """The event without what only a debugger needs (worker ids, a repeated reason)."""
    details = dict(event.get("details") or {})
    details.pop("worker", None)
    details.pop("ordinal", None)
    if event.get("event_type") == "intent.delivered":
        details.pop("reason", None)  # the intent.submitted just before says it
    return {**event, "details": details}


class _Demo:
    """One run: every id, pid and time the story and the summary need, and the cleanup."""

    def __init__(self, paths: HomePaths, view: _View, limit: float) -> None:
        from axme_cli.demo import ADDRESS

        self.paths = paths
        self.view = view
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.address = ADDRESS
        self.workdir: Path | None = None
        self.own_daemon = False  # this demo started the daemon (so it stops it)
        self.daemon_pid: int | None = None
        self.agent_added = False
        self.intent_id: str | None = None
        self.final: dict[str, Any] | None = None
        self.attempt = 0
        self.recorded: dict[str, int] = {}  # step -> the attempt that recorded it
        self.killed_pid: int | None = None
        self.killed_at: datetime | None = None
        self.restarted_pid: int | None = None
        self.redelivered_at: datetime | None = None
        self.sent_at = 0.0
        self.took = 0.0
        self.step_runs: dict[str, list[int]] = {}
        self.agent_log: str | None = None
        self.cleaned: list[str] = []  # what the cleanup did, to tell the user
        self.signal: int | None = None  # SIGINT or SIGTERM, once one came in

    # -- the story -------------------------------------------------------------------------

    def check(self) -> None:
        """Stop here if a Ctrl-C (or SIGTERM) came in: the cleanup runs next."""
        if self.signal is not None:
            raise _Interrupted(self.signal)

    def remaining(self, what: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise WaitTimedOut(f"axme demo did not finish within {self.limit:g}s: {what}")
        return left

    def start_daemon(self) -> None:
        from axme_cli import daemonctl

        self.view.status("starting the axme daemon")
        self.own_daemon = daemonctl.probe(self.paths) is None
        started = daemonctl.ensure_running(self.paths)
        self.own_daemon, self.daemon_pid = not started.already_running, started.pid
        self.check()
        if started.already_running:
            self.view.story("send", f"using the axme daemon already running (pid {started.pid})")
        else:
            self.view.story(
                "send",
                f"started the axme daemon (pid {started.pid}); the demo stops it at the end",
            )

    def register(self, client: DaemonClient) -> None:
        import sys
        import tempfile

        from axme_cli.demo import PIPELINE_AGENT

        self.workdir = Path(tempfile.mkdtemp(prefix="axme-demo-"))
        self.view.status(f"starting {self.address}")
        agent = client.add_agent(
            {
                "address": self.address,
                "command": [sys.executable, str(PIPELINE_AGENT)],
                "cwd": str(self.workdir),
                "env": {"AXME_DEMO_DIR": str(self.workdir)},
                "replicas": 1,
                "concurrency": 1,
                "max_delivery_attempts": 3,
            }
        )
        self.agent_added = True
        self.agent_log = agent.get("log_path")
        while True:
            self.check()
            self.remaining(f"{self.address} did not start; its log: {self.agent_log}")
            agent = client.get_agent(self.address)
            if agent["state"] == "RUNNING" and self._pid(agent):
                break
            if agent["state"] == "FATAL":
                exits = [r["last_exit"]["description"] for r in agent["replicas"] if r["last_exit"]]
                why = exits[0] if exits else "it keeps failing to start"
                raise AxmeError(
                    f"the demo agent could not start ({why}); its log: {self.agent_log}"
                )
            time.sleep(0.05)
        self.check()
        self.view.story(
            "send",
            f"[bold]{self.address}[/] is RUNNING (pid {self._pid(agent)}), "
            "supervised by the daemon",
        )

    def send(self, client: DaemonClient) -> None:
        from axme_cli.demo import INTENT_TYPE

        body = {
            "intent_type": INTENT_TYPE,
            "to_agent": self.address,
            "payload": {"source": "orders.csv", "rows": 1200},
        }
        self.intent_id = str(client.create_intent(body)["intent_id"])
        self.sent_at = time.monotonic()
        arrow = self.view.marks["arrow"]
        self.view.story(
            "send",
            f"sent intent [bold]{self.intent_id[:8]}[/] ({INTENT_TYPE}): "
            f"extract {arrow} transform {arrow} load",
        )
        self.view.status("waiting for the agent")

    def follow(self, client: DaemonClient) -> None:
        """Handle the intent's events until it is final: narrate, and kill at the right time.

        A thread reads the event stream; this (main) thread waits on a queue, so a Ctrl-C is
        seen within 0.1 s and never lands inside the HTTP client.
        """
        import queue
        import threading

        assert self.intent_id is not None
        what = f"intent {self.intent_id} is not final; its log: {self.agent_log}"
        inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        reader = threading.Thread(
            target=_read_events,
            args=(self.paths, self.intent_id, self.remaining(what), inbox),
            name="axme-demo-events",
            daemon=True,
        )
        reader.start()
        while True:
            self.check()
            try:
                kind, item = inbox.get(timeout=0.1)
            except queue.Empty:
                self.remaining(what)
                continue
            if kind == "end":
                break
            if isinstance(item, WaitTimedOut):
                raise WaitTimedOut(f"axme demo did not finish within {self.limit:g}s: {what}")
            if isinstance(item, BaseException):
                raise item
            self.on_event(client, item)
        self.final = client.get_intent(self.intent_id)
        self.took = time.monotonic() - self.sent_at

    def on_event(self, client: DaemonClient, event: dict[str, Any]) -> None:
        from axme_cli.render import parse_time

        self.view.event(event)
        kind = event.get("event_type")
        details = event.get("details") or {}
        if kind == "intent.delivered":
            self.attempt = int(details.get("delivery_attempt") or self.attempt + 1)
            self.view.status(f"attempt {self.attempt}: running the pipeline")
            if self.killed_at is not None and self.redelivered_at is None:
                self.redelivered_at = parse_time(event.get("at"))
                self.restarted_pid = self._pid(client.get_agent(self.address))
                self._say_restarted()
        elif kind == "intent.step_completed":
            step = str(details.get("step"))
            self.recorded[step] = int(details.get("attempt") or self.attempt)
            self._say_step(step)
        elif kind == "intent.progress":
            message = str(details.get("message") or "")
            if message.startswith("resumed:"):
                for step, attempt in self.recorded.items():
                    if attempt < self.attempt:
                        self.view.story("ok", f"'{step}' replayed from the record, not re-run")
            elif message.startswith("transforming") and self.attempt == 1:
                self.kill(client)

    def kill(self, client: DaemonClient) -> None:
        """SIGKILL the agent once `transform` has really started (the agent notes it first)."""
        import os
        import signal
        from datetime import UTC, datetime

        self.view.status("transform is running")
        deadline = min(self.deadline, time.monotonic() + _KILL_WAIT)
        while not any(s == "transform" for s, _ in self._runs()):
            self.check()
            if time.monotonic() > deadline:
                raise AxmeError("the demo agent never started 'transform'")
            time.sleep(0.01)
        pid = self._pid(client.get_agent(self.address))
        if not pid:
            raise AxmeError("the demo agent has no running process to kill")
        self.view.story(
            "kill", f"[bold red]killing the agent (pid {pid})[/] in the middle of 'transform'"
        )
        os.kill(pid, signal.SIGKILL)
        self.killed_pid, self.killed_at = pid, datetime.now(UTC)
        self.view.status("waiting for the supervisor")

    def _say_restarted(self) -> None:
        self.view.story(
            "restart",
            f"[bold]supervisor restarted it (pid {self.restarted_pid})[/]; "
            f"intent redelivered (attempt {self.attempt})",
        )

    def _say_step(self, step: str) -> None:
        if self.killed_at is None:
            self.view.story("ok", f"'{step}' finished; the daemon recorded its result")
        elif step == "transform":
            self.view.story(
                "ok", "'transform' ran again: it was interrupted, so nothing had been recorded"
            )

    # -- evidence --------------------------------------------------------------------------

    @staticmethod
    def _pid(agent: dict[str, Any]) -> int | None:
        replicas = agent.get("replicas") or []
        pid = replicas[0].get("pid") if replicas else None
        return int(pid) if pid else None

    def _runs(self) -> list[tuple[str, int]]:
        """(step, attempt) of every real execution of a step of this intent, in order."""
        import json

        from axme_cli.demo import RUNS_FILE

        if self.workdir is None:
            return []
        try:
            text = (self.workdir / RUNS_FILE).read_text()
        except FileNotFoundError:
            return []
        runs = []
        for line in text.splitlines():
            try:
                run = json.loads(line)
            except ValueError:
                continue  # a line cut short by the kill
            if run.get("intent_id") == self.intent_id:
                runs.append((str(run["step"]), int(run["attempt"])))
        return runs

    def collect(self) -> None:
        from axme_cli.demo import STEPS

        self.step_runs = {step: [] for step in STEPS}
        for step, attempt in self._runs():
            self.step_runs.setdefault(step, []).append(attempt)

    def counts(self) -> dict[str, int]:
        return {step: len(attempts) for step, attempts in self.step_runs.items()}

    def kill_to_redelivery(self) -> float | None:
        if self.killed_at is None or self.redelivered_at is None:
            return None
        return round((self.redelivered_at - self.killed_at).total_seconds(), 3)

    def note_for(self, step: str) -> str:
        attempts = self.step_runs.get(step, [])
        recorded = self.recorded.get(step)
        last = max([self.attempt, *attempts])
        if recorded is None:
            return "never finished"
        interrupted = [a for a in attempts if a != recorded]
        if interrupted:
            tried = ", ".join(str(a) for a in interrupted)
            return f"interrupted by the kill on attempt {tried}, re-run on attempt {recorded}"
        if last > recorded:
            return f"ran on attempt {recorded}; replayed from the record on attempt {last}"
        return f"ran once, on attempt {recorded}"

    def summary(self) -> dict[str, Any]:
        final = self.final or {}
        return {
            "intent_id": self.intent_id,
            "status": final.get("status"),
            "result": final.get("result"),
            "step_runs": self.counts(),
            "kill_to_redelivery_seconds": self.kill_to_redelivery(),
            "killed_pid": self.killed_pid,
            "restarted_pid": self.restarted_pid,
            "ok": self.problem() is None,
        }

    def problem(self) -> str | None:
        """Why this run does not show what it should, or None when it does."""
        status = (self.final or {}).get("status")
        if status != IntentStatus.COMPLETED.value:
            error = (self.final or {}).get("error") or {}
            why = f": {error.get('message')}" if isinstance(error, dict) and error else ""
            return f"the demo intent ended {status}{why}; see: axme show {self.intent_id}"
        if self.killed_pid is None:
            return "the demo agent was never killed"
        if self.counts() != EXPECTED_RUNS:
            return f"expected step executions {EXPECTED_RUNS}, got {self.counts()}"
        return None

    # -- cleanup ---------------------------------------------------------------------------

    def drop_agent(self, client: DaemonClient) -> None:
        """Cancel our intent if the demo was cut short, then remove the agent (it stops)."""
        from axme_cli.errors import Conflict, NotFound

        if self.intent_id is not None and self.final is None:
            try:
                current = client.get_intent(self.intent_id)
                if IntentStatus(current["status"]) not in FINAL_STATUSES:
                    client.resolve_intent(
                        self.intent_id,
                        IntentStatus.CANCELED.value,
                        reason="axme demo was interrupted",
                        actor="axme demo",
                    )
                    self.cleaned.append(f"canceled intent {self.intent_id[:8]}")
            except (Conflict, NotFound):
                pass  # it just ended
        if self.agent_added:
            try:
                client.remove_agent(self.address)
            except NotFound:
                pass
            self.agent_added = False
            self.cleaned.append("removed the agent")

    def drop_rest(self) -> None:
        """Delete the temp dir, and stop the daemon if this demo started it."""
        import shutil

        from axme_cli import daemonctl

        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self.cleaned.append("deleted its temp dir")
        if self.own_daemon:
            self.own_daemon = False
            health = daemonctl.probe(self.paths)
            # Not one started since by someone else (when we know which pid we started).
            if health is None or self.daemon_pid in (None, int(health["pid"])):
                if daemonctl.stop(self.paths).was_running:
                    self.cleaned.append("stopped the daemon it started")


def _print_summary(run: _Demo, view: _View) -> None:
    import json

    from rich.markup import escape
    from rich.table import Table

    from axme_cli.render import status_text

    final = run.final or {}
    mark = "ok" if final.get("status") == IntentStatus.COMPLETED.value else "fail"
    result = json.dumps(final.get("result"), ensure_ascii=False)
    view.story(
        mark,
        f"{status_text(final.get('status'))} in {run.took:.1f} s, result {escape(result)}",
    )
    if view.console is None:
        return
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    table.add_column("STEP", no_wrap=True)
    table.add_column("REAL RUNS", justify="right", no_wrap=True)
    table.add_column("NOTE", overflow="fold")
    for step, count in run.counts().items():
        ok = EXPECTED_RUNS.get(step) == count
        table.add_row(step, str(count) if ok else f"[red]{count}[/]", run.note_for(step))
    view.line()
    view.console.print(table, soft_wrap=True)
    view.line()
    gap = run.kill_to_redelivery()
    if gap is not None:
        arrow = view.marks["arrow"]
        view.line(f"kill {arrow} intent picked up by the restarted agent: [bold]{gap:.2f} s[/]")
    view.line(f"[dim]{escape(', '.join(run.cleaned))}[/]")
    view.line(f"the whole timeline: [bold]axme show {run.intent_id}[/]")


class _Interrupted(Exception):
    """A Ctrl-C or SIGTERM, raised where the demo can stop cleanly."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _read_events(
    paths: HomePaths, intent_id: str, timeout: float, inbox: queue.Queue[tuple[str, Any]]
) -> None:
    """The event-stream thread: every event, then ("end", None), or the error it ended with."""
    from axme_cli.client import DaemonClient

    try:
        with DaemonClient(paths.socket) as client:
            for event in client.follow(intent_id, timeout=timeout):
                inbox.put(("event", event))
        inbox.put(("end", None))
    except Exception as exc:  # handed to the main thread, which raises it
        inbox.put(("error", exc))


@contextmanager
def _deferred_signals(run: _Demo) -> Iterator[None]:
    """Ctrl-C and SIGTERM set a flag the demo checks between steps, instead of raising
    KeyboardInterrupt wherever the main thread happens to be (inside the HTTP client, a lock
    could stay taken); the cleanup then always runs, and runs to the end."""
    import signal

    def note(signum: int, frame: object) -> None:
        run.signal = run.signal or signum

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, note)
        except ValueError:  # not the main thread: signals keep their default behaviour
            break
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _cleanup(step: Callable[[], None]) -> None:
    """One cleanup step; its failure is reported, never raised over the demo's own outcome."""
    from axme_cli import render

    try:
        step()
    except AxmeError as exc:
        render.note(f"cleanup: {exc.message}")


def demo(
    ctx: typer.Context,
    timeout: Annotated[
        str,
        typer.Option(
            metavar="DURATION", help="Give up after this long (60s, 2m); cleans up and exits 9."
        ),
    ] = "60s",
    as_json: JsonOpt = False,
) -> None:
    """See durable execution: an agent is SIGKILLed mid-step and its intent completes anyway.

    Starts the daemon if needed, runs a bundled 3-step agent (extract, transform, load),
    kills it during 'transform' and shows the supervisor restart it, the intent redelivered
    and 'extract' replayed from the record instead of re-run. Then it removes the agent, its
    temp dir and the daemon if it started it; the intent stays (axme show ID).
    """
    from axme_cli import render

    limit = parse_duration(timeout)
    view = _View(None if as_json else render.out())
    run = _Demo(ctx.obj, view, limit)
    with _deferred_signals(run):
        _play(ctx, run, view, as_json)


def _play(ctx: typer.Context, run: _Demo, view: _View, as_json: bool) -> None:
    """The demo from start to cleanup, then its summary and exit code."""
    from axme_cli import render

    try:
        with view:
            view.line(
                "[bold]axme demo[/]: an agent is SIGKILLed mid-step; its intent completes anyway"
            )
            try:
                run.start_daemon()
                with connect(ctx, project="ignored") as client:
                    try:
                        run.register(client)
                        run.send(client)
                        run.follow(client)
                        run.collect()
                    finally:
                        view.status("cleaning up")
                        _cleanup(lambda: run.drop_agent(client))
            finally:
                _cleanup(run.drop_rest)
    except _Interrupted as exc:
        render.note(f"interrupted; {', '.join(run.cleaned) or 'nothing to clean up'}")
        raise typer.Exit(128 + exc.signum) from None
    if as_json:
        render.print_json(run.summary())
    else:
        _print_summary(run, view)
    problem = run.problem()
    if problem is not None:
        status = IntentStatus((run.final or {}).get("status") or IntentStatus.FAILED.value)
        render.error_line(problem)
        raise typer.Exit(STATUS_EXIT.get(status) or 1)


def register(app: typer.Typer) -> None:
    app.command()(demo)
