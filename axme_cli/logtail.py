"""`tail -n N [-f]` for the daemon's and the agents' log files, rotation included."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def last_lines(path: Path, count: int) -> tuple[list[str], int]:
    """The last `count` lines of `path` and the offset where the file ends."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        block, data = 64 * 1024, b""
        pos = end
        while pos > 0 and data.count(b"\n") <= count:
            pos = max(0, pos - block)
            f.seek(pos)
            data = f.read(end - pos)
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:] if count else [], end


def print_log(
    path: Path, *, lines: int, follow: bool, emit: Callable[[str], None], poll: float = 0.25
) -> None:
    """Emit the last `lines` lines, then (with `follow`) every new line until Ctrl-C."""
    tail, offset = last_lines(path, lines)
    for line in tail:
        emit(line)
    if not follow:
        return
    inode = path.stat().st_ino
    partial = ""
    try:
        while True:
            try:
                st = path.stat()
            except FileNotFoundError:
                time.sleep(poll)
                continue
            if st.st_ino != inode or st.st_size < offset:  # rotated or truncated
                inode, offset = st.st_ino, 0
            if st.st_size > offset:
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                offset += len(chunk)
                *complete, partial = (partial + chunk.decode(errors="replace")).split("\n")
                for line in complete:
                    emit(line)
            time.sleep(poll)
    except KeyboardInterrupt:
        return
