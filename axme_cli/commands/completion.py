"""What Tab offers for values: statuses, and the ids of intents the daemon holds.

Completion runs on every Tab press, so it must be quick and quiet: it asks the daemon only
when one already listens (it never starts one), gives up after half a second, and offers
nothing rather than an error when anything goes wrong.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer

from axme_cli.protocol import IntentStatus

#: How long Tab waits for the daemon before offering nothing.
TIMEOUT_SECONDS = 0.5
#: Ids offered at most: the newest first, as `axme list` shows them.
LIMIT = 50
_HEX_PREFIX = re.compile(r"[0-9a-f-]*")


def statuses(incomplete: str) -> list[str]:
    """Every status that starts with what was typed (in any case)."""
    return [s.value for s in IntentStatus if s.value.startswith(incomplete.upper())]


def intent_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Ids of the newest intents that start with what was typed, each with its type and
    status as the shell's description."""
    if not _HEX_PREFIX.fullmatch(incomplete):
        return []
    try:
        from axme_cli.client import DaemonClient
        from axme_cli.paths import home_paths

        given = (ctx.find_root().params or {}).get("home")  # a str or a Path, by Typer version
        home = Path(given).expanduser().absolute() if given else None
        paths = home_paths(home)
        with DaemonClient(paths.socket, timeout=TIMEOUT_SECONDS) as client:
            page = client.list_intents(id_prefix=incomplete or None, limit=LIMIT)
    except Exception:  # a Tab press never prints a traceback
        return []
    return [
        (i["intent_id"], f"{i['intent_type']} {i['status']}")
        for i in page.get("intents", [])
        if i["intent_id"].startswith(incomplete)
    ]
