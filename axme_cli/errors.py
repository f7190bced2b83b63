"""Errors every axme client raises, with a stable wire code and a CLI exit code.

    AxmeError                      (1)  anything unexpected
    ├── BadInput                   (2)  the request is malformed; nothing was changed
    │   ├── PayloadTooLarge        (2)
    │   └── AmbiguousId            (2)  an id prefix matches several intents
    ├── Unauthorized               (1)  an unknown API key (TCP only)
    ├── Forbidden                  (1)  a known key without the authority
    │   └── AgentKilled            (1)  the agent is killed until resumed (the mesh)
    ├── NotFound                   (3)
    ├── Conflict                   (4)  e.g. resolving an intent that is already final
    ├── DaemonUnreachable          (5)
    ├── StoreUnavailable           (1)  503: the daemon runs but its store takes no writes
    ├── TooManyStreams             (1)  503: as many held streams as the daemon allows
    │   ├── StoreDamaged           (1)  the store file is damaged: `axme daemon recover`
    │   └── StoreFull              (1)  507: the disk holding AXME_HOME is full
    └── WaitTimedOut               (9)  `wait --timeout` elapsed, the intent is still running

Outcome codes (not errors: the command worked and reports how the intent ended):
0 COMPLETED, 6 FAILED, 7 CANCELED, 8 TIMED_OUT.

The docstring of each class is its default message; the daemon puts `code` on the wire and
the client maps it back, so the CLI's exit code does not depend on HTTP status guessing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from axme_cli.protocol import IntentStatus

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNREACHABLE = 5
EXIT_FAILED = 6
EXIT_CANCELED = 7
EXIT_TIMED_OUT = 8
EXIT_WAIT_TIMEOUT = 9

#: How each final status maps to the process exit code of `wait`, `send --wait` and `tail`.
STATUS_EXIT = {
    IntentStatus.COMPLETED: EXIT_OK,
    IntentStatus.FAILED: EXIT_FAILED,
    IntentStatus.CANCELED: EXIT_CANCELED,
    IntentStatus.TIMED_OUT: EXIT_TIMED_OUT,
}

EXIT_CODES_HELP = """\b
Exit codes:
  0  completed, or success      5  daemon unreachable
  1  unexpected error           6  intent FAILED
  2  bad input                  7  intent CANCELED
  3  not found                  8  intent TIMED_OUT
  4  conflict (already final)   9  --timeout elapsed while waiting"""


class AxmeError(Exception):
    """Something went wrong."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = EXIT_ERROR

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        self.message = message or (self.__doc__ or "").strip()
        self.details = details or {}
        super().__init__(self.message)


class BadInput(AxmeError):
    """The request is not valid."""

    code = "bad_request"
    http_status = 400
    exit_code = EXIT_BAD_INPUT


class ValidationFailed(BadInput):
    """The request body does not match what the endpoint expects."""

    code = "validation_error"
    http_status = 422


class PayloadTooLarge(BadInput):
    """The request body is larger than the daemon accepts."""

    code = "payload_too_large"
    http_status = 413


class AmbiguousId(BadInput):
    """That id prefix matches more than one intent."""

    code = "ambiguous_id"


class Unauthorized(AxmeError):
    """An API key is required (x-api-key header)."""

    code = "invalid_platform_api_key"  # the code the AXME SDK maps to AxmeAuthError
    http_status = 401


class Forbidden(AxmeError):
    """This key may not do that."""

    code = "forbidden"
    http_status = 403


class AgentKilled(Forbidden):
    """The agent is killed (the mesh's kill switch): no new work until it is resumed."""

    code = "agent_killed"


class NotFound(AxmeError):
    """No such intent."""

    code = "not_found"
    http_status = 404
    exit_code = EXIT_NOT_FOUND


class Conflict(AxmeError):
    """The request conflicts with the intent's current state."""

    code = "conflict"
    http_status = 409
    exit_code = EXIT_CONFLICT


class IdempotencyConflict(Conflict):
    """That Idempotency-Key was already used with a different request body."""

    code = "idempotency_conflict"


class AlreadyFinal(Conflict):
    """The intent is already final."""

    code = "already_final"


class DaemonUnreachable(AxmeError):
    """The axme daemon is not reachable."""

    code = "daemon_unreachable"
    http_status = 503
    exit_code = EXIT_UNREACHABLE


class StoreUnavailable(AxmeError):
    """The daemon's store cannot take writes now."""

    code = "store_unavailable"
    http_status = 503


class StoreDamaged(StoreUnavailable):
    """The store file is damaged; run `axme daemon recover`."""

    code = "store_damaged"


class StoreFull(StoreUnavailable):
    """The disk holding AXME_HOME is full: free space there and send again."""

    code = "store_full"
    http_status = 507


class TooManyStreams(AxmeError):
    """The daemon holds as many streams of this kind as it allows; try again shortly."""

    code = "too_many_streams"
    http_status = 503


class WaitTimedOut(AxmeError):
    """Timed out waiting for the intent to finish."""

    code = "wait_timed_out"
    http_status = 408
    exit_code = EXIT_WAIT_TIMEOUT


_BY_CODE: dict[str, type[AxmeError]] = {}


def _register(cls: type[AxmeError]) -> None:
    _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(AxmeError)

_BY_STATUS: dict[int, type[AxmeError]] = {
    400: BadInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
}


def from_wire(status: int, code: str | None, message: str, details: Any = None) -> AxmeError:
    """Rebuild the typed error a daemon answered with (by code, else by HTTP status)."""
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or AxmeError
    return cls(message, details=details if isinstance(details, dict) else None)
