"""Market orders as marketable IOC limits inside the collar; fail closed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.order_gateway.domain import (
    BestPrices,
    PriceRefusal,
    marketable_limit_price,
    round_to_step,
)
from shared.contracts import RejectReason, Side, TickerUpdated

D = Decimal
NOW = 1_767_225_600_000
BEST = BestPrices(bid=D("99.99"), ask=D("100.01"), at_ms=NOW - 1_000)


def _price(side: Side, best: BestPrices | None = BEST, now: int = NOW) -> Decimal | PriceRefusal:
    return marketable_limit_price(
        side, best, price_step=D("0.1"), collar_pct=D("0.02"), now_ms=now, max_age_ms=10_000
    )


def test_price_when_buy_then_ask_plus_collar_rounded_up() -> None:
    assert _price(Side.BUY) == D("102.1")  # 102.0102 -> up


def test_price_when_sell_then_bid_minus_collar_rounded_down() -> None:
    assert _price(Side.SELL) == D("97.9")  # 97.9902 -> down


def test_price_when_stale_or_missing_then_refused_no_reference_price() -> None:
    stale = _price(Side.BUY, now=NOW + 10_000)
    assert isinstance(stale, PriceRefusal)
    assert stale.reason_code is RejectReason.NO_REFERENCE_PRICE
    assert isinstance(_price(Side.BUY, None), PriceRefusal)
    assert isinstance(_price(Side.BUY, BestPrices(D(1), None, NOW)), PriceRefusal)
    assert isinstance(_price(Side.SELL, BestPrices(None, D(1), NOW)), PriceRefusal)


def test_round_to_step_when_exact_multiple_then_unchanged() -> None:
    assert round_to_step(D("100.5"), D("0.5"), up=True) == D("100.5")
    assert round_to_step(D("100.5"), D("0.5"), up=False) == D("100.5")


def test_best_prices_when_from_ticker_then_epoch_ms() -> None:
    ticker = TickerUpdated(
        symbol="BTC_USDT",
        bid_price=D(1),
        ask_price=D(2),
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert BestPrices.of(ticker) == BestPrices(D(1), D(2), NOW)
