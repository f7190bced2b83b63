"""Is the store file sound? A cheap look at every start, SQLite's own check after an unclean
stop, the full check on demand (`axme daemon check`), and a way out (`axme daemon recover`).

Checking at start costs what reading the file costs: `PRAGMA quick_check` reads every page
(1.1-1.7 s for a store of a million intents with the file in the page cache, ~10 s from a cold
one; `integrity_check`, which also matches every index to its table, 5.4-7.9 s). So a start after
a clean stop (no WAL left: closing the last connection checkpoints and removes it) only
compares the file's length with the length its header records, which catches a cut file;
a start after a crash, a kill or a power cut (the WAL is still there) runs `quick_check`, and
`integrity_check` when the WAL ends in a partial frame (it was cut, or the disk lost its tail).
Damage found later, by any read or write, marks the store broken (see `sqlite.py`).

Nothing here deletes a user's file: recovery renames the damaged one aside, with a timestamp.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axme_cli.errors import StoreDamaged, StoreUnavailable
from axme_daemon.store.migrations import migrate

log = logging.getLogger(__name__)

#: SQLite's primary result codes for a damaged file (the low byte of an extended code).
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_FULL_CODE = 13  # SQLITE_FULL
_WAL_HEADER = 32
_FRAME_HEADER = 24


def is_damage(exc: BaseException) -> bool:
    """Whether `exc` is SQLite saying the file is damaged ("malformed", "not a database")."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and code is not None
        and code & 0xFF in (_DAMAGE_CODES)
    )


def is_full(exc: BaseException) -> bool:
    """Whether `exc` is SQLite saying the disk (or the file's size limit) is full."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF == _FULL_CODE


def damaged(path: Path, reason: str, *, running: bool = False) -> StoreDamaged:
    now = (
        "it takes no more writes; stop the daemon and run"
        if running
        else "nothing was changed; run"
    )
    return StoreDamaged(
        f"the store {path} is damaged ({reason}): {now} `axme daemon recover`, which keeps the "
        "damaged file (renamed with a timestamp) and rebuilds the store from every row it can "
        "still read"
    )


def opening_failed(path: Path, exc: sqlite3.Error) -> StoreUnavailable:
    """What an error met while opening the store at `path` means, in one line."""
    if is_damage(exc):
        return damaged(path, str(exc))
    return StoreUnavailable(f"cannot open the store {path}: {exc}")


def _connect_ro(path: Path) -> sqlite3.Connection:
    """Read-only: a check must not checkpoint a damaged WAL into the file it is checking."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _page_size(header: bytes) -> int:
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


def _header_problem(path: Path) -> str | None:
    """With no WAL the file alone is the database: it must be as long as its header says."""
    with path.open("rb") as f:
        header = f.read(100)
    if not header:
        return None  # an empty file is a new database
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return "file is not a database"
    pages = int.from_bytes(header[28:32], "big")
    valid = header[24:28] == header[92:96]  # the header's page count is kept up to date
    expected = pages * _page_size(header)
    actual = path.stat().st_size
    if valid and expected > actual:
        return f"the file is {actual} bytes, its header says {expected}: it was cut short"
    return None


def _wal_has_partial_frame(path: Path, wal_size: int) -> bool:
    with path.open("rb") as f:
        header = f.read(100)
    if len(header) < 100:
        return False
    frame = _FRAME_HEADER + _page_size(header)
    return (wal_size - _WAL_HEADER) % frame != 0


def _wal_size(path: Path) -> int:
    try:
        return Path(f"{path}-wal").stat().st_size
    except FileNotFoundError:
        return 0


def _run_check(path: Path, pragma: str) -> list[str]:
    """The problems `pragma` reports (SQLite says "ok" when there are none)."""
    db = _connect_ro(path)
    try:
        rows = [str(r[0]) for r in db.execute(pragma).fetchall()]
    finally:
        db.close()
    return [] if rows == ["ok"] else rows


def check_at_start(path: Path) -> None:
    """Raise `StoreDamaged` when the store at `path` is visibly damaged (see the docstring)."""
    if not path.exists():
        return
    wal_size = _wal_size(path)
    try:
        if wal_size == 0:
            problem = _header_problem(path)
            if problem is not None:
                raise damaged(path, problem)
            return
        pragma = "PRAGMA quick_check(5)"
        if _wal_has_partial_frame(path, wal_size):
            pragma = "PRAGMA integrity_check(5)"
            log.warning("the WAL of %s ends in a partial frame: checking it all", path)
        log.info("the last stop was not clean: checking the store (%s)", pragma.split()[1])
        started = time.monotonic()
        problems = _run_check(path, pragma)
    except sqlite3.Error as exc:
        raise opening_failed(path, exc) from exc
    except OSError as exc:
        raise StoreUnavailable(f"cannot read the store {path}: {exc.strerror}") from exc
    log.info("checked in %.2fs", time.monotonic() - started, extra={"action": "check"})
    if problems:
        raise damaged(path, one_line(problems))


def one_line(problems: list[str], most: int = 3) -> str:
    """SQLite's report (a line per problem, under a heading) as one short line."""
    lines = [ln for p in problems for ln in p.splitlines() if ln and not ln.startswith("***")]
    more = f"; and {len(lines) - most} more" if len(lines) > most else ""
    return "; ".join(lines[:most]) + more


def full_check(path: Path) -> list[str]:
    """Every problem `PRAGMA integrity_check` finds (up to 100), or [] when the store is sound."""
    try:
        return _run_check(path, "PRAGMA integrity_check(100)")
    except sqlite3.DatabaseError as exc:
        return [str(exc)]


# -- recovery ---------------------------------------------------------------------------


@dataclass
class Recovery:
    """What `recover` did: where the damaged file went and what the new store holds."""

    kept: list[Path]
    saved: dict[str, int] = field(default_factory=dict)
    #: Stretches of a table that could not be read and were skipped.
    skipped: dict[str, int] = field(default_factory=dict)
    #: Rows dropped because the row they belong to (their intent) could not be read.
    orphans: dict[str, int] = field(default_factory=dict)
    #: Rows that read, but with bytes no write of ours makes (a cut page's zeros, JSON
    #: that does not parse): dropped rather than served.
    garbled: dict[str, int] = field(default_factory=dict)
    unreadable: str | None = None  # why nothing at all could be read


def _set_aside(path: Path) -> list[Path]:
    """Rename the store and its WAL files aside, under one timestamped name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    kept = []
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            target = Path(f"{aside}{suffix}")
            os.rename(source, target)
            kept.append(target)
    return kept


def _tables(db: sqlite3.Connection) -> list[tuple[str, list[str], list[str]]]:
    """(table, columns, key) for each table of the schema; key is `rowid` or the primary key."""
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'schema_migrations' ORDER BY rowid"
        )
    ]
    out = []
    for name in names:
        info = db.execute(f"PRAGMA table_info({name})").fetchall()
        columns = [r[1] for r in info]
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
        if "WITHOUT ROWID" in sql.upper():
            key = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
        else:
            key = ["rowid"]
        out.append((name, columns, key))
    return out


def _readable_from(db: sqlite3.Connection, table: str, first: str, after: int) -> int | None:
    """The first value of `first` past `after` from which `table` reads again (jumps that
    double past damaged pages); None when nothing readable follows."""
    jump = 1
    while jump < 2**62:
        try:
            row = db.execute(
                f"SELECT {first} FROM {table} WHERE {first} >= ? ORDER BY {first} LIMIT 1",
                (after + jump,),
            ).fetchone()
        except sqlite3.DatabaseError:
            jump *= 2
            continue
        return None if row is None else int(row[0])
    return None


def _salvage(
    db: sqlite3.Connection, table: str, columns: list[str], key: list[str], skips: list[int]
) -> Iterator[tuple[Any, ...]]:
    """Every row of `table` that can be read, in key order, skipping damaged stretches.

    Skipping steps over values of the first key column, an integer in every table of the
    schema (a rowid, or an intent's `pos`)."""
    keys = ", ".join(key)
    select = f"SELECT {keys}, {', '.join(columns)} FROM {table}"
    where: str = ""
    args: tuple[Any, ...] = ()
    floor = 0  # the lowest first-key value not yet tried
    while True:
        try:
            for row in db.execute(f"{select}{where} ORDER BY {keys}", args):
                if any(k is None for k in row[: len(key)]):  # a page read past a cut file's
                    skips[0] += 1  # end: no row of ours has a NULL key
                    continue
                floor = max(floor, int(row[0]))
                marks = ", ".join("?" * len(key))
                where, args = f" WHERE ({keys}) > ({marks})", tuple(row[: len(key)])
                yield tuple(row[len(key) :])
            return
        except sqlite3.DatabaseError:
            skips[0] += 1
            resume = _readable_from(db, table, key[0], floor)
            if resume is None:
                return
            floor = resume
            where, args = f" WHERE {key[0]} >= ?", (resume,)


def _drop_orphans(db: sqlite3.Connection, table: str) -> int:
    dropped = 0
    for fk in db.execute(f"PRAGMA foreign_key_list({table})").fetchall():
        parent, column, parent_column = fk[2], fk[3], fk[4]
        cur = db.execute(
            f"DELETE FROM {table} WHERE {column} NOT IN (SELECT {parent_column} FROM {parent})"
        )
        dropped += cur.rowcount
    return dropped


def recover(path: Path) -> Recovery:
    """Set the store at `path` aside and build a new one there from every row still readable.

    Call with the home's lock held (no daemon running)."""
    report = Recovery(kept=_set_aside(path))
    fresh = sqlite3.connect(path, isolation_level=None)
    try:
        fresh.execute("PRAGMA journal_mode=WAL")
        migrate(fresh)
        if not report.kept:
            report.unreadable = "there was no store file"
            return report
        with _readable_copy(report.kept[0]) as source_path:
            source = _connect_ro(source_path)
            try:
                _copy(source, fresh, report)
            except sqlite3.DatabaseError as exc:
                report.unreadable = str(exc)
            finally:
                source.close()
        fresh.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        fresh.close()
    return report


@contextlib.contextmanager
def _readable_copy(path: Path) -> Iterator[Path]:
    """`path`, or when it was cut short, a copy of it that SQLite reads up to where the file
    ends (its header's page count marked stale): with the header's length, every read fails.
    The copy is ours and removed after; the damaged file itself is never written."""
    if _wal_size(path) > 0 or _header_problem(path) is None:
        yield path
        return
    copy = path.with_name(f"{path.name}.reading")
    shutil.copyfile(path, copy)
    try:
        with copy.open("r+b") as f:
            f.seek(24)
            counter = f.read(4)
            f.seek(92)  # "version-valid-for": once it differs, SQLite goes by the file's size
            f.write(bytes([counter[0] ^ 0xFF, *counter[1:]]))
        yield copy
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


#: Columns of the schema that hold JSON (see schema.sql).
JSON_COLUMNS = frozenset(
    {"payload", "human_task", "result", "error", "details", "spec", "decision", "data"}
    | {"hooks", "scopes"}
)


def _garbled(row: tuple[Any, ...], json_at: list[int]) -> bool:
    """A row read from a damaged page that no write of ours could have made."""
    if any(isinstance(v, str) and "\x00" in v for v in row):
        return True
    for n in json_at:
        if isinstance(row[n], str):
            try:
                json.loads(row[n])
            except ValueError:
                return True
    return False


def _copy(source: sqlite3.Connection, fresh: sqlite3.Connection, report: Recovery) -> None:
    theirs = {name for (name,) in source.execute("SELECT name FROM sqlite_master")}
    tables = _tables(fresh)
    fresh.execute("BEGIN")
    for table, columns, key in tables:
        if table not in theirs:
            continue
        have = {r[1] for r in source.execute(f"PRAGMA table_info({table})")}
        shared = [c for c in columns if c in have]
        skips = [0]
        marks = ", ".join("?" * len(shared))
        insert = f"INSERT OR IGNORE INTO {table} ({', '.join(shared)}) VALUES ({marks})"
        saved = garbled = 0
        json_at = [n for n, column in enumerate(shared) if column in JSON_COLUMNS]
        for row in _salvage(source, table, shared, key, skips):
            if _garbled(row, json_at):
                garbled += 1
                continue
            saved += fresh.execute(insert, row).rowcount
        report.saved[table] = saved
        if garbled:
            report.garbled[table] = garbled
        if skips[0]:
            report.skipped[table] = skips[0]
    for table, _, _ in tables:
        dropped = _drop_orphans(fresh, table)
        if dropped:
            report.orphans[table] = dropped
            report.saved[table] = report.saved.get(table, 0) - dropped
    fresh.execute("COMMIT")
