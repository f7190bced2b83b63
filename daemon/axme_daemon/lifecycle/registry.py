"""The agent registry, projects' notification hooks, and API keys."""

from __future__ import annotations

from typing import Any

from axme_cli.errors import Conflict
from axme_daemon.intents import compact_json, now_iso
from axme_daemon.lifecycle.timeline import dump, load
from axme_daemon.lifecycle.tx import Tx


def put_agents(
    tx: Tx,
    owner: str,
    source: str,
    digest: str | None,
    specs: list[dict[str, Any]],
    replace_source: bool,
    hooks: list[dict[str, Any]] | None = None,
) -> tuple[bool, list[str]]:
    """Upsert `specs` from `source`; with `replace_source`, drop that source's other agents.
    With a `digest` (a project), its `hooks` replace the ones stored for it.

    Returns False (and writes nothing) when `digest` is the one already applied for `source`.
    `owner`: the daemon whose agents these are (several share a PostgreSQL store).
    """
    if digest is not None:
        row = tx.one("project_digest", owner=owner, source=source)
        if row is not None and row["digest"] == digest:
            return False, []
    now = now_iso()
    if replace_source:
        keep = {s["address"] for s in specs}
        for row in tx.all("agents_of_source", owner=owner, source=source):
            if row["address"] not in keep:
                tx.write("delete_agent", owner=owner, address=row["address"])
    for spec in specs:
        tx.write(
            "upsert_agent",
            owner=owner,
            address=spec["address"],
            spec=dump(spec),
            source=source,
            now=now,
        )
    if digest is not None:
        tx.write(
            "upsert_project",
            owner=owner,
            source=source,
            digest=digest,
            now=now,
            hooks=dump(hooks or []),
        )
    return True, []


def delete_agent(tx: Tx, owner: str, address: str) -> tuple[bool, list[str]]:
    return tx.run("delete_agent", owner=owner, address=address) > 0, []


def set_agent_removed(tx: Tx, owner: str, address: str, removed: bool) -> tuple[bool, list[str]]:
    """A flag in the spec itself: a changed axme.toml rewrites the spec, and so clears it."""
    row = tx.one("agent_spec_for_update", owner=owner, address=address)
    if row is None:
        return False, []
    spec = load(row["spec"])
    if removed:
        spec["removed"] = True
    else:
        spec.pop("removed", None)
    tx.write("set_agent_spec", owner=owner, address=address, spec=dump(spec), now=now_iso())
    return True, []


def put_api_key(
    tx: Tx, name: str, key_hash: str, scopes: list[str]
) -> tuple[dict[str, Any], list[str]]:
    if tx.one("api_key_exists", name=name) is not None:
        raise Conflict(
            f"a key named {name!r} exists already (axme keys revoke {name} first)",
            details={"name": name},
        )
    row = {"name": name, "scopes": scopes, "created_at": now_iso()}
    tx.write(
        "insert_api_key",
        name=name,
        key_hash=key_hash,
        scopes=compact_json(scopes),
        created_at=row["created_at"],
    )
    return row, []


def delete_api_key(tx: Tx, name: str) -> tuple[bool, list[str]]:
    return tx.run("delete_api_key", name=name) > 0, []


def kill_agent(tx: Tx, address: str, actor: str) -> tuple[dict[str, Any], list[str]]:
    """Mark `address` killed (the first kill stands: a second changes nothing); its row."""
    tx.write("kill_agent", address=address, killed_at=now_iso(), actor=actor)
    row = tx.one("killed_agent", address=address)
    assert row is not None
    return dict(row), []


def resume_agent(tx: Tx, address: str) -> tuple[bool, list[str]]:
    """Lift a kill; False when `address` was not killed."""
    return tx.run("resume_agent", address=address) > 0, []
