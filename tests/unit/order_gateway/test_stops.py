"""Held stops: released when the last price crosses, exactly once, in holding order."""

from __future__ import annotations

from decimal import Decimal

from services.order_gateway.domain import StopBook
from shared.contracts import Side

D = Decimal


def _book() -> StopBook:
    book = StopBook()
    book.hold("1", "b110", "BTC_USDT", Side.BUY, D(110))
    book.hold("1", "b105", "BTC_USDT", Side.BUY, D(105))
    book.hold("2", "s90", "BTC_USDT", Side.SELL, D(90))
    return book


def test_on_last_price_when_buy_stop_crossed_then_released_in_holding_order() -> None:
    book = _book()
    assert book.on_last_price("BTC_USDT", D(104)) == []
    fired = book.on_last_price("BTC_USDT", D(110))
    assert [stop.client_order_id for stop in fired] == ["b110", "b105"]


def test_on_last_price_when_sell_stop_crossed_then_released() -> None:
    book = _book()
    assert [s.client_order_id for s in book.on_last_price("BTC_USDT", D(90))] == ["s90"]


def test_on_last_price_when_crossed_again_then_not_released_twice() -> None:
    book = _book()
    book.on_last_price("BTC_USDT", D(200))
    assert book.on_last_price("BTC_USDT", D(200)) == []
    assert len(book) == 1


def test_on_last_price_when_other_symbol_or_no_price_then_nothing() -> None:
    book = _book()
    assert book.on_last_price("ETH_USDT", D(200)) == []
    assert book.on_last_price("BTC_USDT", None) == []


def test_drop_when_canceled_then_never_released() -> None:
    book = _book()
    assert book.drop("1", "b110", "BTC_USDT")
    assert not book.drop("1", "b110", "BTC_USDT")
    assert [s.client_order_id for s in book.on_last_price("BTC_USDT", D(200))] == ["b105"]
