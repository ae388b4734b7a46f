"""The state's small rules: reference prices, marks, trading states."""

from __future__ import annotations

from decimal import Decimal

from services.risk_engine.domain import Account, Position, ReferencePrice, RiskState
from services.risk_engine.domain.state import reference_from_ticker, stricter
from shared.contracts import TickerUpdated, TradingState
from tests.unit.risk_engine.scenario import at

D = Decimal


def ticker(**prices: str) -> TickerUpdated:
    return TickerUpdated(
        symbol="BTC_USDT", at=at(0), **{name: D(value) for name, value in prices.items()}
    )


def test_reference_when_last_price_then_it() -> None:
    assert reference_from_ticker(ticker(last_price="100", bid_price="99")) == D(100)


def test_reference_when_no_trade_then_mid() -> None:
    assert reference_from_ticker(ticker(bid_price="99", ask_price="102")) == D("100.5")


def test_reference_when_one_side_then_it() -> None:
    assert reference_from_ticker(ticker(ask_price="102")) == D(102)


def test_reference_when_no_price_then_none() -> None:
    assert reference_from_ticker(ticker()) is None


def test_mark_when_fill_newer_than_ticker_then_the_fill_price() -> None:
    state = RiskState()
    state.references["BTC_USDT"] = ReferencePrice(D(100), 10)
    held = Position("BTC_USDT", "BTC", "USDT", last_fill_price=D(101), last_fill_at_ms=20)

    assert state.mark(held) == D(101)
    held.last_fill_at_ms = 5
    assert state.mark(held) == D(100)


def test_stricter_state_wins() -> None:
    assert stricter(TradingState.ACTIVE, TradingState.REDUCING) is TradingState.REDUCING
    assert stricter(TradingState.HALTED, TradingState.REDUCING) is TradingState.HALTED


def test_effective_trading_is_the_stricter_of_global_and_user() -> None:
    state = RiskState()
    account = Account("42")
    account.trading.state = TradingState.REDUCING

    assert state.effective_trading(account) is TradingState.REDUCING
    state.global_trading.state = TradingState.HALTED
    assert state.effective_trading(account) is TradingState.HALTED
    assert state.effective_trading(None) is TradingState.HALTED
