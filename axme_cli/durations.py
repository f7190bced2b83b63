"""Durations as people write them: `30s`, `5m`, `1.5h`, `250ms`, `2d` or plain seconds."""

from __future__ import annotations

import re

from axme_cli.errors import BadInput
from axme_cli.protocol import MAX_DURATION_SECONDS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str | float, *, option: str = "--timeout", at_least: float = 0.0) -> float:
    """Seconds, or `BadInput` naming `option` and showing what is expected.

    More than zero (and at least `at_least`), at most `MAX_DURATION_SECONDS` (366 days)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise BadInput(f"{option}: {text!r} is not a duration (examples: 30s, 5m, 1h, 250ms)")
        seconds = float(m[1]) * _UNITS[m[2]]
    if not seconds > 0:  # NaN too
        raise BadInput(f"{option}: must be more than zero")
    if not seconds <= MAX_DURATION_SECONDS:
        raise BadInput(f"{option}: must be at most 366 days ({MAX_DURATION_SECONDS} seconds)")
    if seconds < at_least:
        raise BadInput(f"{option}: must be at least {at_least:g}s")
    return seconds
