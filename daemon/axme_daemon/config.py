"""Daemon settings: flags win over `AXME_*` environment variables, which win over defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from axme_cli.listen import BadListen, parse_listen
from axme_cli.paths import HomePaths, home_paths
from axme_cli.protocol import DEFAULT_MAX_PAYLOAD_BYTES
from axme_daemon.delivery import DEFAULT_LEASE_GRACE
from axme_daemon.store import check_store_url


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"axme daemon: {name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise SystemExit(f"axme daemon: {name} must be positive, got {value}")
    return value


def _lease_grace(given: float | None) -> float:
    """`--lease-grace`, else `AXME_LEASE_GRACE_SECONDS`, else 10: positive seconds."""
    raw: object = given if given is not None else os.environ.get("AXME_LEASE_GRACE_SECONDS")
    if raw is None or raw == "":
        return DEFAULT_LEASE_GRACE
    try:
        value = float(str(raw))
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise SystemExit(
            f"axme daemon: --lease-grace/AXME_LEASE_GRACE_SECONDS must be positive seconds,"
            f" got {raw!r}"
        )
    return value


#: Held streams of each kind, at most: a TUI or script watching everything; `axme tail`,
#: `wait` and SDK `wait_for` calls; connected agent workers.
STREAM_CAPS = {"watch": 64, "events": 1024, "agent": 1024}
_STREAM_CAP_ENV = {
    "watch": "AXME_MAX_WATCH_STREAMS",
    "events": "AXME_MAX_EVENT_STREAMS",
    "agent": "AXME_MAX_AGENT_STREAMS",
}


@dataclass(frozen=True)
class DaemonSettings:
    paths: HomePaths
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    store_url: str = ""
    foreground: bool = False
    #: How long an unsupervised worker keeps its deliveries without a stream or heartbeat,
    #: and, on a shared store, this daemon's leases without its heartbeat.
    lease_grace: float = DEFAULT_LEASE_GRACE
    #: `HOST:PORT` for the loopback TCP listener; otherwise it opens only when agents run.
    listen: str | None = None
    pid: int = field(default_factory=os.getpid)
    #: The most held streams of each kind (see holds.py), from `AXME_MAX_*_STREAMS`.
    stream_caps: dict[str, int] = field(default_factory=lambda: dict(STREAM_CAPS))

    @property
    def database_url(self) -> str:
        return self.store_url or f"sqlite:///{self.paths.database}"


def load_settings(
    home: Path | None = None,
    *,
    max_payload_bytes: int | None = None,
    store_url: str | None = None,
    foreground: bool = False,
    listen: str | None = None,
    lease_grace: float | None = None,
) -> DaemonSettings:
    listen = listen or os.environ.get("AXME_LISTEN") or None
    if listen is not None:
        try:
            parse_listen(listen)
        except BadListen as exc:
            raise SystemExit(f"axme daemon: --listen/AXME_LISTEN: {exc}") from None
    # AXME_STORE_URL: the name it had first, still honoured.
    store_url = store_url or os.environ.get("AXME_STORE") or os.environ.get("AXME_STORE_URL", "")
    try:
        check_store_url(store_url)
    except ValueError as exc:
        raise SystemExit(f"axme daemon: --store/AXME_STORE: {exc}") from None
    return DaemonSettings(
        paths=home_paths(home),
        max_payload_bytes=max_payload_bytes
        or _env_int("AXME_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES),
        store_url=store_url,
        lease_grace=_lease_grace(lease_grace),
        listen=listen,
        foreground=foreground,
        stream_caps={k: _env_int(_STREAM_CAP_ENV[k], n) for k, n in STREAM_CAPS.items()},
    )
