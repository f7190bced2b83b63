"""The daemon connection and the `--payload` reader, without Typer.

Shared by the Typer commands (`commands/common.py`) and the quick path of `axme send`
(`launch.py`), which must not pay for loading the Typer app.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axme_cli.errors import BadInput
from axme_cli.paths import HomePaths

if TYPE_CHECKING:
    from axme_cli.client import DaemonClient


def read_payload(spec: str | None) -> dict[str, Any]:
    """`--payload` as JSON text, `@file` or `-` (stdin); it must be a JSON object."""
    if spec is None:
        return {}
    if spec == "-":
        text, origin = sys.stdin.read(), "stdin"
    elif spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise BadInput(f"--payload: file not found: {path}") from None
        except OSError as exc:
            raise BadInput(f"--payload: cannot read {path}: {exc.strerror}") from None
        origin = str(path)
    else:
        text, origin = spec, "--payload"
    return json_object(text, origin, "the payload must be")


def json_value(text: str, origin: str) -> Any:
    """`text` parsed as JSON, or a `BadInput` naming `origin` and where it is wrong."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{origin}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def json_object(text: str, origin: str, must: str = "must be") -> dict[str, Any]:
    """`text` parsed as a JSON object, or a `BadInput` naming `origin` and what is wrong."""
    value = json_value(text, origin)
    if not isinstance(value, dict):
        raise BadInput(f"{origin}: {must} a JSON object, got {type(value).__name__}")
    return value


@contextmanager
def connect_to(
    paths: HomePaths,
    config_path: Path | None,
    *,
    autostart: bool = True,
    apply_project: bool = True,
) -> Iterator[DaemonClient]:
    """A client for this home's daemon; the daemon is started if nothing answers."""
    from axme_cli.client import DaemonClient

    def start() -> None:
        from axme_cli import daemonctl
        from axme_cli.render import note

        started = daemonctl.ensure_running(paths)
        if not started.already_running:
            note(f"started the axme daemon (pid {started.pid}, socket {started.socket})")

    with DaemonClient(paths.socket, autostart=start if autostart else None) as client:
        if apply_project:
            _apply_project(config_path, client)
        yield client


def _apply_project(config_path: Path | None, client: DaemonClient) -> None:
    """Send this project's axme.toml (as `docker compose up` would); the daemon applies it only
    when it changed, so `axme send` in a fresh checkout needs no setup step."""
    from axme_cli.project import find_config, load_config

    path = config_path or find_config(Path.cwd())
    if path is None:
        return
    if not path.is_file():
        raise BadInput(f"--config: no such file: {path}")
    if client.apply_project(load_config(path).to_wire()):
        from axme_cli.render import note

        note(f"applied {path}")
