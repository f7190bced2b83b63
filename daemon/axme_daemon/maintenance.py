"""`axme daemon check`, `axme daemon recover` and `axme store copy`: the store, with no
daemon running.

Each holds the home's lock while it works, so no daemon can start on the store meanwhile; the
exit code says what was found (`EXIT_*` below, and the CLI's codes for the copy).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from axme_daemon.config import DaemonSettings
from axme_daemon.server import acquire_lock
from axme_daemon.store import shown_url
from axme_daemon.store.copy import Copied, CopyRefused, copy_home
from axme_daemon.store.sqlite_check import Recovery, full_check, recover

EXIT_SOUND = 0
EXIT_DAMAGED = 1


def _sqlite_path(settings: DaemonSettings) -> Path:
    url = settings.database_url
    if not url.startswith("sqlite:///"):
        raise SystemExit(
            f"axme daemon: check and recover apply to a SQLite store, not {shown_url(url)}"
        )
    return Path(url.removeprefix("sqlite:///"))


def _check(path: Path) -> list[str]:
    started = time.monotonic()
    problems = full_check(path)
    took = time.monotonic() - started
    if not problems:
        print(f"ok: {path} passed PRAGMA integrity_check ({took:.2f}s)")
    else:
        for problem in problems[:20]:
            print(f"  {problem}")
        shown = f"{len(problems)} problem{'s' * (len(problems) != 1)} shown above"
        print(
            f"damaged: {path} failed PRAGMA integrity_check ({shown}); run `axme daemon "
            "recover` to keep it aside and rebuild the store"
        )
    return problems


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in counts.items()) or "nothing"


def _describe(path: Path, report: Recovery) -> None:
    also = f" (and its {', '.join(p.name[-4:] for p in report.kept[1:])})" * (len(report.kept) > 1)
    print(
        f"kept the damaged store as {report.kept[0]}{also}: delete it yourself once you no "
        "longer need it"
    )
    if report.unreadable:
        print(f"nothing could be read from it ({report.unreadable})")
    print(f"rebuilt {path}, saved: {_counts(report.saved)}")
    if report.skipped:
        print(f"skipped unreadable stretches: {_counts(report.skipped)}")
    if report.orphans:
        print(f"dropped rows whose intent was lost: {_counts(report.orphans)}")
    if report.garbled:
        print(f"dropped rows with garbled contents: {_counts(report.garbled)}")


def maintain(action: str, settings: DaemonSettings) -> int:
    """Run `check` or `recover` on the home's store; return the process's exit code."""
    path = _sqlite_path(settings)
    lock_fd = acquire_lock(settings.paths)  # raises AlreadyRunning while a daemon serves
    try:
        if not path.exists():
            print(f"ok: there is no store yet at {path}")
            return EXIT_SOUND
        problems = _check(path)
        if action == "check" or not problems:
            if action == "recover" and not problems:
                print("nothing to recover: the store is sound and was left as it is")
            return EXIT_DAMAGED if problems else EXIT_SOUND
        _describe(path, recover(path))
        return EXIT_SOUND
    finally:
        os.close(lock_fd)


def copy(settings: DaemonSettings, url: str, *, as_json: bool) -> int:
    """`axme store copy --to URL`: the home's SQLite store into PostgreSQL; the exit code is
    the CLI's (README "Exit codes")."""
    home_url = settings.database_url
    source = (
        Path(home_url.removeprefix("sqlite:///"))
        if home_url.startswith("sqlite:///")
        else settings.paths.database
    )

    def progress(done: int, total: int, table: str) -> None:
        print(f"copying: {done:,} of {total:,} rows ({done * 100 // total}%, {table})",
              file=sys.stderr, flush=True)  # fmt: skip

    try:
        copied = copy_home(settings.paths, source, url, progress)
    except CopyRefused as exc:
        print(f"axme store copy: {exc}", file=sys.stderr)
        return exc.exit_code
    if as_json:
        print(json.dumps(copied.to_json(), indent=2))
    else:
        _describe_copy(copied)
    return EXIT_SOUND


def _describe_copy(copied: Copied) -> None:
    print(
        f"copied {copied.source} into {copied.target}: {copied.rows:,} rows in"
        f" {copied.seconds:.1f}s, every table counted on both sides"
    )
    width = max(map(len, copied.counts))
    print(f"  {'table':<{width}}  {'source':>10}  {'target':>10}")
    for table, (source, target) in copied.counts.items():
        print(f"  {table:<{width}}  {source:>10,}  {target:>10,}")
    if copied.sealed:
        print(
            f"{copied.sealed} sealed secret(s) copied sealed: a daemon on this database opens"
            f" them with the secrets.key of its own home; give each such home a copy of"
            f" {copied.key_file} (mode 0600)"
        )
    print(
        "next: axme daemon start --store URL (or set AXME_STORE=URL), URL as given to --to;"
        f" {copied.source} is left as it was, and a daemon started without --store serves it"
    )
