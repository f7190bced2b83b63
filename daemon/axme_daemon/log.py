"""Daemon logging: a rotating file under the home, plus stderr in the foreground."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from axme_cli.paths import make_private_dirs
from axme_daemon.config import DaemonSettings

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(settings: DaemonSettings) -> None:
    make_private_dirs(settings.paths)
    for existing in settings.paths.log_dir.glob("daemon.log*"):
        existing.chmod(0o600)  # an older version's, or one the CLI opened before a 0600 rule
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    file_handler = logging.handlers.RotatingFileHandler(
        settings.paths.daemon_log, maxBytes=10 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(file_handler)
    if settings.foreground:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(stream)
    # uvicorn's access log is one line per request: too loud for a file nobody rotates by hand.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
