"""`axme daemon check` and `axme daemon recover`: the store file, with no daemon running.

Both hold the home's lock while they work, so no daemon can start on the file meanwhile; the
exit code says what was found (`EXIT_*` below).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from axme_daemon.config import DaemonSettings
from axme_daemon.server import acquire_lock
from axme_daemon.store import shown_url
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
