"""Daemons sharing a store: each registers itself and heartbeats, and a lease held through
a daemon lasts as long as that daemon's heartbeat is younger than its lease grace.

Times are the database's clock (`clock`), so daemons on machines whose clocks disagree
still agree on whose heartbeat lapsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from axme_daemon.intents import Event, Intent, now_iso
from axme_daemon.lifecycle.delivery import release_lapsed
from axme_daemon.lifecycle.tx import Tx


def clock(tx: Tx) -> float:
    row = tx.one("clock")
    assert row is not None
    return float(row["now"])


def register(
    tx: Tx,
    daemon_id: str,
    host: str,
    pid: int,
    home: str,
    lease_grace: float,
    adopt: bool = False,
) -> tuple[None, list[str]]:
    """The daemon's row, new or taken over from its home's last run (same id). `adopt`: it
    takes the agents and projects nobody owns (written before daemons owned theirs, or
    copied in from a SQLite home), unless it has one of the same name."""
    if adopt:
        tx.write("adopt_agents", owner=daemon_id)
        tx.write("adopt_projects", owner=daemon_id)
    tx.write(
        "upsert_daemon",
        daemon_id=daemon_id,
        host=host,
        pid=pid,
        home=home,
        started_at=now_iso(),
        now=clock(tx),
        lease_grace=lease_grace,
    )
    return None, []


def heartbeat(
    tx: Tx, daemon_id: str, host: str, pid: int, home: str, lease_grace: float
) -> tuple[list[tuple[Intent, Event]], list[str]]:
    """Renew this daemon's leases (its row; made again if it went missing), then end the
    deliveries of daemons whose heartbeat lapsed: their intents go back to the queue."""
    now = clock(tx)
    if not tx.run("daemon_heartbeat", daemon_id=daemon_id, now=now, lease_grace=lease_grace):
        register(tx, daemon_id, host, pid, home, lease_grace)
    return release_lapsed(tx, daemon_id, now)


def unregister(tx: Tx, daemon_id: str) -> tuple[None, list[str]]:
    tx.write("delete_daemon", daemon_id=daemon_id)
    return None, []


def set_listening(tx: Tx, daemon_id: str, addresses: Iterable[str]) -> tuple[None, list[str]]:
    """The addresses the daemon's workers listen for now."""
    tx.write("set_daemon_listening", daemon_id=daemon_id, listening=json.dumps(sorted(addresses)))
    return None, []


def list_daemons(tx: Tx) -> list[dict[str, Any]]:
    """Every registered daemon; whether its heartbeat is live now, in how many seconds it
    lapses (negative: it has), and the addresses its workers listen for."""
    now = clock(tx)
    out = []
    for row in tx.all("list_daemons"):
        lapses_in = float(row["heartbeat_at"]) + float(row["lease_grace"]) - now
        listening = json.loads(row["listening"] or "[]")
        out.append({**row, "listening": listening, "live": lapses_in >= 0, "lapses_in": lapses_in})
    return out


def leases_by_daemon(tx: Tx) -> dict[str, int]:
    """How many deliveries each daemon's workers hold now, by daemon id."""
    return {str(r["lease_daemon"]): int(r["n"]) for r in tx.all("leases_by_daemon")}


def known_addresses(tx: Tx) -> set[str]:
    """The addresses some live daemon serves: an agent registered there (not removed), or
    one its workers listen for. Agents nobody owns (SQLite's) count as served."""
    live = {d["daemon_id"]: d for d in list_daemons(tx) if d["live"]}
    known = {a for d in live.values() for a in d["listening"]}
    for row in tx.all("agents_of_daemons"):
        owned = row["owner"] == "" or row["owner"] in live
        if owned and not json.loads(row["spec"]).get("removed"):
            known.add(row["address"])
    return known
