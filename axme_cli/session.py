"""The daemon connection (with the project's axme.toml) and the `--payload` reader, without
Typer.

Shared by the Typer commands (`commands/common.py`) and the launcher's quick paths
(`quick.py`), which must not pay for loading the Typer app.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

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


#: Set to anything but `0` to send no axme.toml, as `--no-config` does.
NO_CONFIG_ENV = "AXME_NO_CONFIG"

#: How a command treats the project's axme.toml: `required` (a broken one fails the command,
#: e.g. `send`, whose agents it declares), `optional` (a broken one found in this directory or
#: above is a warning: on-call work goes on), `ignored` (not sent at all).
ProjectUse = Literal["required", "optional", "ignored"]


def given_options(home: str | None, config: str | None, no_config: bool) -> tuple[str, ...]:
    """The words for `Session.given`, in one order whichever order they were typed in."""
    words: list[str] = []
    for flag, value in (("--home", home), ("--config", config)):
        if value is not None:
            words += [flag, value]
    return (*words, "--no-config") if no_config else tuple(words)


class Session(NamedTuple):
    """What a command runs against: this home's daemon, and the project config to send it.

    `config` is the file `--config` names (None: the nearest axme.toml, if any);
    `no_config` is `--no-config`; `given` is those of `--home`, `--config` and `--no-config`
    given on the command line, as words (`("--home", "/srv/axme")`) that a printed next
    command repeats (an `AXME_HOME` the next one inherits anyway).
    """

    paths: HomePaths
    config: Path | None = None
    no_config: bool = False
    given: tuple[str, ...] = ()

    def skips_project(self) -> bool:
        if self.config is not None:
            if self.no_config:
                raise BadInput("--config and --no-config: give one or the other")
            return False
        return self.no_config or os.environ.get(NO_CONFIG_ENV, "") not in ("", "0")

    @contextmanager
    def connect(
        self, *, autostart: bool = True, project: ProjectUse = "optional"
    ) -> Iterator[DaemonClient]:
        """A client for this home's daemon; the daemon is started if nothing answers."""
        from axme_cli.client import DaemonClient

        paths = self.paths
        skip = project == "ignored" or self.skips_project()

        def start() -> None:
            from axme_cli import daemonctl
            from axme_cli.render import note

            started = daemonctl.ensure_running(paths)
            if not started.already_running:
                note(f"started the axme daemon (pid {started.pid}, socket {started.socket})")

        with DaemonClient(paths.socket, autostart=start if autostart else None) as client:
            if not skip:
                _apply_project(self.config, client, required=project == "required")
            yield client


def _apply_project(config_path: Path | None, client: DaemonClient, *, required: bool) -> None:
    """Send this project's axme.toml (as `docker compose up` would); the daemon applies it only
    when it changed, so `axme send` in a fresh checkout needs no setup step.

    A broken file that was found rather than named (`--config`) stops only the commands that
    need it: the others say so once on stderr and go on, so that a typo in a parent
    directory's axme.toml never blocks an `axme approve`.
    """
    from axme_cli.paths import find_config

    path = config_path or find_config(Path.cwd())
    if path is None:
        return
    if not path.is_file():
        raise BadInput(f"--config: no such file: {path}")
    from axme_cli.project import load_config
    from axme_cli.render import note

    try:
        applied = client.apply_project(load_config(path).to_wire())
    except BadInput as exc:
        if required or config_path is not None:
            raise
        from axme_cli.render import warning

        warning(f"{exc.message}; going on without it (--no-config or {NO_CONFIG_ENV}=1 skips it)")
        return
    if applied:
        note(f"applied {path}")
