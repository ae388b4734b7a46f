"""OPEX's answers (`shared.opex` models) as the domain's observations, and OPEX's pair
rules and tickers as contract messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.order_gateway.domain.observations import ExchangeStatus, ListedOrder, ListedTrade
from shared.contracts import InstrumentUpdated, Side, TickerUpdated
from shared.opex import Order, PairInfo, Ticker, Trade

__all__ = ["instrument", "listed_order", "listed_trade", "ticker"]

_ZERO = Decimal(0)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _ms(value: datetime | None, default: int = 0) -> int:
    """Epoch milliseconds, exactly (no float rounding); naive times are UTC."""
    if value is None:
        return default
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MS


def listed_order(order: Order) -> ListedOrder:
    """An order as OPEX lists it (``openOrders``, ``allOrders``, ``GET order``)."""
    return ListedOrder(
        order_id=str(order.order_id),
        symbol=order.symbol,
        side=Side.BUY if order.side.value == "BUY" else Side.SELL,
        price=order.price,
        quantity=order.orig_qty,
        executed_quantity=order.executed_qty,
        cumulative_quote=order.cummulative_quote_qty,
        status=ExchangeStatus(order.status.value),
        time_ms=_ms(order.time),
        update_time_ms=_ms(order.update_time) if order.update_time is not None else None,
    )


def listed_trade(trade: Trade) -> ListedTrade:
    """One of the user's fills (``myTrades``)."""
    return ListedTrade(
        trade_id=str(trade.id),
        order_id=str(trade.order_id),
        symbol=trade.symbol,
        price=trade.price,
        quantity=trade.qty,
        fee=trade.commission,
        fee_asset=trade.commission_asset.upper(),
        time_ms=_ms(trade.time),
        is_maker=trade.is_maker,
    )


def instrument(pair: PairInfo) -> InstrumentUpdated | None:
    """A pair's rules as InstrumentUpdated; None when OPEX gives no steps for it."""
    if pair.price_step is None or pair.quantity_step is None:
        return None
    base, _, quote = pair.symbol.partition("_")
    return InstrumentUpdated(
        symbol=pair.symbol,
        base_asset=pair.base_asset.upper() or base,
        quote_asset=pair.quote_asset.upper() or quote,
        price_step=pair.price_step,
        quantity_step=pair.quantity_step,
        min_order_value=pair.min_order,
        max_order_value=pair.max_order,
        is_available=pair.is_available,
        order_types=tuple(pair.order_types),
    )


def _price(value: Decimal) -> Decimal | None:
    return value if value > _ZERO else None


def ticker(item: Ticker, at: datetime | None = None) -> TickerUpdated:
    """OPEX's 24 h ticker as TickerUpdated (zero prices are "none yet")."""
    return TickerUpdated(
        symbol=item.symbol,
        last_price=_price(item.last_price),
        bid_price=_price(item.bid_price),
        ask_price=_price(item.ask_price),
        volume=item.volume if item.volume > _ZERO else _ZERO,
        at=at or datetime.now(UTC),
    )
