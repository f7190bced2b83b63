"""A project's agents and notification hooks, declared in `axme.toml`: find the file,
validate it, hand it to the daemon.

    [agents."agent://myorg/production/data-pipeline"]
    command = ["python", "agents/pipeline.py"]
    replicas = 1

    [[hooks]]                                   # runs with the task as JSON on stdin
    command = ["notify-send", "axme"]
    on = ["assigned", "timeout"]                # default: every event

    [[hooks]]                                   # POSTs the same JSON, HMAC-signed
    webhook = "https://chat.example.com/hooks/..."
    secret = "..."

Validation stops at the first problem and says exactly where it is (the file and the line or
the key path) and what was expected, because the user fixes one thing and runs again. The
values in `env` and a hook's `secret` are secrets: no message and no repr ever shows them
(nor a webhook URL's path, which often holds a token).

The CLI imports this module when it finds an axme.toml (`paths.find_config`, lighter, finds
it), so the modules only a load or an error needs (tomllib, hashlib, shutil, shlex, difflib,
json) are imported where they are used.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from axme_cli.errors import BadInput
from axme_cli.paths import CONFIG_NAME as CONFIG_NAME
from axme_cli.paths import find_config as find_config
from axme_cli.protocol import AGENT_ADDRESS_RE, DEFAULT_MAX_DELIVERY_ATTEMPTS

#: Integer settings and their upper bound (None: no bound); all of them are at least 1.
_INT_LIMITS: dict[str, int | None] = {
    "replicas": 64,
    "concurrency": 1024,
    "max_delivery_attempts": 100,
    "start_retries": None,
}
_SECONDS = ("start_seconds", "stop_grace_seconds")
_AGENT_KEYS = ("command", "cwd", "env", *_INT_LIMITS, *_SECONDS)
_TOP_LEVEL_KEYS = ("agents", "hooks")
#: What a hook can be told about; the daemon sends each notice as {"event", "task", "at"}.
HOOK_EVENTS = ("assigned", "reminder", "escalation", "timeout")
_HOOK_KEYS = ("command", "on", "secret", "webhook")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: Program names that mean "the Python axme runs under" in an agent's command.
_PYTHON_NAMES = ("python", "python3")


class ConfigError(BadInput):
    """The project's agent configuration is not valid."""


@dataclass(frozen=True, repr=False)
class AgentConfig:
    """One declared agent, validated: the daemon can start it without second-guessing."""

    address: str
    command: tuple[str, ...]
    cwd: str
    env: dict[str, str] = field(hash=False)
    #: `command[0]` resolved where the user ran `axme` (their PATH, their Python): what the
    #: daemon runs, whatever PATH it was started with.
    executable: str | None = None
    replicas: int = 1
    concurrency: int = 1
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS
    start_seconds: float = 1.0
    start_retries: int = 3
    stop_grace_seconds: float = 5.0

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready, env values included: this goes to the daemon, never to a terminal."""
        wire = {f.name: getattr(self, f.name) for f in fields(self)}
        wire["command"] = list(self.command)
        wire["env"] = dict(self.env)
        return wire

    def __repr__(self) -> str:
        # Reprs end up in logs and tracebacks; env values are secrets.
        shown = {
            f.name: {name: "***" for name in self.env} if f.name == "env" else getattr(self, f.name)
            for f in fields(self)
        }
        return f"AgentConfig({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


@dataclass(frozen=True, repr=False)
class HookConfig:
    """One `[[hooks]]` table: a command (argv, run in the project directory, the notice as
    JSON on stdin) or a webhook (POST of the same JSON, signed with `secret` when set)."""

    on: tuple[str, ...] = HOOK_EVENTS
    command: tuple[str, ...] | None = None
    webhook: str | None = None
    secret: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready, the secret included: this goes to the daemon, never to a terminal."""
        wire: dict[str, Any] = {"on": list(self.on)}
        if self.command is not None:
            wire["command"] = list(self.command)
        if self.webhook is not None:
            wire["webhook"] = self.webhook
        if self.secret is not None:
            wire["secret"] = self.secret
        return wire

    def __repr__(self) -> str:
        # The secret is never shown, and a webhook's path often is a token (chat webhooks).
        if self.command is not None:
            what = f"command={self.command!r}"
        else:
            what = f"webhook={redact_url(self.webhook or '')!r}"
            if self.secret is not None:
                what += ", secret='***'"
        return f"HookConfig({what}, on={self.on!r})"


@dataclass(frozen=True)
class ProjectConfig:
    """A loaded `axme.toml`; `digest` lets the daemon tell whether the file changed since."""

    path: Path
    project_dir: Path
    agents: tuple[AgentConfig, ...]
    digest: str
    hooks: tuple[HookConfig, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {
            "config_path": str(self.path),
            "project_dir": str(self.project_dir),
            "digest": self.digest,
            "agents": [agent.to_wire() for agent in self.agents],
            "hooks": [hook.to_wire() for hook in self.hooks],
        }


def redact_url(url: str) -> str:
    """`https://hooks.example.com/…`: scheme and host only, for logs and reprs."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]  # never user:password@
    except ValueError:
        return "(an invalid URL)"
    if not parts.scheme or not host:
        return "(an invalid URL)"
    rest = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else "/"
    return f"{parts.scheme}://{host}{rest}"


def load_config(path: Path) -> ProjectConfig:
    """Read and validate `path`; the first problem raises ConfigError naming the file."""
    import hashlib
    import tomllib

    shown = _display(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{shown}: not valid TOML: not UTF-8 text (at line {line})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends with "(at line N, column M)"
        raise ConfigError(f"{shown}: not valid TOML: {exc}") from None

    for key in document:
        if key not in _TOP_LEVEL_KEYS:
            raise _unknown_key(shown, "top-level key", key, _TOP_LEVEL_KEYS)
    declared = document.get("agents", {})
    if not isinstance(declared, dict):
        raise ConfigError(
            f'{shown}: agents: expected a table of agents, like [agents."agent://org/env/name"],'
            f" got {_show(declared)}"
        )

    absolute = Path(os.path.abspath(path))
    agents = []
    for address, raw in declared.items():
        prefix = f"{shown}: agents.{_quote(address)}"
        check_agent_address(address, prefix)
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{prefix}: expected a table with a command"
                f" ([agents.{_quote(address)}] then command = [...]), got {_show(raw)}"
            )
        for key in raw:
            if key not in _AGENT_KEYS:
                raise _unknown_key(prefix, "key", key, sorted(_AGENT_KEYS))
        agents.append(_build_agent(address, raw, absolute.parent, _FileKeys(prefix)))
    hooks = _hooks(document.get("hooks", []), absolute.parent, shown)
    # The programs as resolved here count as part of the file: the same file applied from
    # another venv (or after one was activated) is applied again.
    digest = hashlib.sha256(data)
    for agent in agents:
        digest.update(b"\0" + (agent.executable or "").encode())
    return ProjectConfig(
        path=absolute,
        project_dir=absolute.parent,
        agents=tuple(agents),
        digest=digest.hexdigest(),
        hooks=hooks,
    )


def check_agent_address(address: str, where: str | None = None) -> str:
    """The one rule for an agent's address, in `axme.toml` and `axme agents add` alike."""
    if AGENT_ADDRESS_RE.match(address):
        return address
    shown = where if where is not None else _show(address)
    hint = ""
    if not address.startswith("agent://") and AGENT_ADDRESS_RE.match(f"agent://{address}"):
        hint = f"; did you mean {_show('agent://' + address)}?"
    raise ConfigError(f"{shown}: not an agent address (expected agent://org/env/name){hint}")


def agent_from_args(
    address: str,
    argv: Sequence[str],
    cwd: Path,
    *,
    replicas: int | None = None,
    concurrency: int | None = None,
    max_delivery_attempts: int | None = None,
    env: Mapping[str, str] | None = None,
    start_seconds: float | None = None,
    start_retries: int | None = None,
    stop_grace_seconds: float | None = None,
) -> AgentConfig:
    """The agent `axme agents add NAME -- CMD ARGS...` describes; None means the default.

    Same checks as `load_config`, but errors name the option (`--replicas: ...`).
    """
    check_agent_address(address)
    raw: dict[str, object] = {
        # Nothing after `--` means the command is missing, not an empty one.
        "command": (argv if isinstance(argv, str) else list(argv)) or None,
        "cwd": str(cwd),
        "env": env,
        "replicas": replicas,
        "concurrency": concurrency,
        "max_delivery_attempts": max_delivery_attempts,
        "start_seconds": start_seconds,
        "start_retries": start_retries,
        "stop_grace_seconds": stop_grace_seconds,
    }
    return _build_agent(address, raw, Path.cwd(), _OptionKeys())


# -- validation shared by the file and the command line ------------------------------------------


class _FileKeys:
    """Names a value by its key path in the file: `axme.toml: agents."agent://x/y".replicas`."""

    command_example = '(a list like ["python", "agents/pipeline.py"])'

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, key: str, sub: str | int | None = None) -> str:
        if isinstance(sub, int):
            return f"{self.prefix}.{key}[{sub}]"
        return f"{self.prefix}.{key}" + ("" if sub is None else f".{_quote_key(sub)}")


class _OptionKeys:
    """Names a value by the command-line option it came from: `--replicas`, `--env TOKEN`."""

    command_example = "(give it after --, like: -- python agents/pipeline.py)"

    def __call__(self, key: str, sub: str | int | None = None) -> str:
        name = "command" if key == "command" else "--" + key.replace("_", "-")
        if isinstance(sub, int):
            return f"{name}[{sub}]"
        return name if sub is None else f"{name} {sub}"


_Keys = _FileKeys | _OptionKeys


def _build_agent(address: str, raw: Mapping[str, object], base: Path, keys: _Keys) -> AgentConfig:
    # cwd and env first: the command is looked up in that directory and on that PATH.
    cwd = _directory(raw.get("cwd"), base, keys)
    env = _env(raw.get("env"), keys)
    command = _command(raw.get("command"), cwd, env, keys)
    executable = _resolve_program(command[0], cwd, env, keys)
    numbers: dict[str, Any] = {}
    for key, maximum in _INT_LIMITS.items():
        if raw.get(key) is not None:
            numbers[key] = _positive_int(raw[key], maximum, keys(key))
    for key in _SECONDS:
        if raw.get(key) is not None:
            numbers[key] = _seconds(raw[key], keys(key))
    return AgentConfig(
        address=address, command=command, cwd=str(cwd), env=env, executable=executable, **numbers
    )


def _directory(value: object, base: Path, keys: _Keys) -> Path:
    if value is None:
        return Path(os.path.abspath(base))
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{keys('cwd')}: expected a directory path, got {_show(value)}")
    path = Path(os.path.abspath(base / Path(value).expanduser()))
    if not path.is_dir():
        problem = "not a directory" if path.exists() else "no such directory"
        raise ConfigError(f"{keys('cwd')}: {problem}: {path}")
    return path


def _env(value: object, keys: _Keys) -> dict[str, str]:
    # Never show a value here, not even a wrongly typed one: it may be the secret.
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f'{keys("env")}: expected a table of strings, like {{ API_TOKEN = "..." }}'
        )
    env: dict[str, str] = {}
    for name, secret in value.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise ConfigError(f"{keys('env', str(name))}: not a valid environment variable name")
        if not isinstance(secret, str):
            raise ConfigError(f"{keys('env', name)}: expected a string")
        if "\0" in secret:
            raise ConfigError(
                f"{keys('env', name)}: contains a NUL character, which env cannot hold"
            )
        env[name] = secret
    return env


def _command(value: object, cwd: Path, env: Mapping[str, str], keys: _Keys) -> tuple[str, ...]:
    example = keys.command_example
    argv: list[object]
    if value is None:
        raise ConfigError(f"{keys('command')}: required {example}")
    if isinstance(value, str):
        import shlex

        try:
            argv = list(shlex.split(value))
        except ValueError as exc:  # "No closing quotation"
            raise ConfigError(
                f"{keys('command')}: cannot split {_show(value)} into words"
                f" ({str(exc).lower()}); write it as a list {example}"
            ) from None
    elif isinstance(value, list | tuple):
        argv = list(value)
    else:
        raise ConfigError(
            f"{keys('command')}: expected a list of strings {example}, got {_show(value)}"
        )
    if not argv:
        raise ConfigError(f"{keys('command')}: must not be empty {example}")
    words: list[str] = []
    for i, word in enumerate(argv):
        if not isinstance(word, str) or not word:
            raise ConfigError(
                f"{keys('command', i)}: expected a non-empty string, got {_show(word)}"
            )
        if "\0" in word:
            raise ConfigError(f"{keys('command', i)}: contains a NUL character")
        words.append(word)
    _resolve_program(words[0], cwd, env, keys)
    return tuple(words)


def _resolve_program(program: str, cwd: Path, env: Mapping[str, str], keys: _Keys) -> str:
    """The absolute path of the program the command runs, looked up as the user who ran
    `axme` would (their PATH, unless the agent's env sets one); `python` is the interpreter
    axme runs under, so an agent can import axme_cli whether or not a venv is activated.

    A program that is not there fails the agent at every start: say so now, while the user
    is looking.
    """
    import sys

    where = keys("command")
    if program in _PYTHON_NAMES and sys.executable and "PATH" not in env:
        return sys.executable
    if "/" in program:  # run as a path, relative to the agent's cwd (as execve and Popen do)
        target = cwd / program
        if not target.exists():
            raise ConfigError(
                f"{where}: {_show(program)} not found (no such file relative to {cwd})"
            )
        if not target.is_file():
            raise ConfigError(f"{where}: {_show(program)} is not a file ({target})")
        if not os.access(target, os.X_OK):
            raise ConfigError(
                f"{where}: {_show(program)} is not executable"
                " (chmod +x it, or put its interpreter first, like python)"
            )
        return os.path.abspath(target)
    import shutil

    # The agent's own PATH, when env sets one, is the one its command is looked up on.
    found = shutil.which(program, path=env.get("PATH"))
    if found is None:
        if (cwd / program).is_file():
            raise ConfigError(
                f"{where}: {_show(program)} not found on PATH (to run the file in {cwd},"
                f' write "./{program}")'
            )
        raise ConfigError(
            f"{where}: {_show(program)} not found (not on PATH and not a file relative to {cwd})"
        )
    return os.path.abspath(found)


def _positive_int(value: object, maximum: int | None, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:  # True is an int
        raise ConfigError(f"{where}: expected a positive integer, got {_show(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{where}: must be at most {maximum}, got {value}")
    return value


def _seconds(value: object, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
        if math.isfinite(seconds):
            return seconds
    raise ConfigError(f"{where}: expected a positive number of seconds, got {_show(value)}")


# -- notification hooks ----------------------------------------------------------------------------


class _HookKeys(_FileKeys):
    """Names a value of one `[[hooks]]` table: `axme.toml: hooks[0].command`."""

    command_example = '(a list like ["notify-send", "axme"])'


_HOOK_EXAMPLE = '[[hooks]] then command = [...] or webhook = "https://..."'


def _hooks(declared: object, project_dir: Path, shown: str) -> tuple[HookConfig, ...]:
    if not isinstance(declared, list):
        raise ConfigError(
            f"{shown}: hooks: expected an array of tables, like {_HOOK_EXAMPLE},"
            f" got {_show(declared)}"
        )
    return tuple(
        _build_hook(raw, project_dir, _HookKeys(f"{shown}: hooks[{i}]"))
        for i, raw in enumerate(declared)
    )


def _build_hook(raw: object, project_dir: Path, keys: _HookKeys) -> HookConfig:
    # Never show the secret, not even a wrongly typed one, nor a webhook URL (a token).
    if not isinstance(raw, dict):
        raise ConfigError(f"{keys.prefix}: expected a table ({_HOOK_EXAMPLE}), got {_show(raw)}")
    for key in raw:
        if key not in _HOOK_KEYS:
            raise _unknown_key(keys.prefix, "key", key, _HOOK_KEYS)
    has_command, has_webhook = "command" in raw, "webhook" in raw
    if has_command and has_webhook:
        raise ConfigError(
            f"{keys.prefix}: has both a command and a webhook; give one per [[hooks]] table"
        )
    if not has_command and not has_webhook:
        raise ConfigError(f'{keys.prefix}: needs a command = [...] or a webhook = "https://..."')
    on = _hook_events(raw.get("on"), keys)
    if has_command:
        if "secret" in raw:
            raise ConfigError(
                f"{keys('secret')}: only a webhook takes a secret (it signs the request body);"
                " a command hook has none"
            )
        command = _command(raw["command"], project_dir, {}, keys)
        return HookConfig(on=on, command=command)
    secret = raw.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise ConfigError(f"{keys('secret')}: expected a non-empty string (the HMAC key)")
    return HookConfig(on=on, webhook=_webhook(raw["webhook"], keys), secret=secret)


def _hook_events(value: object, keys: _HookKeys) -> tuple[str, ...]:
    if value is None:
        return HOOK_EVENTS
    example = f"like {_quote(HOOK_EVENTS[0])}, {_quote(HOOK_EVENTS[-1])}"
    if not isinstance(value, list):
        raise ConfigError(
            f"{keys('on')}: expected a list of events [{example}], got {_show(value)}"
        )
    if not value:
        raise ConfigError(f"{keys('on')}: must not be empty (leave it out for every event)")
    events: list[str] = []
    for i, name in enumerate(value):
        if not isinstance(name, str):
            raise ConfigError(f"{keys('on', i)}: expected an event name, got {_show(name)}")
        if name not in HOOK_EVENTS:
            raise _unknown_key(keys("on", i), "event", name, HOOK_EVENTS)
        if name not in events:
            events.append(name)
    return tuple(events)


def _webhook(value: object, keys: _HookKeys) -> str:
    from urllib.parse import urlsplit

    expected = "expected an http:// or https:// URL"
    if not isinstance(value, str):
        raise ConfigError(f"{keys('webhook')}: {expected}, got {_show(value)}")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ConfigError(f"{keys('webhook')}: {expected} without spaces or control characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise ConfigError(f"{keys('webhook')}: {expected}; this one does not parse") from None
    if parts.scheme not in ("http", "https"):
        got = f"got scheme {_show(parts.scheme)}" if parts.scheme else "got no scheme"
        raise ConfigError(f"{keys('webhook')}: {expected}, {got}")
    if not host:
        raise ConfigError(f"{keys('webhook')}: {expected} with a host, like https://host/path")
    return value


# -- how messages show things ---------------------------------------------------------------------


def _unknown_key(prefix: str, what: str, key: str, allowed: Sequence[str]) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(key, allowed, n=1) if len(allowed) > 1 else []
    hint = f"did you mean {_show(close[0])}? " if close else ""
    return ConfigError(
        f"{prefix}: unknown {what} {_show(key)} ({hint}allowed: {', '.join(allowed)})"
    )


def _display(path: Path) -> str:
    """The path as the user gave it; an absolute one under the cwd is shown relative to it."""
    path = Path(path)
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except (ValueError, OSError):
            pass
    return str(path)


def _quote(text: str) -> str:
    """A TOML basic string: one line, whatever the text holds."""
    import json

    return json.dumps(text, ensure_ascii=False)


def _quote_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _quote(key)


def _show(value: object) -> str:
    """A value as TOML would spell it, kept short and on one line; tables and arrays by kind."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"  # TOML dates and times
