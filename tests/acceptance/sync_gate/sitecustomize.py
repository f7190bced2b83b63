"""Loaded at start-up by a daemon that a durability test runs with this folder on PYTHONPATH.

It puts a gate in front of `os.fdatasync`, the OS call that makes the daemon's WAL durable and
that every acknowledgement waits for. The file named by SYNC_GATE says what a sync does:
"block" holds it, "fail" makes the disk refuse it (EIO), anything else lets it through.
"""

from __future__ import annotations

import errno
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

_GATE = os.environ.get("SYNC_GATE")


def _state() -> str:
    try:
        with open(_GATE or "") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


_real_fdatasync = os.fdatasync


def _gated_fdatasync(fd: FileDescriptorLike) -> None:
    while (state := _state()) == "block":
        time.sleep(0.005)
    if state == "fail":
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    _real_fdatasync(fd)


if _GATE:
    os.fdatasync = _gated_fdatasync
