"""Commands on ``orders.commands``: what upstream apps ask for (ARCHITECTURE.md, Messages)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import StrictBool, model_validator

from shared.contracts._base import Command
from shared.contracts._enums import OrderType, Side, TimeInForce
from shared.contracts._errors import refusal
from shared.contracts._reasons import ReasonCode
from shared.contracts._registry import registry
from shared.contracts._symbols import Symbol
from shared.contracts._topics import Topic
from shared.contracts._types import ClientOrderId, ExternalId, Leverage, Price, Quantity

__all__ = ["CancelOrder", "ClosePosition", "PlaceOrder"]


@registry.register
class PlaceOrder(Command):
    """Place an order.

    ``price`` is required for limit and stop-limit orders (and allowed, as a hint, on
    the others); ``stop_price`` is required for stop and stop-limit orders and refused
    on the others. ``time_in_force`` defaults to IOC for market orders and GTC for the
    rest; a market order that says GTC is refused (OPEX's engine would refuse it).
    """

    TYPE: ClassVar[str] = "PlaceOrder"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.ORDERS_COMMANDS

    client_order_id: ClientOrderId
    symbol: Symbol
    side: Side
    type: OrderType
    quantity: Quantity
    price: Price | None = None
    stop_price: Price | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    leverage: Leverage = Decimal(1)
    reduce_only: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _default_time_in_force(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("time_in_force") is None:
            order_type = data.get("type")
            market = isinstance(order_type, str) and order_type.lower() == OrderType.MARKET
            data = {**data, "time_in_force": TimeInForce.IOC if market else TimeInForce.GTC}
        return data

    @model_validator(mode="after")
    def _fields_for_type(self) -> PlaceOrder:
        order_type = self.type
        if self.price is None and order_type.needs_price:
            raise refusal(
                ReasonCode.MISSING_FIELD, f"a {order_type} order needs a price", field="price"
            )
        if self.stop_price is None and order_type.needs_stop_price:
            raise refusal(
                ReasonCode.MISSING_FIELD,
                f"a {order_type} order needs a stop_price",
                field="stop_price",
            )
        if self.stop_price is not None and not order_type.needs_stop_price:
            raise refusal(
                ReasonCode.FIELD_NOT_ALLOWED,
                f"a {order_type} order takes no stop_price",
                field="stop_price",
            )
        if order_type is OrderType.MARKET and self.time_in_force is TimeInForce.GTC:
            raise refusal(
                ReasonCode.INVALID_FIELD,
                "a market order cannot be GTC; use IOC or FOK",
                field="time_in_force",
            )
        return self


@registry.register
class CancelOrder(Command):
    """Cancel an order, named by ``client_order_id`` or OPEX's ``order_id`` (or both)."""

    TYPE: ClassVar[str] = "CancelOrder"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.ORDERS_COMMANDS

    symbol: Symbol
    client_order_id: ClientOrderId | None = None
    order_id: ExternalId | None = None

    @model_validator(mode="after")
    def _names_an_order(self) -> CancelOrder:
        if self.client_order_id is None and self.order_id is None:
            raise refusal(
                ReasonCode.MISSING_FIELD,
                "a cancel needs a client_order_id or an order_id",
                field="client_order_id",
            )
        return self


@registry.register
class ClosePosition(Command):
    """Close a position, all of it or ``quantity`` of it, with a reduce-only market order
    (whose ``client_order_id`` the risk engine chooses when none is given)."""

    TYPE: ClassVar[str] = "ClosePosition"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.ORDERS_COMMANDS

    symbol: Symbol
    quantity: Quantity | None = None
    client_order_id: ClientOrderId | None = None
