"""The daemons that share this daemon's store (`axme daemon list`): who they are, whether
their heartbeat is live, what their workers hold and listen for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from axme_daemon.engine import Engine


def describe_daemons(
    found: list[dict[str, Any]],
    leases: dict[str, int],
    me: str | None,
    shared: bool,
    listening: list[str],
) -> list[dict[str, Any]]:
    """The store's rows as the API tells them, with what this daemon (`me`) listens for
    now (`listening`). On a store only one daemon uses (SQLite), nothing heartbeats: the
    daemon answering is live, any other row is a past run's."""
    out = []
    for d in found:
        this = d["daemon_id"] == me
        grace = float(d["lease_grace"])
        out.append(
            {
                "daemon_id": d["daemon_id"],
                "this": this,
                "host": d["host"],
                "pid": int(d["pid"]),
                "home": d["home"],
                "started_at": d["started_at"],
                "heartbeat_at": _iso(float(d["heartbeat_at"])) if shared else None,
                "heartbeat_age": round(grace - float(d["lapses_in"]), 3) if shared else None,
                "lease_grace": grace,
                "live": bool(d["live"]) if shared else this,
                "leases": leases.get(d["daemon_id"], 0),
                "listening": listening if this else list(d["listening"]),
            }
        )
    return out


def _iso(unix: float) -> str:
    at = datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds")
    return at.replace("+00:00", "Z")


def add_daemon_routes(app: FastAPI, engine: Engine) -> None:
    store = engine.store

    @app.get("/v1/daemons", tags=["daemon"])
    async def list_daemons() -> dict[str, Any]:
        """Every daemon registered on this store, oldest first: id, host, pid, home, when it
        started, its last heartbeat (by the store's clock) and whether it is within its
        lease grace, how many deliveries its workers hold, the addresses they listen for.
        `this` marks the daemon answering."""
        found = await store.list_daemons()
        leases = await store.leases_by_daemon()
        me = store.daemon.daemon_id if store.daemon is not None else None
        here = sorted({w.address for w in engine.dispatcher.workers.values()})
        daemons = describe_daemons(found, leases, me, store.shared, here)
        return {"ok": True, "daemons": daemons}
