"""`Agent`: register handlers by intent type, then `run()` takes deliveries until stopped.

Run under the daemon's supervisor (declared in axme.toml or with `axme agents add`), the
process finds its socket, worker id and concurrency in its environment. A handler's return
value completes the intent; an exception fails it, or has it delivered again when it is a
`RetryableError` (or listed in `retry_on`).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axme_cli.agent import saga
from axme_cli.agent.context import (
    Context,
    IntentCanceled,
    ReplayMismatch,
    RetryableError,
    StepResultNotJSON,
    Suspended,
)
from axme_cli.agent.outbox import Outbox
from axme_cli.client import DaemonClient
from axme_cli.errors import AgentKilled, AxmeError, Conflict, DaemonUnreachable, TooManyStreams
from axme_cli.paths import home_paths
from axme_cli.protocol import AGENT_ADDRESS_RE

log = logging.getLogger("axme.agent")

#: Longest a thread woken by its socket waits for the interpreter lock (Python: 5 ms).
SWITCH_INTERVAL = 0.0005
#: How long one agent stream is held before it reconnects.
STREAM_HOLD_SECONDS = 30.0
#: How long a killed agent waits before it asks for its stream again.
KILLED_PAUSE = 2.0


@dataclass(frozen=True)
class _Handler:
    fn: Callable[..., Any]
    retry_on: tuple[type[BaseException], ...]


def _error(exc: BaseException) -> dict[str, Any]:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {"type": type(exc).__name__, "message": str(exc), "traceback": "".join(lines[-12:])}


class Agent:
    """A named handler of intents, e.g. `Agent("agent://myorg/production/data-pipeline")`."""

    def __init__(self, address: str, *, concurrency: int | None = None) -> None:
        if not AGENT_ADDRESS_RE.match(address):
            raise ValueError(f"not an agent address: {address!r} (expected agent://org/env/name)")
        self.address = address
        self.concurrency = concurrency
        self.handlers: dict[str, _Handler] = {}
        self._local = threading.local()
        self._stopping = threading.Event()
        self._outbox: Outbox | None = None
        #: The contexts of the handlers running now, by intent: a cancel notice finds its own.
        self._running: dict[str, Context] = {}

    def handler(
        self, intent_type: str, *, retry_on: tuple[type[BaseException], ...] = ()
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorate `fn(ctx)` (or `async def fn(ctx)`) as the handler of `intent_type`."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            if intent_type in self.handlers:
                raise ValueError(f"{intent_type!r} already has a handler")
            self.handlers[intent_type] = _Handler(fn, retry_on)
            return fn

        return register

    # -- running ---------------------------------------------------------------------

    def _settings(self) -> tuple[str, int, bool]:
        worker_id = os.environ.get("AXME_WORKER_ID") or f"sdk-{uuid.uuid4().hex[:16]}"
        supervised = "AXME_WORKER_ID" in os.environ
        concurrency = self.concurrency or int(os.environ.get("AXME_CONCURRENCY") or 1)
        return worker_id, max(1, concurrency), supervised

    def _client(self, worker_id: str) -> DaemonClient:
        """One client per thread: handlers run side by side."""
        client: DaemonClient | None = getattr(self._local, "client", None)
        if client is None:
            socket = os.environ.get("AXME_SOCKET") or str(home_paths().socket)
            client = DaemonClient(Path(socket), headers={"X-Axme-Worker": worker_id})
            self._local.client = client
        return client

    def stop(self) -> None:
        """Ask `run()` to return after its current stream (for tests and embedding)."""
        self._stopping.set()

    def run(self) -> None:
        """Take deliveries until stopped; under the supervisor, until the daemon goes away."""
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
        worker_id, concurrency, supervised = self._settings()
        # The stream reader, the report sender and the handlers are threads that mostly
        # wait on sockets; with Python's default 5 ms, one woken by its socket often waited
        # that long for a busy handler to let go of the interpreter lock.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        log.info(
            "%s ready (%d at a time; handles %s)",
            self.address,
            concurrency,
            ", ".join(sorted(self.handlers)) or "nothing",
        )
        self._outbox = Outbox(lambda: self._client(worker_id))
        cursor = 0
        failures = 0
        # Deliveries in hand, by delivery cursor: a redelivery of the same intent has a new one
        # and must run even while the previous attempt's thread is still finishing.
        running: set[int] = set()
        lock = threading.Lock()
        with ThreadPoolExecutor(concurrency, thread_name_prefix="axme-handler") as pool:
            while not self._stopping.is_set():
                try:
                    stream = self._client(worker_id).agent_stream(
                        self.address,
                        since=cursor,
                        wait_seconds=STREAM_HOLD_SECONDS,
                        max_in_flight=concurrency,
                    )
                    for name, data in stream:
                        failures = 0
                        if name == "intent.cancel_requested":
                            self._cancel(str(data.get("intent_id")))
                        if name != "intent.delivered":
                            continue
                        seq = int(data.get("seq") or 0)
                        cursor = max(cursor, seq)
                        with lock:
                            if seq in running:  # offered again after a reconnect
                                continue
                            running.add(seq)
                        pool.submit(self._run_one, worker_id, data, running, lock)
                except AgentKilled as exc:
                    # Killed through the mesh: no work until it is resumed; keep asking.
                    log.warning("%s; asking again in %.0fs", exc.message, KILLED_PAUSE)
                    time.sleep(KILLED_PAUSE)
                except TooManyStreams as exc:
                    # The daemon holds as many agent streams as it allows: ask again later.
                    pause = float(exc.details.get("retry_after", 5))
                    log.warning("%s; asking again in %.0fs", exc.message, pause)
                    time.sleep(pause)
                except DaemonUnreachable as exc:
                    if supervised:
                        # The daemon that started us is gone; the next one starts a new us.
                        log.error("lost the daemon (%s); exiting", exc)
                        sys.exit(1)
                    failures += 1
                    delay = min(30.0, 0.5 * 2**failures)
                    log.warning("cannot reach the daemon (%s); retrying in %.0fs", exc, delay)
                    time.sleep(delay)

    def _cancel(self, intent_id: str) -> None:
        """A cancel was asked of an intent this process runs: its next ctx call raises."""
        ctx = self._running.get(intent_id)
        if ctx is not None:
            log.info("%s: cancel asked; the handler stops at its next ctx call", intent_id)
            ctx.cancel_reason = "canceled while running"

    def _run_one(
        self, worker_id: str, delivery: dict[str, Any], running: set[int], lock: threading.Lock
    ) -> None:
        intent_id = delivery["intent_id"]
        client = self._client(worker_id)
        try:
            self._handle(client, delivery)
        except Conflict as exc:
            log.warning("%s: %s", intent_id, exc.message)  # lease lost: another worker has it
        except DaemonUnreachable as exc:
            # Its lease ends with the daemon (or after the grace): it is delivered again.
            log.error("%s: could not report to the daemon: %s", intent_id, exc.message)
        except AxmeError as exc:
            # The daemon refused a report: the handler cannot go on, and the intent must not
            # stay IN_PROGRESS with nobody working on it. It fails, saying why.
            log.error("%s: the daemon refused a report: %s", intent_id, exc.message)
            self._give_up(client, intent_id, "ReportRefused", exc.message)
        except BaseException as exc:  # e.g. SystemExit raised in a handler thread
            log.exception("%s: unexpected error", intent_id)
            self._give_up(client, intent_id, type(exc).__name__, str(exc) or repr(exc))
        finally:
            if self._outbox is not None:
                self._outbox.discard(intent_id)
            with lock:
                running.discard(int(delivery.get("seq") or 0))

    def _give_up(self, client: DaemonClient, intent_id: str, kind: str, message: str) -> None:
        """Fail an intent whose handler could not finish normally (its unsent records go)."""
        if self._outbox is not None:
            self._outbox.discard(intent_id)
        error = {"type": kind, "message": message}
        try:
            client.resume(intent_id, {"action": "fail", "error": error, "retryable": False})
        except AxmeError as exc:
            log.error("%s: could not report the failure either: %s", intent_id, exc.message)

    def _handle(self, client: DaemonClient, delivery: dict[str, Any]) -> None:
        intent_id = delivery["intent_id"]
        intent_type = delivery["intent"]["intent_type"]
        handler = self.handlers.get(intent_type)
        if handler is None:
            known = ", ".join(sorted(self.handlers)) or "nothing"
            message = f"{self.address} has no handler for {intent_type!r} (it handles: {known})"
            log.error("%s: %s", intent_id, message)
            error = {"type": "UnknownIntentType", "message": message}
            client.resume(intent_id, {"action": "fail", "error": error, "retryable": False})
            return
        outbox = self._outbox
        ctx = self._context(client, delivery, handler)
        if ctx.compensating:
            self._compensate(client, ctx, handler, delivery)
            return
        if outbox is not None:
            outbox.start(intent_id)
        self._running[intent_id] = ctx
        try:
            if inspect.iscoroutinefunction(handler.fn):
                import asyncio

                result = asyncio.run(handler.fn(ctx))
            else:
                result = handler.fn(ctx)
            try:
                json.dumps(result)
            except (TypeError, ValueError) as exc:
                raise StepResultNotJSON(
                    f"the handler returned a {type(result).__name__}, which cannot be recorded "
                    f"as JSON ({exc}); return dicts, lists, strings, numbers, booleans or None"
                ) from None
        except Suspended as waiting:
            log.info("%s: %s; the worker lets it go until then", intent_id, waiting)
            return
        except IntentCanceled:
            self._stopped(client, ctx)
            return
        except AxmeError:
            raise  # the daemon refused a report (e.g. a lost lease): nothing more to say
        except Exception as exc:
            retryable = isinstance(exc, (RetryableError, *handler.retry_on)) and not isinstance(
                exc, ReplayMismatch | StepResultNotJSON
            )
            retryable = retryable and ctx.cancel_reason is None
            log.error(
                "%s failed (%s): %s",
                intent_id,
                "will be delivered again" if retryable else "not retried",
                "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip(),
            )
            # The finished steps go with the failure: a redelivery replays them.
            self._finish(
                client, intent_id, {"action": "fail", "error": _error(exc), "retryable": retryable}
            )
            return
        finally:
            self._running.pop(intent_id, None)
        if ctx.stopped:  # it caught IntentCanceled, cleaned up and returned: still canceled
            self._stopped(client, ctx)
            return
        self._finish(client, intent_id, {"action": "complete", "result": result})

    def _stopped(self, client: DaemonClient, ctx: Context) -> None:
        """The handler stopped for a cancel: the daemon ends the delivery, undoes its steps
        and cancels the intent (whatever this failure says)."""
        log.info("%s: stopped by a cancel; the daemon undoes its steps", ctx.intent_id)
        error = {"type": "IntentCanceled", "message": ctx.cancel_reason or "canceled"}
        self._finish(client, ctx.intent_id, {"action": "fail", "error": error, "retryable": False})

    def _context(
        self, client: DaemonClient, delivery: dict[str, Any], handler: _Handler
    ) -> Context:
        if inspect.iscoroutinefunction(handler.fn):
            from axme_cli.agent.async_context import AsyncContext

            return AsyncContext(client, delivery, self._outbox)
        return Context(client, delivery, self._outbox)

    def _compensate(
        self, client: DaemonClient, ctx: Context, handler: _Handler, delivery: dict[str, Any]
    ) -> None:
        """A compensation delivery: replay the handler to find its undos, then run those
        not recorded yet, last step first (`saga.py` says why and how)."""
        log.info("%s: undoing its steps", ctx.intent_id)
        saga.replay(handler.fn, ctx)
        saga.compensate(client, ctx, list(delivery.get("steps") or []))

    def _finish(self, client: DaemonClient, intent_id: str, outcome: dict[str, Any]) -> None:
        if self._outbox is None:
            client.resume(intent_id, outcome)
        else:
            self._outbox.finish(intent_id, outcome)  # with the unsent step records
