"""Notification hooks: tell people about human tasks (assigned, reminder, escalation, timeout).

A project declares hooks in its axme.toml; the engine calls the `Notifier` with each notice
after the change that caused it is committed. Every delivery runs as a background task, so a
slow or broken hook never holds a request, a timer or an intent:

- a command hook runs (argv, no shell) in the project directory with the notice as JSON on
  stdin, and is killed (with its process group) after `command_timeout` seconds;
- a webhook gets the same JSON bytes POSTed with the time of the attempt
  (`X-Axme-Timestamp`, Unix seconds), signed with HMAC-SHA256 of `timestamp.body` when it has
  a secret (`X-Axme-Signature: sha256=<hex>`): a receiver that checks the signature and the
  age of the timestamp refuses a captured delivery sent again later. It is retried with
  exponential backoff on connection errors and 5xx answers (a 4xx is not retried).

Failures are logged in the daemon log and go no further. The secret is never logged, nor a
webhook URL's path (chat webhooks keep their token there), nor a command's arguments or env.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from axme_cli import __version__
from axme_cli.project import HOOK_EVENTS, redact_url
from axme_daemon.intents import now_iso

if TYPE_CHECKING:
    # Imported where a webhook is posted: httpx loads rich and click (its CLI) on import,
    # which the daemon keeps out of its start (tests/test_architecture.py).
    import httpx

__all__ = ["HOOK_EVENTS", "Hook", "Notifier", "select_hooks", "sign"]

log = logging.getLogger(__name__)

#: Seconds between webhook attempts; one more attempt than delays (4 in all).
BACKOFF = (0.5, 1.0, 2.0)
COMMAND_TIMEOUT = 30.0
WEBHOOK_TIMEOUT = 10.0
MAX_CONCURRENT = 8
#: Deliveries waiting or running at once; beyond this, notices are dropped (and logged).
MAX_PENDING = 1000
_STDERR_TAIL = 2048


@dataclass(frozen=True, repr=False)
class Hook:
    """One validated hook of a project (`source` is its axme.toml, for log lines)."""

    on: frozenset[str]
    command: tuple[str, ...] | None = None
    cwd: str | None = None
    webhook: str | None = None
    secret: str | None = None
    source: str = ""

    def describe(self) -> str:
        """How log lines name the hook: the program, or the webhook's scheme and host."""
        if self.command is not None:
            return f"command {json.dumps(self.command[0])}"
        return f"webhook {redact_url(self.webhook or '')}"

    def __repr__(self) -> str:
        secret = ", secret='***'" if self.secret is not None else ""
        return f"Hook({self.describe()}{secret}, on={sorted(self.on)}, source={self.source!r})"


def select_hooks(
    address: str, sources: Mapping[str, str], projects: Mapping[str, Sequence[Hook]]
) -> list[Hook]:
    """The hooks for a task of `address`: those of the project that declares the agent; when
    no project does (an address nobody registered, or one added with `axme agents add`), the
    hooks of every project."""
    source = sources.get(address)
    if source is not None and source in projects:
        return list(projects[source])
    return [hook for hooks in projects.values() for hook in hooks]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Axme-Signature` value: `sha256=` and the hex HMAC-SHA256 of the
    `X-Axme-Timestamp` value, a dot and the exact body (so the time cannot be replaced)."""
    signed = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class Notifier:
    """Registered into `Engine.notices`; fires the matching hooks of each notice."""

    def __init__(
        self,
        hooks_for: Callable[[str], Sequence[Hook]],
        *,
        max_concurrent: int = MAX_CONCURRENT,
        max_pending: int = MAX_PENDING,
        command_timeout: float = COMMAND_TIMEOUT,
        webhook_timeout: float = WEBHOOK_TIMEOUT,
        backoff: Sequence[float] = BACKOFF,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` replaces the network for webhooks (tests)."""
        self._hooks_for = hooks_for
        self._transport = transport
        self._slots = asyncio.Semaphore(max_concurrent)
        self._max_pending = max_pending
        self.command_timeout = command_timeout
        self.webhook_timeout = webhook_timeout
        self.backoff = tuple(backoff)
        self._pending: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def __call__(self, notice: Mapping[str, Any]) -> None:
        """Schedule the deliveries of one notice; never blocks, never raises."""
        try:
            self._schedule(notice)
        except Exception:
            log.exception("notification hooks: could not schedule a notice")

    def _schedule(self, notice: Mapping[str, Any]) -> None:
        if self._closed:
            return
        event = str(notice.get("event", ""))
        task: Mapping[str, Any] = notice.get("task") or {}
        hooks = [h for h in self._hooks_for(str(task.get("to_agent", ""))) if event in h.on]
        if not hooks:
            return
        body = json.dumps({"event": event, "task": task, "at": now_iso()}).encode()
        what = f"{event}, task {task.get('task_id')}, intent {task.get('intent_id')}"
        env = _hook_env(event, task)
        for hook in hooks:
            if len(self._pending) >= self._max_pending:
                log.warning(
                    "notification hook %s skipped (%s): %d deliveries already pending",
                    hook.describe(),
                    what,
                    len(self._pending),
                )
                continue
            if hook.command is not None:
                job = self._run_command(hook, body, env, what)
            else:
                job = self._post(hook, event, body, what)
            delivery = asyncio.create_task(job, name=f"notify {event}")
            self._pending.add(delivery)
            delivery.add_done_callback(self._pending.discard)

    async def close(self, grace: float = 1.0) -> None:
        """Give deliveries in flight `grace` seconds, cancel the rest, close the HTTP client."""
        self._closed = True
        if self._pending:
            _, late = await asyncio.wait(set(self._pending), timeout=grace)
            for delivery in late:
                delivery.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
                log.info("notification hooks: %d deliveries canceled at shutdown", len(late))
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- command hooks -------------------------------------------------------------------

    async def _run_command(
        self, hook: Hook, body: bytes, env: Mapping[str, str], what: str
    ) -> None:
        assert hook.command is not None
        async with self._slots:
            # stderr goes to an unlinked file, not a pipe: a process the hook leaves behind
            # must not keep this delivery waiting on an open pipe.
            with tempfile.TemporaryFile() as stderr:
                code = await self._exec(hook, body, env, what, stderr)
                if code is None:
                    return
                if code == 0:
                    log.info("notification hook %s ran (%s)", hook.describe(), what)
                    return
                stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - _STDERR_TAIL))
                last = stderr.read().decode(errors="replace").strip().splitlines()
        said = f"; stderr: {last[-1][:200]}" if last else ""
        log.warning("notification hook %s exited with %d (%s)%s", hook.describe(), code, what, said)

    async def _exec(
        self, hook: Hook, body: bytes, env: Mapping[str, str], what: str, stderr: IO[bytes]
    ) -> int | None:
        """Run the command to its end; its exit code, or None when it could not run."""
        assert hook.command is not None
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AXME_")}
        try:
            proc = await asyncio.create_subprocess_exec(
                *hook.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                cwd=hook.cwd or None,
                env={**inherited, **env},
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
        except OSError as exc:
            log.warning(
                "notification hook %s could not start (%s): %s",
                hook.describe(),
                what,
                exc.strerror or type(exc).__name__,
            )
            return None
        try:
            async with asyncio.timeout(self.command_timeout):
                await _feed(proc, body)
                return await proc.wait()
        except TimeoutError:
            log.warning(
                "notification hook %s timed out after %g s and was killed (%s)",
                hook.describe(),
                self.command_timeout,
                what,
            )
            return None
        finally:
            if proc.returncode is None:  # timed out, or canceled at shutdown
                _kill(proc)
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(proc.wait())

    # -- webhooks ------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            # httpx logs each request's full URL at INFO; a webhook's path is often a token.
            logging.getLogger("httpx").setLevel(logging.WARNING)
            self._client = httpx.AsyncClient(
                timeout=self.webhook_timeout,
                follow_redirects=False,
                transport=self._transport,
                headers={"User-Agent": f"axme/{__version__}"},
            )
        return self._client

    async def _post(self, hook: Hook, event: str, body: bytes, what: str) -> None:
        import httpx

        assert hook.webhook is not None
        headers = {
            "Content-Type": "application/json",
            "X-Axme-Event": event,
            "X-Axme-Delivery": str(uuid.uuid4()),  # the same on every retry: receivers dedupe
        }
        attempts = len(self.backoff) + 1
        for attempt in range(1, attempts + 1):
            headers["X-Axme-Timestamp"] = timestamp = str(int(time.time()))  # each attempt's own
            if hook.secret is not None:
                headers["X-Axme-Signature"] = sign(hook.secret, timestamp, body)
            async with self._slots:
                try:
                    response = await self._http().post(hook.webhook, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    problem = _describe_error(exc, hook.webhook)
                    retry = isinstance(exc, httpx.TransportError)
                else:
                    if response.is_success:
                        log.info(
                            "notification hook %s answered %d (%s)",
                            hook.describe(),
                            response.status_code,
                            what,
                        )
                        return
                    problem = f"answered {response.status_code}"
                    retry = response.status_code >= 500
            if not retry:
                log.warning(
                    "notification hook %s %s, not retried (%s)", hook.describe(), problem, what
                )
                return
            if attempt == attempts:
                log.warning(
                    "notification hook %s failed after %d attempts, last: %s (%s)",
                    hook.describe(),
                    attempts,
                    problem,
                    what,
                )
                return
            await asyncio.sleep(self.backoff[attempt - 1])


def _hook_env(event: str, task: Mapping[str, Any]) -> dict[str, str]:
    """A few fields as environment variables too, for a `sh -c 'notify-send ...'` one-liner."""
    env = {
        "AXME_EVENT": event,
        "AXME_TASK_ID": str(task.get("task_id") or ""),
        "AXME_INTENT_ID": str(task.get("intent_id") or ""),
        "AXME_TASK_TITLE": str(task.get("title") or ""),
    }
    return {k: v.replace("\0", "") for k, v in env.items()}


async def _feed(proc: asyncio.subprocess.Process, body: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it need not read it
        proc.stdin.write(body)
        await proc.stdin.drain()
    proc.stdin.close()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await proc.stdin.wait_closed()


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _describe_error(exc: httpx.HTTPError, url: str) -> str:
    text = str(exc).replace(url, redact_url(url))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
