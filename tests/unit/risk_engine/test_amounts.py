"""Exact arithmetic and the rounding at the edge."""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, getcontext

import pytest

from services.risk_engine.domain.amounts import (
    EXACT,
    exact,
    is_multiple,
    to_wire,
    to_wire_ceiling,
)

D = Decimal


def test_is_multiple() -> None:
    assert is_multiple(D("0.003"), D("0.001"))
    assert not is_multiple(D("0.0035"), D("0.001"))


def test_to_wire_rounds_to_18_places() -> None:
    assert to_wire(D("1.0000000000000000005")) == D("1")
    assert to_wire(D("1.0000000000000000015")) == D("1.000000000000000002")
    assert to_wire_ceiling(D("1.0000000000000000001")) == D("1.000000000000000001")


def test_exact_when_a_result_would_round_then_inexact_not_a_guess() -> None:
    @exact
    def product(a: Decimal, b: Decimal) -> Decimal:
        assert getcontext().prec == EXACT.prec
        return a * b

    big = D("123456789012345.123456789012345678")
    assert product(big, big) == Context(prec=200).multiply(big, big)

    with pytest.raises(Inexact):
        product(D("7" * 60), D("3" * 60))  # 120 digits
