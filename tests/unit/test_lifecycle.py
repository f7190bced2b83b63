"""The lifecycle table: which status changes are allowed."""

from __future__ import annotations

import pytest

from axme_cli.errors import AlreadyFinal, Conflict
from axme_cli.protocol import FINAL_STATUSES, IntentStatus
from axme_daemon.intents import check_transition, request_hash

S = IntentStatus


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
@pytest.mark.parametrize("target", list(S))
def test_nothing_leaves_a_final_status(final: S, target: S) -> None:
    with pytest.raises(AlreadyFinal):
        check_transition(final, target)


@pytest.mark.parametrize("current", [s for s in S if not s.is_final])
@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
def test_any_open_status_may_end(current: S, final: S) -> None:
    check_transition(current, final)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.CREATED, S.SUBMITTED),
        (S.SUBMITTED, S.DELIVERED),
        (S.DELIVERED, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.WAITING),
        (S.WAITING, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.SUBMITTED),  # redelivery
    ],
)
def test_forward_moves(current: S, target: S) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.SUBMITTED, S.CREATED), (S.IN_PROGRESS, S.DELIVERED), (S.WAITING, S.WAITING)],
)
def test_backward_moves_conflict(current: S, target: S) -> None:
    with pytest.raises(Conflict) as info:
        check_transition(current, target)
    assert current.value in info.value.message and target.value in info.value.message


def test_request_hash_ignores_key_order_only() -> None:
    assert request_hash({"a": 1, "b": [1, 2]}) == request_hash({"b": [1, 2], "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})
