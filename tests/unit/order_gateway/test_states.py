"""The transition table: every allowed and every forbidden (from, to) pair."""

from __future__ import annotations

import itertools

import pytest

from services.order_gateway.domain import (
    ALLOWED,
    LATE_FILL,
    TERMINAL,
    IllegalTransition,
    Transition,
    can_transition,
    transition,
)
from shared.contracts import OrderStatus

S = OrderStatus

EXPECTED: dict[OrderStatus, set[OrderStatus]] = {
    S.PENDING_SUBMIT: {S.SUBMITTED, S.ACCEPTED, S.REJECTED, S.FAILED, S.CANCELED},
    S.SUBMITTED: {S.ACCEPTED, S.REJECTED, S.FAILED},
    S.ACCEPTED: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.REJECTED},
    S.PARTIALLY_FILLED: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED},
    S.PENDING_CANCEL: {
        S.PENDING_CANCEL,
        S.FILLED,
        S.CANCELED,
        S.EXPIRED,
        S.ACCEPTED,
        S.PARTIALLY_FILLED,
    },
    S.CANCELED: {S.CANCELED, S.FILLED},
    S.EXPIRED: {S.EXPIRED, S.FILLED},
    S.FILLED: set(),
    S.REJECTED: set(),
    S.FAILED: set(),
}

ALL_PAIRS = list(itertools.product(OrderStatus, OrderStatus))
ALLOWED_PAIRS = [(a, b) for a, b in ALL_PAIRS if b in EXPECTED[a]]
FORBIDDEN_PAIRS = [(a, b) for a, b in ALL_PAIRS if b not in EXPECTED[a]]


def test_table_when_compared_with_the_documented_one_then_identical() -> None:
    assert {(a, b) for a, targets in EXPECTED.items() for b in targets} == ALLOWED
    assert len(ALLOWED_PAIRS) + len(FORBIDDEN_PAIRS) == len(OrderStatus) ** 2


@pytest.mark.parametrize(("from_status", "to_status"), ALLOWED_PAIRS)
def test_transition_when_allowed_then_a_transition(
    from_status: OrderStatus, to_status: OrderStatus
) -> None:
    assert can_transition(from_status, to_status)
    assert transition(from_status, to_status) == Transition(from_status, to_status)


@pytest.mark.parametrize(("from_status", "to_status"), FORBIDDEN_PAIRS)
def test_transition_when_forbidden_then_refused_without_raising(
    from_status: OrderStatus, to_status: OrderStatus
) -> None:
    assert not can_transition(from_status, to_status)
    result = transition(from_status, to_status, client_order_id="c1", cause="test")
    assert isinstance(result, IllegalTransition)
    assert (result.from_status, result.to_status) == (from_status, to_status)
    assert "c1" in str(result)


def test_terminal_when_left_then_only_by_a_late_fill() -> None:
    leaving = {(a, b) for a, b in ALLOWED if a in TERMINAL}
    assert leaving == LATE_FILL
    assert all(transition(a, b).is_late_fill for a, b in LATE_FILL)  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [S.FILLED, S.REJECTED, S.FAILED])
def test_transition_when_absorbing_then_nothing_allowed(status: OrderStatus) -> None:
    assert not any(can_transition(status, to) for to in OrderStatus)
