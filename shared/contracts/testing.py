"""Valid example messages, for tests in any service.

``examples(PlaceOrder)`` gives valid PlaceOrder data, from the smallest to the
fullest; `example` the first of them; `example_envelope` one wrapped in an envelope
with the right kind of key. Every registered type has examples, which the contract's
own tests check; a new message type needs its examples here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast
from uuid import UUID

from shared.contracts._base import Message
from shared.contracts._commands import CancelOrder, ClosePosition, PlaceOrder
from shared.contracts._enums import (
    BalanceSource,
    Liquidity,
    OrderStatus,
    OrderType,
    RejectSource,
    Side,
    TimeInForce,
    TradingScope,
    TradingState,
)
from shared.contracts._envelope import Envelope, new_message
from shared.contracts._events import (
    Balance,
    BalancesUpdated,
    CancelApproved,
    CancelRejected,
    Fill,
    InstrumentUpdated,
    OrderAccepted,
    OrderApproved,
    OrderCanceled,
    OrderExpired,
    OrderFailed,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PositionUpdated,
    Reservation,
    TickerUpdated,
    TradingStateChanged,
    UserProvisioned,
    UserProvisioningFailed,
    UserRegistered,
    Wallet,
)
from shared.contracts._reasons import ProvisioningFailureReason, ReasonCode, RejectReason

__all__ = ["USER_ID", "example", "example_envelope", "examples"]

M = TypeVar("M", bound=Message)

USER_ID = "42"
"""The user of `example_envelope`."""
_AT = datetime(2026, 1, 1, 12, 30, 15, 123000, tzinfo=UTC)
_D = Decimal

_PLACE_LIMIT = PlaceOrder(
    client_order_id="c-1",
    symbol="BTC_USDT",
    side=Side.BUY,
    type=OrderType.LIMIT,
    quantity=_D("0.001"),
    price=_D("65000.5"),
)
_PLACE_FULL = PlaceOrder(
    client_order_id="c-2",
    symbol="ETH_USDT",
    side=Side.SELL,
    type=OrderType.STOP_LIMIT,
    quantity=_D("1.25"),
    price=_D("3000"),
    stop_price=_D("3100"),
    time_in_force=TimeInForce.FOK,
    leverage=_D("10"),
    reduce_only=True,
)
_PLACE_MARKET = PlaceOrder(
    client_order_id="c-3",
    symbol="BTC_USDT",
    side=Side.SELL,
    type=OrderType.MARKET,
    quantity=_D("0.5"),
)
_CANCEL = CancelOrder(symbol="BTC_USDT", client_order_id="c-1")
_FILL = Fill(
    trade_id="t-9",
    price=_D("65000"),
    quantity=_D("0.0004"),
    fee=_D("0.026"),
    fee_asset="USDT",
    liquidity=Liquidity.MAKER,
    executed_at=_AT,
)
_ORDER: dict[str, Any] = {
    "client_order_id": "c-1",
    "symbol": "BTC_USDT",
    "side": Side.BUY,
    "order_type": OrderType.LIMIT,
    "quantity": _D("0.001"),
    "price": _D("65000.5"),
}
_FILLED_PART: dict[str, Any] = {
    **_ORDER,
    "order_id": "1001",
    "filled_quantity": _D("0.0004"),
    "avg_price": _D("65000"),
    "last_fill": _FILL,
}

_EXAMPLES: dict[type[Message], tuple[Message, ...]] = {
    PlaceOrder: (_PLACE_LIMIT, _PLACE_FULL, _PLACE_MARKET),
    CancelOrder: (_CANCEL, CancelOrder(symbol="BTC_USDT", order_id="1001", client_order_id="c-1")),
    ClosePosition: (
        ClosePosition(symbol="BTC_USDT"),
        ClosePosition(symbol="BTC_USDT", quantity=_D("0.25"), client_order_id="close-1"),
    ),
    OrderApproved: (
        OrderApproved(
            command=_PLACE_LIMIT, reservation=Reservation(asset="USDT", amount=_D("65.0005"))
        ),
    ),
    CancelApproved: (CancelApproved(command=_CANCEL),),
    OrderRejected: (
        OrderRejected(
            **_ORDER,
            source=RejectSource.RISK,
            reason_code=RejectReason.INSUFFICIENT_BALANCE,
            reason="free USDT 10 is less than 65.0005",
        ),
        OrderRejected(
            **_ORDER,
            source=RejectSource.RISK,
            reason_code=ReasonCode.AMOUNT_TOO_PRECISE,
            reason="quantity has too many decimals",
        ),
    ),
    OrderSubmitted: (OrderSubmitted(**_ORDER),),
    OrderAccepted: (OrderAccepted(**_ORDER, order_id="1001"),),
    OrderFilled: (
        OrderFilled(**_FILLED_PART, status=OrderStatus.PARTIALLY_FILLED),
        OrderFilled(**{**_FILLED_PART, "filled_quantity": _D("0.001")}, status=OrderStatus.FILLED),
    ),
    OrderCanceled: (OrderCanceled(**_ORDER), OrderCanceled(**_FILLED_PART)),
    OrderExpired: (OrderExpired(**_ORDER, order_id="1001"),),
    OrderFailed: (
        OrderFailed(
            **_ORDER,
            reason_code=RejectReason.NOT_ACKNOWLEDGED,
            reason="OPEX never listed the order",
        ),
    ),
    CancelRejected: (
        CancelRejected(
            symbol="BTC_USDT",
            order_id="1001",
            source=RejectSource.EXCHANGE,
            reason_code=RejectReason.ORDER_NOT_OPEN,
            reason="order 1001 is FILLED",
        ),
    ),
    PositionUpdated: (
        PositionUpdated(position_id="p-1", symbol="BTC_USDT", quantity=_D(0)),
        PositionUpdated(
            position_id="p-2",
            symbol="ETH_USDT",
            quantity=_D("-2.5"),
            avg_entry_price=_D("3000"),
            realized_pnl=_D("-12.75"),
            unrealized_pnl=_D("250"),
            mark_price=_D("2900"),
            leverage=_D("5"),
        ),
    ),
    BalancesUpdated: (
        BalancesUpdated(balances=(), source=BalanceSource.OPEX),
        BalancesUpdated(
            balances=(
                Balance(asset="USDT", free=_D("1000.5"), locked=_D("65.0005")),
                Balance(asset="BTC", free=_D("0.1")),
            ),
            source=BalanceSource.RISK,
        ),
    ),
    TradingStateChanged: (
        TradingStateChanged(
            scope=TradingScope.USER,
            state=TradingState.REDUCING,
            previous_state=TradingState.ACTIVE,
            reason="daily loss limit reached",
            changed_by="risk_engine",
        ),
        TradingStateChanged(
            scope=TradingScope.GLOBAL,
            state=TradingState.HALTED,
            reason="exchange maintenance",
            changed_by="ops:alice",
        ),
    ),
    UserRegistered: (
        UserRegistered(email="ada@example.com"),
        UserRegistered(
            email="grace.hopper+opex@example.co.uk",
            first_name="Grace",
            last_name="Hopper",
            mobile="+989121234567",
        ),
    ),
    UserProvisioned: (
        UserProvisioned(
            opex_user_id=UUID("5f0c6f7e-9d0a-4a53-8a8e-2b1f3c4d5e6f"),
            wallets=(Wallet(asset="USDT", free=_D(0)),),
        ),
    ),
    UserProvisioningFailed: (
        UserProvisioningFailed(
            reason_code=ProvisioningFailureReason.OPEX_UNAVAILABLE,
            reason="OPEX answered 503 five times",
            attempts=5,
        ),
    ),
    InstrumentUpdated: (
        InstrumentUpdated(
            symbol="BTC_USDT",
            base_asset="BTC",
            quote_asset="USDT",
            price_step=_D("0.01"),
            quantity_step=_D("0.000001"),
            min_order_value=_D("10"),
            max_order_value=_D("1000000"),
            is_available=True,
            order_types=("LIMIT", "MARKET"),
            max_leverage=_D("100"),
        ),
    ),
    TickerUpdated: (
        TickerUpdated(symbol="BTC_USDT", at=_AT),
        TickerUpdated(
            symbol="BTC_USDT",
            last_price=_D("65000"),
            bid_price=_D("64999.99"),
            ask_price=_D("65000.01"),
            volume=_D("1234.567"),
            at=_AT,
        ),
    ),
}


def examples(model: type[M]) -> tuple[M, ...]:
    """Valid ``model`` data, smallest first; `KeyError` if there is none."""
    return cast(tuple[M, ...], _EXAMPLES[model])


def example(model: type[M]) -> M:
    """The first (smallest) of `examples`."""
    return examples(model)[0]


def example_envelope(data: M, *, user_id: str = USER_ID) -> Envelope[M]:
    """``data`` in a new envelope: with ``user_id`` when it is keyed by user, without
    when it carries its own key (market data, global trading state)."""
    return new_message(data, user_id=user_id if data.routing_key() is None else None)
