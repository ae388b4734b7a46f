"""Builders shared by the order gateway's unit tests."""

from __future__ import annotations

from decimal import Decimal

from services.order_gateway.domain import (
    ExchangeStatus,
    GatewayOrder,
    ListedOrder,
    ListedTrade,
)
from shared.contracts import (
    OrderApproved,
    OrderType,
    PlaceOrder,
    Reservation,
    Side,
    TimeInForce,
)

D = Decimal
USER = "42"
T0 = 1_767_225_600_000
SYMBOL = "BTC_USDT"


def approved(
    client_order_id: str = "c1",
    *,
    side: Side = Side.BUY,
    order_type: OrderType = OrderType.LIMIT,
    quantity: str = "1",
    price: str | None = "100",
    stop_price: str | None = None,
) -> OrderApproved:
    command = PlaceOrder(
        client_order_id=client_order_id,
        symbol=SYMBOL,
        side=side,
        type=order_type,
        quantity=D(quantity),
        price=D(price) if price is not None else None,
        stop_price=D(stop_price) if stop_price is not None else None,
    )
    return OrderApproved(command=command, reservation=Reservation(asset="USDT", amount=D(100)))


def new_order(client_order_id: str = "c1", **kwargs: object) -> GatewayOrder:
    return GatewayOrder.from_approved(USER, approved(client_order_id, **kwargs), T0)  # type: ignore[arg-type]


def sent_order(client_order_id: str = "c1", *, at: int = T0, quantity: str = "1") -> GatewayOrder:
    order = new_order(client_order_id, quantity=quantity)
    assert order.price is not None
    order.begin_submit(order.price, TimeInForce.GTC, at)
    order.on_submit_sent()
    return order


def listed(
    order_id: str = "9001",
    *,
    price: str = "100",
    quantity: str = "1",
    side: Side = Side.BUY,
    symbol: str = SYMBOL,
    status: ExchangeStatus = ExchangeStatus.NEW,
    executed: str = "0",
    time_ms: int = T0 + 10,
) -> ListedOrder:
    return ListedOrder(
        order_id=order_id,
        symbol=symbol,
        side=side,
        price=D(price),
        quantity=D(quantity),
        executed_quantity=D(executed),
        status=status,
        time_ms=time_ms,
    )


def accepted_order(client_order_id: str = "c1", *, quantity: str = "1") -> GatewayOrder:
    order = sent_order(client_order_id, quantity=quantity)
    order.on_listed(listed(quantity=quantity))
    return order


def trade(
    trade_id: str,
    quantity: str,
    price: str = "100",
    *,
    order_id: str = "9001",
    fee: str = "0.001",
    fee_asset: str = "BTC",
    maker: bool = False,
) -> ListedTrade:
    return ListedTrade(
        trade_id=trade_id,
        order_id=order_id,
        symbol=SYMBOL,
        price=D(price),
        quantity=D(quantity),
        fee=D(fee),
        fee_asset=fee_asset,
        time_ms=T0 + 100,
        is_maker=maker,
    )
