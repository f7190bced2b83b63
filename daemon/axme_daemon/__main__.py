"""`python -m axme_daemon`: what `axme daemon start` runs (it never imports this package)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from axme_cli.errors import StoreUnavailable
from axme_cli.paths import PRIVATE_UMASK
from axme_daemon.config import load_settings
from axme_daemon.log import configure_logging
from axme_daemon.maintenance import copy, maintain
from axme_daemon.server import AlreadyRunning, HomeUnusable
from axme_daemon.service import run
from axme_daemon.store.sealing import BadKeyFile

#: Exit code when another daemon already serves the home (the CLI treats it as success).
EXIT_ALREADY_RUNNING = 3
#: Exit code when the daemon cannot serve this home; its last line on stderr says why.
EXIT_CANNOT_START = 4


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)  # before anything is created: logs, the database, keys
    parser = argparse.ArgumentParser(prog="axme-daemon", description="Run the axme daemon.")
    parser.add_argument(
        "action",
        nargs="?",
        choices=("serve", "check", "recover", "copy"),
        default="serve",
        help="serve (default); check the store; recover: set a damaged store aside and rebuild;"
        " copy: the home's SQLite store into PostgreSQL (--to)",
    )
    parser.add_argument("--to", metavar="URL", help="copy: the postgresql://... to copy into")
    parser.add_argument("--json", action="store_true", help="copy: the counts as JSON")
    parser.add_argument("--home", type=Path, help="axme home (default: $AXME_HOME or XDG)")
    parser.add_argument("--foreground", action="store_true", help="also log to stderr")
    parser.add_argument(
        "--max-payload-bytes", type=int, help="largest request body accepted (default 1 MiB)"
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="also serve on loopback TCP (127.0.0.1, localhost or [::1]; or AXME_LISTEN), API"
        " key required (default: only when agents run)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="sqlite:///PATH or postgresql://... (or AXME_STORE; default: the home's axme.db)",
    )
    parser.add_argument(
        "--lease-grace",
        type=float,
        metavar="SECONDS",
        help="how long leases outlive their holder's last heartbeat (or"
        " AXME_LEASE_GRACE_SECONDS; default 10)",
    )
    args = parser.parse_args(argv)
    if (args.action == "copy") != (args.to is not None):
        parser.error("--to goes with copy, and copy needs it")
    if args.max_payload_bytes is not None and args.max_payload_bytes <= 0:
        parser.error("--max-payload-bytes must be positive")
    settings = load_settings(
        args.home,
        max_payload_bytes=args.max_payload_bytes,
        foreground=args.foreground,
        listen=args.listen,
        store_url=args.store,
        lease_grace=args.lease_grace,
    )
    if args.action == "copy":  # before logging: a missing home must stay missing
        return copy(settings, args.to, as_json=args.json)
    try:
        try:
            configure_logging(settings)
        except OSError as exc:
            raise HomeUnusable(f"cannot write its log: {exc}") from exc
        if args.action != "serve":
            return maintain(args.action, settings)
        run(settings)
    except AlreadyRunning:
        first = " (stop it first: axme daemon stop)" if args.action != "serve" else ""
        print(f"axme daemon: already running for {settings.paths.home}{first}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except (HomeUnusable, StoreUnavailable, BadKeyFile) as exc:
        print(f"axme daemon: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return 0


if __name__ == "__main__":
    sys.exit(main())
