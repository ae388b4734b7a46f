"""Exposure, equity and the day's P&L of a book (one quote asset)."""

from __future__ import annotations

from decimal import Decimal

from services.risk_engine.domain import Account, Position, ReferencePrice, RiskState
from services.risk_engine.domain.metrics import (
    book_equity,
    book_exposure_and_equity,
    day_pnl,
    loss_breached,
)
from shared.contracts import Side

D = Decimal


def world() -> tuple[RiskState, Account]:
    state = RiskState()
    state.pairs[("BTC", "USDT")] = "BTC_USDT"
    state.pairs[("ETH", "USDT")] = "ETH_USDT"
    state.references["BTC_USDT"] = ReferencePrice(D(100), 0)
    state.references["ETH_USDT"] = ReferencePrice(D(10), 0)
    account = Account("42", totals={"USDT": D(1000), "BTC": D(2), "EUR": D(5)})
    return state, account


def test_equity_is_balances_valued_in_the_quote() -> None:
    state, account = world()

    assert book_equity(state, account, "USDT") == D(1200)  # EUR has no USDT pair: 0


def test_exposure_when_flat_then_the_order_alone() -> None:
    state, account = world()

    exposure, equity = book_exposure_and_equity(
        state, account, "USDT", symbol="BTC_USDT", side=Side.BUY, quantity=D(3), price=D(100)
    )

    assert (exposure, equity) == (D(300), D(1200))


def test_exposure_when_positions_and_open_orders_then_worst_case_per_symbol() -> None:
    state, account = world()
    account.positions["BTC_USDT"] = Position(
        "BTC_USDT", "BTC", "USDT", quantity=D(1), open_buy=D(1), open_sell=D(4)
    )
    account.positions["ETH_USDT"] = Position("ETH_USDT", "ETH", "USDT", quantity=D(-5))
    account.positions["BTC_EUR"] = Position("BTC_EUR", "BTC", "EUR", quantity=D(100))

    exposure, _ = book_exposure_and_equity(
        state, account, "USDT", symbol="BTC_USDT", side=Side.SELL, quantity=D(1), price=D(100)
    )

    # BTC: max(|1 + 1|, |1 - 5|) = 4 at 100; ETH: 5 at 10; the EUR book is apart
    assert exposure == D(450)


def test_day_pnl_is_the_change_since_the_day_anchor() -> None:
    state, account = world()
    held = Position("BTC_USDT", "BTC", "USDT", quantity=D(2), avg_entry=D(90))
    held.realized_pnl = D(5)
    held.day_anchor = D(15)
    account.positions["BTC_USDT"] = held

    assert day_pnl(state, account, "USDT") == D(10)  # 5 + 2 x (100 - 90) - 15
    assert day_pnl(state, account, "EUR") == D(0)


def test_loss_breached_when_loss_reaches_the_limit() -> None:
    assert loss_breached(D(-10), D(10))
    assert not loss_breached(D("-9.99"), D(10))
    assert not loss_breached(D(0), D(0))
    assert loss_breached(D("-0.01"), D(0))
