"""Net positions from fills: quantity, average entry, realised and unrealised P&L."""

from __future__ import annotations

from decimal import Decimal

from services.risk_engine.domain import Position
from shared.contracts import Side

D = Decimal


def position() -> Position:
    return Position("BTC_USDT", "BTC", "USDT")


def test_fill_when_flat_then_opens_at_the_fill_price() -> None:
    held = position()

    realized = held.apply_fill(Side.BUY, D(2), D(100), D(0), 1)

    assert (held.quantity, held.avg_entry, realized) == (D(2), D(100), D(0))


def test_fill_when_adding_then_average_entry_is_weighted() -> None:
    held = position()
    held.apply_fill(Side.BUY, D(1), D(100), D(0), 1)

    held.apply_fill(Side.BUY, D(3), D(120), D(0), 2)

    assert (held.quantity, held.avg_entry) == (D(4), D(115))


def test_fill_when_partly_closing_a_long_then_realises_on_the_closed_part() -> None:
    held = position()
    held.apply_fill(Side.BUY, D(4), D(100), D(0), 1)

    realized = held.apply_fill(Side.SELL, D(1), D(110), D(0), 2)

    assert (held.quantity, held.avg_entry, realized, held.realized_pnl) == (
        D(3),
        D(100),
        D(10),
        D(10),
    )


def test_fill_when_closing_a_short_at_a_higher_price_then_a_loss() -> None:
    held = position()
    held.apply_fill(Side.SELL, D(2), D(100), D(0), 1)

    realized = held.apply_fill(Side.BUY, D(2), D(105), D(0), 2)

    assert (held.quantity, held.avg_entry, realized) == (D(0), D(0), D(-10))


def test_fill_when_crossing_zero_then_the_rest_opens_at_the_fill_price() -> None:
    held = position()
    held.apply_fill(Side.BUY, D(1), D(100), D(0), 1)

    realized = held.apply_fill(Side.SELL, D(3), D(90), D(0), 2)

    assert (held.quantity, held.avg_entry, realized) == (D(-2), D(90), D(-10))


def test_fill_when_fee_paid_then_taken_off_realised_pnl() -> None:
    held = position()

    realized = held.apply_fill(Side.BUY, D(1), D(100), D("0.1"), 1)

    assert realized == D("-0.1")
    assert held.realized_pnl == D("-0.1")


def test_unrealized_when_long_then_mark_minus_entry_times_quantity() -> None:
    held = position()
    held.apply_fill(Side.BUY, D(2), D(100), D(0), 1)

    assert held.unrealized(D(103)) == D(6)
    assert held.unrealized(None) == D(0)
    assert held.total_pnl(D(99)) == D(-2)


def test_unrealized_when_short_then_gains_as_the_price_falls() -> None:
    held = position()
    held.apply_fill(Side.SELL, D(2), D(100), D(0), 1)

    assert held.unrealized(D(90)) == D(20)


def test_reduces_when_opposite_side_within_the_position_then_true() -> None:
    held = position()
    held.apply_fill(Side.BUY, D(2), D(100), D(0), 1)

    assert held.reduces(Side.SELL, D(2))
    assert not held.reduces(Side.SELL, D("2.01"))
    assert not held.reduces(Side.BUY, D(1))


def test_reduces_when_open_orders_on_that_side_then_they_count() -> None:
    held = position()
    held.apply_fill(Side.BUY, D(2), D(100), D(0), 1)
    held.add_open(Side.SELL, D("1.5"))

    assert held.reduces(Side.SELL, D("0.5"))
    assert not held.reduces(Side.SELL, D("0.6"))


def test_reduces_when_flat_then_false() -> None:
    assert not position().reduces(Side.SELL, D(1))
