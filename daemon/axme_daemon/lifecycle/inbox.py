"""What an inbox's owner does with a thread (`threads.py` opens them and delivers
completions): reply, delegate it to another inbox, delete replies; and reading threads and
the changes feed. A thread is its intent's: its id is the intent id.
"""

from __future__ import annotations

from typing import Any

from axme_cli.errors import BadInput, NotFound
from axme_daemon.intents import now_iso
from axme_daemon.lifecycle.threads import add_entry
from axme_daemon.lifecycle.timeline import load, load_intent, row_to_intent
from axme_daemon.lifecycle.tx import Row, Tx
from axme_daemon.store.base import Thread


def _entry(row: Row) -> dict[str, Any]:
    return {
        "pos": row["pos"],
        "message_id": row["message_id"],
        "kind": row["kind"],
        "owner": row["owner"],
        "actor": row["actor"],
        "at": row["at"],
        "details": load(row["details"]),
        "deleted_at": row["deleted_at"],
    }


def read_thread(tx: Tx, intent_id: str) -> Thread | None:
    row = tx.one("intent_by_id", intent_id=intent_id)
    if row is None:
        return None
    entries = [_entry(r) for r in tx.all("inbox_entries_of", intent_pos=row["pos"])]
    return (row_to_intent(row), entries) if entries else None


def read_threads(tx: Tx, owner: str | None, limit: int) -> list[Thread]:
    rows = (
        tx.all("inbox_threads_of", owner=owner, limit=limit)
        if owner is not None
        else tx.all("inbox_threads", limit=limit)
    )
    return [t for r in rows if (t := read_thread(tx, r["intent_id"])) is not None]


def read_changes(tx: Tx, owner: str | None, cursor: int, limit: int) -> list[tuple[int, Thread]]:
    """Changes after `cursor`, in order, each with its thread as it is now."""
    params = {"cursor": cursor, "limit": limit}
    rows = (
        tx.all("inbox_changes_of", owner=owner, **params)
        if owner is not None
        else tx.all("inbox_changes", **params)
    )
    return [(r["pos"], t) for r in rows if (t := read_thread(tx, r["intent_id"])) is not None]


def _thread_for_update(tx: Tx, intent_id: str, owner: str | None) -> tuple[int, str]:
    """The thread's intent pos and current owner; NotFound unless `owner` (when given)
    holds it."""
    pos, _ = load_intent(tx, intent_id)
    row = tx.one("inbox_owner", intent_pos=pos)
    if row is None:
        raise NotFound(
            f"no inbox thread {intent_id} (an intent sent with a reply_to address has one)",
            details={"thread_id": intent_id},
        )
    if owner is not None and row["owner"] != owner:
        raise NotFound(
            f"inbox thread {intent_id} is not in {owner}'s inbox",
            details={"thread_id": intent_id, "owner_agent": owner},
        )
    return pos, row["owner"]


def reply(
    tx: Tx, intent_id: str, owner: str | None, actor: str, message: str
) -> tuple[dict[str, Any], list[str]]:
    pos, current = _thread_for_update(tx, intent_id, owner)
    entry = add_entry(tx, pos, "reply", current, actor, now_iso(), {"message": message})
    return entry, []


def delegate(
    tx: Tx, intent_id: str, owner: str | None, actor: str, delegate_to: str, note: str | None
) -> tuple[dict[str, Any], list[str]]:
    pos, current = _thread_for_update(tx, intent_id, owner)
    if delegate_to == current:
        raise BadInput(f"delegate_to: the thread is in {current}'s inbox already")
    details = {"delegate_to": delegate_to, "from_owner": current, "note": note}
    entry = add_entry(tx, pos, "delegated", delegate_to, actor, now_iso(), details)
    return entry, []


def delete_messages(
    tx: Tx,
    intent_id: str,
    owner: str | None,
    actor: str,
    mode: str,
    message_ids: list[str] | None,
    limit: int | None,
) -> tuple[list[str], list[str]]:
    """Delete replies: the ones named, or the latest `limit`. A thread has one copy here, so
    `self` (for me) and `both` (for everyone) delete alike; the mode is recorded. A deleted
    reply keeps its place, without its text. All or none: a named message that is not a
    live reply of this thread is a 400."""
    pos, current = _thread_for_update(tx, intent_id, owner)
    replies = [
        _entry(r)
        for r in tx.all("inbox_entries_of", intent_pos=pos)
        if r["kind"] == "reply" and r["deleted_at"] is None
    ]
    if message_ids is not None:
        ours = {e["message_id"] for e in replies}
        if unknown := [m for m in message_ids if m not in ours]:
            raise BadInput(
                f"message_ids: {', '.join(unknown)} are not replies in thread {intent_id}",
                details={"message_ids": unknown},
            )
        chosen = list(dict.fromkeys(message_ids))
    else:
        chosen = [e["message_id"] for e in replies[-(limit or 1) :]]
    at = now_iso()
    for message_id in chosen:
        tx.write("delete_inbox_message", message_id=message_id, at=at)
    if chosen:
        add_entry(tx, pos, "deleted", current, actor, at, {"message_ids": chosen, "mode": mode})
    return chosen, []
