"""The one module that knows the daemon's URLs.

`DaemonClient` speaks HTTP over the home's Unix socket (or any injected httpx transport, for
tests) and turns every failure into a typed `AxmeError`: transport errors become
`DaemonUnreachable`, error bodies become the error class their `code` names. Plain calls on the
socket use the standard library (`unix_http`); httpx is imported only for held streams and
injected transports, since importing it costs more than most commands take.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from axme_cli.errors import (
    AmbiguousId,
    AxmeError,
    BadInput,
    DaemonUnreachable,
    NotFound,
    TooManyStreams,
    WaitTimedOut,
    from_wire,
)

if TYPE_CHECKING:
    import httpx

    from axme_cli.unix_http import UnixHTTP

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PREFIX_RE = re.compile(r"^[0-9a-f-]{1,36}$")

#: Extra seconds a held stream may take beyond its `wait_seconds` before the read times out.
STREAM_SLACK = 15.0
#: How long `follow` waits for a daemon that went away (a restart) before it gives up.
RECONNECT_SECONDS = 30.0


def socket_accepts(path: Path) -> bool:
    """Whether something listens on `path`: a leftover socket file refuses connections."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        sock.connect(str(path))
    except OSError:
        return False
    finally:
        sock.close()
    return True


def _given(**fields: Any) -> dict[str, Any]:
    """The fields that were set: the daemon applies its own defaults to the rest."""
    return {k: v for k, v in fields.items() if v is not None}


class _Answer(Protocol):
    """What `_raise_for` reads: an `httpx.Response` or a `unix_http.Reply`."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


def _raise_for(response: _Answer) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    code = message = None
    details: Any = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code, message, details = err.get("code"), err.get("message"), err.get("details")
        elif isinstance(err, str):
            message = err
        message = message or body.get("detail")
    raise from_wire(
        response.status_code, code, str(message or response.text or response.reason_phrase), details
    )


def answer(response: _Answer) -> dict[str, Any]:
    """The JSON object of a successful response; an error response raises its typed error."""
    _raise_for(response)
    data = response.json()
    if not isinstance(data, dict):
        raise AxmeError(f"unexpected answer from the daemon: {data!r}")
    return data


class DaemonClient:
    def __init__(
        self,
        socket_path: Path,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 15.0,
        autostart: Callable[[], None] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """`autostart` is called once when nothing listens on the socket, then the request is
        retried: safe for any method, since a refused connection sent nothing."""
        self.socket_path = socket_path
        self._autostart = autostart
        self._transport = transport
        self._timeout = timeout
        self._headers = headers
        # Checked once, before the first request: a clean answer for "nothing listens", and
        # no half-open socket left behind by a failed connect inside the transport.
        self._must_check_socket = transport is None
        self._plain: UnixHTTP | None = None
        self._httpx: httpx.Client | None = None

    @property
    def _http(self) -> httpx.Client:
        """The httpx client, made on first use: held streams, injected transports."""
        if self._httpx is None:
            import httpx

            self._httpx = httpx.Client(
                # No TLS on a Unix socket: skipping the SSL context saves ~50 ms per client.
                transport=self._transport
                or httpx.HTTPTransport(uds=str(self.socket_path), verify=False),
                base_url="http://axme",
                timeout=self._timeout,
                headers=self._headers,
            )
        return self._httpx

    def close(self) -> None:
        if self._plain is not None:
            self._plain.close()
        if self._httpx is not None:
            self._httpx.close()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_daemon(self) -> bool:
        """Run the autostart hook once; True when the caller should retry."""
        if self._autostart is None:
            return False
        hook, self._autostart = self._autostart, None
        hook()
        return True

    def _ensure_listening(self) -> None:
        if not self._must_check_socket:
            return
        if not socket_accepts(self.socket_path) and not self._start_daemon():
            raise DaemonUnreachable(
                f"the axme daemon is not running (nothing listens on {self.socket_path}); "
                "start it with: axme daemon start"
            )
        self._must_check_socket = False

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        self._ensure_listening()
        attempt: Callable[[], _Answer]
        if self._transport is None:
            from axme_cli.unix_http import ConnectFailed, TransportFailed

            plain = self._plain_http()
            attempt = partial(
                plain.request, method, path, params=params, json_body=json, headers=headers
            )
            refused: type[Exception] = ConnectFailed
            broken: tuple[type[Exception], ...] = (ConnectFailed, TransportFailed)
        else:
            import httpx

            body = {} if json is None else {"json": json}
            attempt = partial(
                self._http.request, method, path, params=params, headers=headers, **body
            )
            refused, broken = httpx.ConnectError, (httpx.TransportError,)
        try:
            response = self._autostarting(attempt, refused)
        except broken as exc:
            raise DaemonUnreachable(
                f"cannot reach the axme daemon at {self.socket_path}: {exc}"
            ) from exc
        return answer(response)

    def _plain_http(self) -> UnixHTTP:
        if self._plain is None:
            from axme_cli.unix_http import UnixHTTP

            self._plain = UnixHTTP(
                str(self.socket_path), timeout=self._timeout, headers=self._headers
            )
        return self._plain

    def _autostarting(self, attempt: Callable[[], _Answer], refused: type[Exception]) -> _Answer:
        """`attempt()`, once more after starting the daemon when the connection is refused."""
        try:
            return attempt()
        except refused:
            if not self._start_daemon():
                raise
            return attempt()

    # -- daemon --------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health")

    def list_daemons(self) -> list[dict[str, Any]]:
        """The daemons registered on this daemon's store (`GET /v1/daemons`)."""
        return self._request("GET", "/v1/daemons")["daemons"]  # type: ignore[no-any-return]

    # -- intents -------------------------------------------------------------------

    def create_intent(
        self, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        if idempotency_key is not None and not idempotency_key.strip():
            # Sent as no key, it would silently make a second intent on a retry.
            raise BadInput(
                "--idempotency-key: must not be empty (leave it out to send without a key)"
            )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._request("POST", "/v1/intents", json=body, headers=headers)

    def get_intent(self, intent_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/intents/{intent_id}")["intent"]  # type: ignore[no-any-return]

    def list_intents(
        self,
        *,
        status: str | None = None,
        to_agent: str | None = None,
        intent_type: str | None = None,
        id_prefix: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        params = _given(
            status=status,
            to_agent=to_agent,
            intent_type=intent_type,
            id_prefix=id_prefix,
            limit=limit,
            cursor=cursor,
        )
        return self._request("GET", "/v1/intents", params=params)

    def list_events(self, intent_id: str, since: int = 0) -> list[dict[str, Any]]:
        data = self._request("GET", f"/v1/intents/{intent_id}/events", params={"since": since})
        return data["events"]  # type: ignore[no-any-return]

    def resolve_intent(
        self,
        intent_id: str,
        status: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
        result: Any = None,
        error: Any = None,
    ) -> dict[str, Any]:
        body = _given(status=status, reason=reason, actor=actor, result=result, error=error)
        return self._request(
            "POST",
            f"/v1/intents/{intent_id}/resolve",
            json=body,
        )

    def stream_events(
        self, intent_id: str, *, since: int = 0, wait_seconds: float = 15.0
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event name, data) pairs from one held stream, `stream.timeout` included."""
        yield from self._sse(
            f"/v1/intents/{intent_id}/events/stream",
            {"since": since, "wait_seconds": wait_seconds},
            wait_seconds,
        )

    def _sse(
        self, path: str, params: dict[str, Any], wait_seconds: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        import json

        self._ensure_listening()
        frames = self._sse_httpx if self._transport is not None else self._sse_plain
        for event, data in frames(path, params, wait_seconds + STREAM_SLACK):
            yield event, (json.loads(data) if data else {})

    def _sse_plain(
        self, path: str, params: dict[str, Any], read_timeout: float
    ) -> Iterator[tuple[str, str]]:
        from axme_cli.unix_http import ConnectFailed, Reply, TransportFailed

        try:
            for item in self._plain_http().events(path, params=params, read_timeout=read_timeout):
                if isinstance(item, Reply):
                    _raise_for(item)
                else:
                    yield item
        except (ConnectFailed, TransportFailed) as exc:
            raise DaemonUnreachable(f"lost the axme daemon at {self.socket_path}: {exc}") from exc

    def _sse_httpx(
        self, path: str, params: dict[str, Any], read_timeout: float
    ) -> Iterator[tuple[str, str]]:
        import httpx
        from httpx_sse import connect_sse

        timeout = httpx.Timeout(10.0, read=read_timeout)
        try:
            with connect_sse(self._http, "GET", path, params=params, timeout=timeout) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    _raise_for(source.response)
                for sse in source.iter_sse():
                    yield sse.event, sse.data
        except httpx.TransportError as exc:
            raise DaemonUnreachable(f"lost the axme daemon at {self.socket_path}: {exc}") from exc

    # -- workers ---------------------------------------------------------------------

    def agent_stream(
        self, address: str, *, since: int, wait_seconds: float, max_in_flight: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """This worker's deliveries (`intent.delivered`) and cancels asked of the intents it
        runs (`intent.cancel_requested`), then `stream.timeout`."""
        path = address.removeprefix("agent://")
        params = {
            "since": since,
            "wait_seconds": wait_seconds,
            "max_in_flight": max_in_flight,
            "notices": "true",
        }
        yield from self._sse(f"/v1/agents/{path}/intents/stream", params, wait_seconds)

    def record_compensation(self, intent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """What became of one compensation (`key`, `ok`, `result` or `error`, `attempts`)."""
        return self._request("POST", f"/v1/intents/{intent_id}/compensations", json=body)

    def record_step(self, intent_id: str, ordinal: int, key: str, result: Any) -> dict[str, Any]:
        body = {"ordinal": ordinal, "key": key, "result": result}
        return self._request("POST", f"/v1/intents/{intent_id}/steps", json=body)

    def list_steps(self, intent_id: str) -> list[dict[str, Any]]:
        """The intent's recorded steps, in order."""
        return list(self._request("GET", f"/v1/intents/{intent_id}/steps")["steps"])

    def record_steps(self, intent_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Several step records (`ordinal`, `key`, `result`) in one request, all or none."""
        body = {"steps": records}
        return self._request("POST", f"/v1/intents/{intent_id}/steps", json=body)

    def report(self, reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Step records and outcomes of several intents in one request (`POST /v1/reports`);
        one answer per report, in order: `ok`, or the `error` that part was refused with."""
        answers = self._request("POST", "/v1/reports", json={"reports": reports})["reports"]
        return list(answers)

    def begin_wait(
        self, intent_id: str, ordinal: int, key: str, kind: str, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        """Start a durable wait for a handler step (human, time, signal, child)."""
        body = {"ordinal": ordinal, "key": key, "kind": kind, "arguments": arguments}
        return self._request("POST", f"/v1/intents/{intent_id}/waits", json=body)

    def progress(self, intent_id: str, message: str, data: dict[str, Any]) -> dict[str, Any]:
        body = {"message": message, "data": data}
        return self._request("POST", f"/v1/intents/{intent_id}/progress", json=body)

    def resume(self, intent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", f"/v1/intents/{intent_id}/resume", json=body)

    def retry_intent(self, intent_id: str, *, actor: str | None = None) -> dict[str, Any]:
        body = _given(actor=actor)
        return self._request("POST", f"/v1/intents/{intent_id}/retry", json=body)

    def resolve_id(self, ref: str) -> str:
        """A full intent id from a full id or a unique prefix of one (as git and docker allow)."""
        ref = ref.strip().lower()
        if _UUID_RE.match(ref):
            return ref
        if not _PREFIX_RE.match(ref):
            raise BadInput(f"{ref!r} is not an intent id or a prefix of one (hex digits)")
        matches = self.list_intents(id_prefix=ref, limit=10)["intents"]
        if not matches:
            raise NotFound(f"no intent matches {ref!r}")
        if len(matches) > 1:
            listing = ", ".join(
                f"{m['intent_id']} ({m['intent_type']}, {m['status']})" for m in matches
            )
            more = " and more" if len(matches) == 10 else ""
            raise AmbiguousId(
                f"{ref!r} matches several intents: {listing}{more}; give more characters",
                details={"matches": [m["intent_id"] for m in matches]},
            )
        return matches[0]["intent_id"]  # type: ignore[no-any-return]

    def follow(
        self,
        intent_id: str,
        *,
        since: int = 0,
        timeout: float | None = None,
        reconnect_for: float = RECONNECT_SECONDS,
        on_lost: Callable[[str], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every event after `since` until a final one, across as many held streams as needed.

        When the daemon goes away (a restart, an upgrade), it waits up to `reconnect_for`
        seconds for it to come back and carries on after the last event seen: the events are
        in the store, so nothing is missed or repeated. `on_lost` is told once per outage.
        A daemon holding all the streams it allows is asked again after its `Retry-After`.
        Raises `WaitTimedOut` when `timeout` seconds pass first.
        """
        import time

        from axme_cli.protocol import FINAL_STATUSES

        deadline = None if timeout is None else time.monotonic() + timeout
        cursor = since
        lost_at: float | None = None
        if since > 0:
            current = self.get_intent(intent_id)
            if current["status"] in FINAL_STATUSES and current["last_seq"] <= since:
                return  # final, and nothing after `since`: no event will ever come
        while True:
            hold = 60.0
            if deadline is not None:
                hold = min(hold, deadline - time.monotonic())
                if hold <= 0:
                    raise WaitTimedOut(
                        f"intent {intent_id} is not final after {timeout:g}s",
                        details={"intent_id": intent_id, "seq": cursor},
                    )
            try:
                for name, data in self.stream_events(intent_id, since=cursor, wait_seconds=hold):
                    lost_at = None
                    if name == "stream.timeout":
                        break
                    cursor = max(cursor, int(data.get("seq", cursor)))
                    yield data
                    if data.get("status") in FINAL_STATUSES:
                        return
            except TooManyStreams as exc:
                pause = float(exc.details.get("retry_after", 5))
                time.sleep(pause if deadline is None else min(pause, hold))
            except DaemonUnreachable as exc:
                now = time.monotonic()
                if lost_at is None:
                    lost_at = now
                    if on_lost is not None:
                        on_lost(str(exc))
                elif now - lost_at > reconnect_for:
                    raise DaemonUnreachable(
                        f"{exc}; it did not come back within {reconnect_for:g}s",
                        details={"intent_id": intent_id, "seq": cursor},
                    ) from exc
                time.sleep(0.2)

    # -- agents ----------------------------------------------------------------------

    def list_agents(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/agents")["agents"]  # type: ignore[no-any-return]

    def get_agent(self, address: str) -> dict[str, Any]:
        path = address.removeprefix("agent://")
        return self._request("GET", f"/v1/agents/{path}")["agent"]  # type: ignore[no-any-return]

    def add_agent(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/v1/agents", json=spec)["agent"]  # type: ignore[no-any-return]

    def remove_agent(self, address: str) -> str | None:
        """Remove an agent; the axme.toml that declares it (and so keeps it), if one does."""
        answer = self._request("DELETE", f"/v1/agents/{address.removeprefix('agent://')}")
        declared_in = answer.get("declared_in")
        return str(declared_in) if declared_in else None

    def restart_agent(self, address: str) -> dict[str, Any]:
        path = address.removeprefix("agent://")
        return self._request("POST", f"/v1/agents/{path}/restart")["agent"]  # type: ignore[no-any-return]

    def apply_project(self, project: dict[str, Any]) -> bool:
        return bool(self._request("POST", "/v1/projects/apply", json=project)["changed"])

    # -- API keys ----------------------------------------------------------------------

    def create_key(self, name: str, scopes: list[str]) -> dict[str, Any]:
        """A new key for the TCP listener; the answer holds it, once (`key`)."""
        return self._request("POST", "/v1/keys", json={"name": name, "scopes": scopes})

    def list_keys(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/keys")["keys"]  # type: ignore[no-any-return]

    def revoke_key(self, name: str) -> None:
        from urllib.parse import quote

        self._request("DELETE", f"/v1/keys/{quote(name, safe='')}")

    # -- scenarios ---------------------------------------------------------------------

    def validate_scenario(self, bundle: Any) -> dict[str, Any]:
        """Every error (`errors`) and warning of a ScenarioBundle; nothing is created."""
        return self._request("POST", "/v1/scenarios/validate", json=bundle)

    def apply_scenario(self, bundle: Any, idempotency_key: str | None = None) -> dict[str, Any]:
        """Provision the bundle's agents, create its intent and start its steps, in one write."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._request("POST", "/v1/scenarios/apply", json=bundle, headers=headers)

    # -- human tasks and signals -------------------------------------------------------

    def list_tasks(
        self,
        *,
        status: str | None = "PENDING",
        intent_id: str | None = None,
        id_prefix: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Tasks in one status (the daemon's default is PENDING), nearest deadline first."""
        params = _given(status=status, intent_id=intent_id, id_prefix=id_prefix, limit=limit)
        return self._request("GET", "/v1/tasks", params=params)["tasks"]  # type: ignore[no-any-return]

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/tasks/{task_id}")["task"]  # type: ignore[no-any-return]

    def decide_task(
        self,
        task_id: str,
        outcome: str,
        *,
        actor: str | None = None,
        comment: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Decide a task once; a second decision is a `Conflict` (the first one stands)."""
        body = _given(outcome=outcome, actor=actor, comment=comment, data=data)
        return self._request("POST", f"/v1/tasks/{task_id}/decision", json=body)["task"]  # type: ignore[no-any-return]

    def send_signal(self, intent_id: str, name: str, data: Any = None) -> dict[str, Any]:
        """`delivered` when a step was waiting for it, else `kept` for the wait to come."""
        from urllib.parse import quote

        path = f"/v1/intents/{intent_id}/signals/{quote(name, safe='')}"
        return self._request("POST", path, json={"data": data})
