"""AXME inbox threads, as the intent's own writes keep them: an intent sent with a
`reply_to` address opens a thread in that address's inbox in the create's transaction, and
the write that ends it delivers the completion there in the same transaction, so a thread
never misses its intent's end. (A `reply_to` without `://` is a parent intent's id: a
`ctx.call` child, which has no thread.)
"""

from __future__ import annotations

import uuid
from typing import Any

from axme_daemon.intents import Intent, compact_json
from axme_daemon.lifecycle.tx import Tx


def owner_of(reply_to: str | None) -> str | None:
    """The inbox a `reply_to` names, or None when it names none."""
    return reply_to if reply_to is not None and "://" in reply_to else None


def add_entry(
    tx: Tx,
    pos: int,
    kind: str,
    owner: str,
    actor: str | None,
    at: str,
    details: dict[str, Any] | None,
) -> dict[str, Any]:
    entry = {
        "message_id": str(uuid.uuid4()),
        "kind": kind,
        "owner": owner,
        "actor": actor,
        "at": at,
        "details": details,
    }
    tx.write(
        "insert_inbox_entry",
        intent_pos=pos,
        **{**entry, "details": compact_json(details) if details is not None else None},
    )
    return entry


def open_thread(tx: Tx, pos: int, intent: Intent) -> None:
    owner = owner_of(intent.reply_to)
    if owner is not None:
        details = {"intent_type": intent.intent_type, "to_agent": intent.to_agent}
        add_entry(tx, pos, "sent", owner, intent.from_agent, intent.created_at, details)


def deliver_completion(tx: Tx, pos: int, ended: Intent) -> None:
    """The intent just ended: its outcome goes to its thread's owner (a delegate, if any)."""
    if owner_of(ended.reply_to) is None:
        return
    row = tx.one("inbox_owner", intent_pos=pos)
    if row is None:  # sent before threads were kept
        return
    details: dict[str, Any] = {"status": ended.status.value}
    if ended.result is not None:
        details["result"] = ended.result
    if ended.error is not None:
        details["error"] = ended.error
    add_entry(tx, pos, "completed", row["owner"], ended.to_agent, ended.updated_at, details)
