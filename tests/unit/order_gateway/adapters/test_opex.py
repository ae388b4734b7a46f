"""The OPEX adapter: `shared.opex` models as the domain's observations (`ListedOrder`,
`ListedTrade`) and as contract messages (`InstrumentUpdated`, `TickerUpdated`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.order_gateway.adapters.opex import instrument, listed_order, listed_trade, ticker
from services.order_gateway.domain import ExchangeStatus
from shared.contracts import InstrumentUpdated, Liquidity, Side
from shared.opex import Order, OrderStatus, PairInfo, Ticker, Trade

D = Decimal
MS = 1_767_323_045_678  # 2026-01-02T03:04:05.678Z


def _order(**changes: Any) -> Order:
    fields: dict[str, Any] = {
        "symbol": "BTC_USDT",
        "orderId": 42,
        "price": "30000.123456789012345678",
        "origQty": "0.5",
        "executedQty": "0.2",
        "cummulativeQuoteQty": "6000.02",
        "status": "PARTIALLY_FILLED",
        "timeInForce": "GTC",
        "type": "LIMIT",
        "side": "SELL",
        "time": MS,
        "updateTime": MS + 1_000,
        **changes,
    }
    return Order.model_validate(fields)


def _trade(*, drop: tuple[str, ...] = (), **changes: Any) -> Trade:
    fields: dict[str, Any] = {
        "symbol": "BTC_USDT",
        "id": 9,
        "orderId": 42,
        "price": "30000",
        "qty": "0.2",
        "quoteQty": "6000",
        "commission": "0.0002",
        "commissionAsset": "btc",
        "time": MS,
        "isBuyer": True,
        "isMaker": False,
        **changes,
    }
    return Trade.model_validate({k: v for k, v in fields.items() if k not in drop})


def _pair(**changes: Any) -> PairInfo:
    fields: dict[str, Any] = {
        "pair": "BTC_USDT",
        "baseAsset": "btc",
        "quoteAsset": "usdt",
        "isAvailable": True,
        "minOrder": "10",
        "maxOrder": "1000000",
        "orderTypes": "LIMIT_ORDER,MARKET_ORDER",
        "priceStep": "0.01",
        "quantityStep": "0.000001",
        **changes,
    }
    return PairInfo.model_validate(fields)


# ------------------------------------------------------------------------- orders


def test_listed_order_when_read_then_ids_as_strings_amounts_and_ms_times() -> None:
    listed = listed_order(_order())
    assert listed.order_id == "42"
    assert listed.symbol == "BTC_USDT"
    assert listed.side is Side.SELL
    assert listed.price == D("30000.123456789012345678")
    assert listed.quantity == D("0.5")
    assert listed.executed_quantity == D("0.2")
    assert listed.cumulative_quote == D("6000.02")
    assert listed.status is ExchangeStatus.PARTIALLY_FILLED
    assert listed.time_ms == MS
    assert listed.update_time_ms == MS + 1_000


def test_listed_order_when_buy_then_contract_side_buy() -> None:
    assert listed_order(_order(side="BUY")).side is Side.BUY


@pytest.mark.parametrize("status", list(OrderStatus))
def test_listed_order_when_any_opex_status_then_same_exchange_status(status: OrderStatus) -> None:
    listed = listed_order(_order(status=status.value))
    assert listed.status is ExchangeStatus(status.value)
    assert listed.status.is_open == status.is_open


def test_listed_order_when_times_missing_then_zero_and_no_update_time() -> None:
    listed = listed_order(_order(time=None, updateTime=None))
    assert listed.time_ms == 0
    assert listed.update_time_ms is None


def test_listed_order_when_iso_times_then_epoch_ms() -> None:
    listed = listed_order(
        _order(time="2026-01-02T03:04:05.678+00:00", updateTime="2026-01-02T03:04:06.678Z")
    )
    assert listed.time_ms == MS
    assert listed.update_time_ms == MS + 1_000


@given(ms=st.integers(min_value=1_672_531_200_000, max_value=1_893_456_000_000))
def test_listed_order_when_epoch_ms_of_these_years_then_the_same_ms(ms: int) -> None:
    """2023 to 2030: OPEX's times now and for a while."""
    listed = listed_order(_order(time=ms, updateTime=str(ms)))
    assert listed.time_ms == ms
    assert listed.update_time_ms == ms
    trade = listed_trade(_trade(time=ms))
    assert trade.time_ms == ms


@example(ms=4_015)
@example(ms=1_079_000_205_212)
@given(ms=st.integers(min_value=0, max_value=4_102_444_800_000))  # up to 2100
def test_listed_order_when_any_epoch_ms_then_the_same_ms(ms: int) -> None:
    assert listed_order(_order(time=ms)).time_ms == ms
    assert listed_trade(_trade(time=ms)).time_ms == ms


# ------------------------------------------------------------------------- trades


def test_listed_trade_when_read_then_ids_as_strings_and_fee_asset_upper_cased() -> None:
    listed = listed_trade(_trade())
    assert listed.trade_id == "9"
    assert listed.order_id == "42"
    assert listed.symbol == "BTC_USDT"
    assert listed.price == D(30000)
    assert listed.quantity == D("0.2")
    assert listed.fee == D("0.0002")
    assert listed.fee_asset == "BTC"
    assert listed.time_ms == MS
    assert not listed.is_maker
    assert listed.liquidity is Liquidity.TAKER


def test_listed_trade_when_maker_then_maker_liquidity() -> None:
    listed = listed_trade(
        _trade(isMaker=True, commissionAsset="Usdt", time="2026-01-02T03:04:05.678")
    )
    assert listed.liquidity is Liquidity.MAKER
    assert listed.fee_asset == "USDT"
    assert listed.time_ms == MS  # a time without zone is UTC


def test_listed_trade_when_no_commission_then_zero_fee_and_no_asset() -> None:
    listed = listed_trade(_trade(drop=("commission", "commissionAsset")))
    assert listed.fee == D(0)
    assert listed.fee_asset == ""  # the domain then books the fee in the received asset


# -------------------------------------------------------------------- instruments


def test_instrument_when_steps_known_then_instrument_updated() -> None:
    message = instrument(_pair())
    assert isinstance(message, InstrumentUpdated)
    assert message.symbol == "BTC_USDT"
    assert message.base_asset == "BTC"
    assert message.quote_asset == "USDT"
    assert message.price_step == D("0.01")
    assert message.quantity_step == D("0.000001")
    assert message.min_order_value == D(10)
    assert message.max_order_value == D(1_000_000)
    assert message.is_available is True
    assert message.order_types == ("LIMIT", "MARKET")


def test_instrument_when_assets_not_given_then_taken_from_the_symbol() -> None:
    message = instrument(_pair(baseAsset="", quoteAsset="", isAvailable=False))
    assert message is not None
    assert (message.base_asset, message.quote_asset) == ("BTC", "USDT")
    assert message.is_available is False


@pytest.mark.parametrize(
    "missing",
    [{"priceStep": None}, {"quantityStep": None}, {"priceStep": None, "quantityStep": None}],
)
def test_instrument_when_a_step_is_missing_then_none(missing: dict[str, Any]) -> None:
    assert instrument(_pair(**missing)) is None


# ------------------------------------------------------------------------ tickers


def test_ticker_when_prices_positive_then_kept() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    item = Ticker.model_validate(
        {
            "symbol": "BTC_USDT",
            "lastPrice": "30000.5",
            "bidPrice": "30000",
            "askPrice": "30001",
            "volume": "12.5",
        }
    )
    message = ticker(item, at)
    assert message.symbol == "BTC_USDT"
    assert message.last_price == D("30000.5")
    assert message.bid_price == D(30000)
    assert message.ask_price == D(30001)
    assert message.volume == D("12.5")
    assert message.at == at


def test_ticker_when_prices_zero_then_none() -> None:
    item = Ticker.model_validate(
        {
            "symbol": "ETH_USDT",
            "lastPrice": "0",
            "bidPrice": "0.000",
            "askPrice": "0",
            "volume": "0",
        }
    )
    message = ticker(item)
    assert message.last_price is None
    assert message.bid_price is None
    assert message.ask_price is None
    assert message.volume == D(0)
    assert message.at.tzinfo is not None
    assert abs(datetime.now(UTC) - message.at) < timedelta(minutes=1)


def test_ticker_when_one_side_empty_then_only_that_side_none() -> None:
    item = Ticker.model_validate(
        {"symbol": "BTC_USDT", "lastPrice": "30000", "bidPrice": "29999", "askPrice": "0"}
    )
    message = ticker(item)
    assert message.bid_price == D(29999)
    assert message.ask_price is None
    assert message.last_price == D(30000)
