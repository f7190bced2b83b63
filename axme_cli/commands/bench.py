"""`axme bench`: how fast this machine runs durable intents, against a throwaway daemon.

Starts a daemon on a temporary home, registers the bundled no-op agent
(`axme_cli/bench/agent.py`), runs the workloads (see `axme_cli/bench/workloads.py`), prints
median, p99 and min-max per figure, and removes everything: agents, daemon, temp home.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.commands.common import JsonOpt

if TYPE_CHECKING:
    from rich.console import Console

    from axme_cli.bench.workloads import Bench


def _only(value: str | None, scale: int | None, store: str | None) -> tuple[str, ...]:
    from axme_cli.bench.workloads import DEFAULT_WORKLOADS, WORKLOADS
    from axme_cli.errors import BadInput

    if store is not None and not store.startswith(("postgresql://", "postgres://")):
        raise BadInput("--store: expected a postgresql://USER:PASSWORD@HOST/DB URL")
    if not value:
        return (*DEFAULT_WORKLOADS, *("PG",) * bool(store), *("W4",) * bool(scale))
    wanted = tuple(w.strip() for w in value.split(",") if w.strip())
    lookup = {w.lower(): w for w in WORKLOADS}
    unknown = [w for w in wanted if w.lower() not in lookup]
    if unknown:
        raise BadInput(
            f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
        )
    chosen = tuple(lookup[w.lower()] for w in wanted)
    if "W4" in chosen and not scale:
        raise BadInput("W4 needs --scale N: the largest store to measure (e.g. 1000000)")
    if "PG" in chosen and not store:
        raise BadInput("PG needs --store postgresql://...: an empty database to measure on")
    return chosen


def _fmt(value: float, unit: str) -> str:
    if unit.startswith("per "):
        return f"{value:.2f}"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _table(console: Console, report: dict[str, dict[str, dict[str, Any]]]) -> None:
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    table.add_column("", no_wrap=True, style="bold")
    table.add_column("figure", no_wrap=True)
    table.add_column("unit", no_wrap=True, style="dim")
    table.add_column("median", justify="right", no_wrap=True)
    table.add_column("p99", justify="right", no_wrap=True)
    table.add_column("min-max", justify="right", no_wrap=True)
    table.add_column("vs W0", justify="right", no_wrap=True)
    beside = any("ratio_to_sqlite" in row for m in report.values() for row in m.values())
    if beside:
        table.add_column("vs SQLite", justify="right", no_wrap=True)
    for workload, metrics in report.items():
        for i, (name, row) in enumerate(metrics.items()):
            unit = row["unit"]
            ratios = [row.get("ratio_to_w0"), *[row.get("ratio_to_sqlite")] * beside]
            table.add_row(
                workload if i == 0 else "",
                name,
                unit,
                f"[bold]{_fmt(row['median'], unit)}[/]",
                _fmt(row["p99"], unit),
                f"{_fmt(row['min'], unit)}-{_fmt(row['max'], unit)}",
                *(f"{ratio:.2f}x" if ratio is not None else "" for ratio in ratios),
            )
        table.add_section()
    console.print(table)


def _run(bench: Bench, console: Console | None) -> None:
    """The workloads, under a progress bar when stderr is a terminal."""
    units = bench.units()
    if console is None or not console.is_terminal:
        bench.run()
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description:<8}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=sum(units.values()))

        def tick(workload: str, done: float) -> None:
            progress.update(task, description=workload, advance=done)

        bench.tick = tick
        bench.run()


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller runs, once each: under a minute.")
    ] = False,
    intents: Annotated[
        int | None,
        typer.Option(
            "--intents", min=1, metavar="N", help="Intents per W1 run [default: 2000; quick: 300]."
        ),
    ] = None,
    clients: Annotated[
        int,
        typer.Option(
            "--clients", min=1, metavar="N", help="Concurrent clients for W1 create-only."
        ),
    ] = 32,
    replicas: Annotated[
        int, typer.Option("--replicas", min=1, metavar="N", help="Processes of the W1 agent.")
    ] = 1,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            min=1,
            max=1024,
            metavar="N",
            help="Intents each W1 agent process handles at once.",
        ),
    ] = 8,
    repeat: Annotated[
        int | None,
        typer.Option(
            "--repeat",
            min=1,
            metavar="N",
            help="Repetitions of each workload [default: 3; quick: 1].",
        ),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            metavar="LIST",
            help="Comma-separated workloads: W0,W1,W1-seq,W2,W3,W5,CLI,PG,W4,TUI.",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="URL",
            help="Also run PG: W1 and W1-seq with a daemon on this PostgreSQL database, W1"
            " with two, W2 with a daemon killed (an empty database of its own: the bench"
            " leaves its intents there).",
        ),
    ] = None,
    scale: Annotated[
        int | None,
        typer.Option(
            "--scale",
            min=100,
            metavar="N",
            help="Run W4 growth: fill a store to 10^4, 10^5, ... up to N intents.",
        ),
    ] = None,
    busy: Annotated[
        int,
        typer.Option(
            "--busy",
            min=0,
            max=64,
            metavar="N",
            help="CPU-bound processes to run alongside (e.g. one per core): figures under load.",
        ),
    ] = 0,
    tiny: Annotated[bool, typer.Option("--tiny", hidden=True)] = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure durable intents on this machine, against a throwaway daemon.

    \b
    W0      raw durable SQLite commits (WAL, synchronous=FULL): the ceiling
    W1      throughput: 3-step and 1-step intents, create-only with 1 and N clients
    W1-seq  one intent at a time: submit to completed on the event stream; and how long
            a finished step's record takes to be in the store (the re-run window)
    W2      crash recovery: SIGKILL mid-step to redelivery and completion
    W3      a person in the loop: decision to completed
    W5      500 steps, killed at step 499: kill to completed, replay per step (50 vs 500)
    CLI     wall time of `axme --version`, `send`, `list`, `show`, `inbox`, `wait`,
            `agents list`, `--help`, `daemon status` and `keys list`
    PG      (with --store URL) W1 3-step intents and W1-seq with one daemon on
            PostgreSQL, beside SQLite's of the same run; W1 with two daemons on the
            database beside one; W2 with a daemon SIGKILLed: kill to completed
    W4      growth (with --scale N): list, inbox, show, create, RSS, bytes per intent
            at 10^4, 10^5, ... N intents in the store
    TUI     (with --only TUI) axme tui headless with 10,000 intents and 200 pending
            tasks: each key's handling time, and how long the event loop was ever busy

    Starts a daemon on a temporary home with the bundled no-op agent, and removes both after.
    """
    import signal
    import time

    from axme_cli import render
    from axme_cli.bench.workloads import Bench, Plan

    plan = Plan.make(
        quick=quick,
        tiny=tiny,
        intents=intents,
        clients=clients,
        replicas=replicas,
        concurrency=concurrency,
        repeat=repeat,
        only=_only(only, scale, store),
        scale=scale,
        busy=busy,
        store=store,
    )
    bench = Bench(plan, lambda workload, done: None)
    began = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _terminate)  # so that the cleanup runs
    try:
        bench.start()
        _run(bench, render.err())
    finally:
        bench.close()
        signal.signal(signal.SIGTERM, previous)
    took = time.monotonic() - began
    report = bench.results.report()
    if as_json:
        render.print_json(
            {
                "workloads": report,
                "checks": bench.results.checks,
                "settings": {
                    "intents": plan.intents,
                    "clients": plan.clients,
                    "replicas": plan.replicas,
                    "concurrency": plan.concurrency,
                    "repeat": plan.repeat,
                    "only": list(plan.only),
                    "scale": plan.scale,
                    "busy": plan.busy,
                },
                "home": str(bench.home),
                "seconds": round(took, 1),
            }
        )
        return
    console = render.out()
    _table(console, report)
    for name, value in bench.results.checks.items():
        if name.startswith("PG "):  # what bounds and qualifies the PG figures
            console.print(f"[dim]{name}: {value}[/]")
    console.print(
        f"[dim]{plan.intents} intents per W1 run, {plan.clients} clients, "
        f"{plan.replicas} W1 agent process(es) x {plan.concurrency} at once, "
        f"{plan.repeat} repetition(s); "
        + (f"{plan.busy} busy process(es) alongside; " if plan.busy else "")
        + f"{took:.0f} s; temp home {bench.home} removed[/]"
    )


def register(app: typer.Typer) -> None:
    app.command()(bench)
