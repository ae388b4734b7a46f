"""Events: what happened, in the past tense (ARCHITECTURE.md, Topics and Messages).

=====================  =======================================================
topic                  events
=====================  =======================================================
orders.approved        OrderApproved, CancelApproved
orders.events          OrderRejected, OrderSubmitted, OrderAccepted, OrderFilled,
                       OrderCanceled, OrderExpired, OrderFailed, CancelRejected
positions.events       PositionUpdated
accounts.events        BalancesUpdated, TradingStateChanged
users.events           UserRegistered, UserProvisioned, UserProvisioningFailed
market.instruments     InstrumentUpdated (keyed by symbol)
market.tickers         TickerUpdated (keyed by symbol)
=====================  =======================================================

Order events carry the order's cumulative state, so a consumer that missed one
converges on the next.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.contracts._base import Event, MarketEvent
from shared.contracts._commands import CancelOrder, PlaceOrder
from shared.contracts._enums import (
    BalanceSource,
    Liquidity,
    OrderStatus,
    OrderType,
    RejectSource,
    Side,
    TradingScope,
    TradingState,
)
from shared.contracts._errors import refusal
from shared.contracts._reasons import AnyReasonCode, ReasonCode
from shared.contracts._registry import registry
from shared.contracts._symbols import Symbol
from shared.contracts._topics import Topic
from shared.contracts._types import (
    Actor,
    Amount,
    Asset,
    Attempts,
    ClientOrderId,
    Email,
    ExternalId,
    Leverage,
    Mobile,
    Name,
    PositiveAmount,
    Price,
    Quantity,
    SignedAmount,
    Text,
    UtcDatetime,
)

__all__ = [
    "Balance",
    "BalancesUpdated",
    "CancelApproved",
    "CancelRejected",
    "Fill",
    "InstrumentUpdated",
    "OrderAccepted",
    "OrderApproved",
    "OrderCanceled",
    "OrderEvent",
    "OrderExpired",
    "OrderFailed",
    "OrderFilled",
    "OrderRejected",
    "OrderSubmitted",
    "PositionUpdated",
    "Reservation",
    "TickerUpdated",
    "TradingStateChanged",
    "UserProvisioned",
    "UserProvisioningFailed",
    "UserRegistered",
    "Wallet",
]

_MAX_ITEMS = 1000
_ZERO = Decimal(0)


class _Value(BaseModel):
    """A value object nested in a message."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)


# ---------------------------------------------------------------------- orders.approved


class Reservation(_Value):
    """Funds the risk engine set aside for an approved order."""

    asset: Asset
    amount: Amount


@registry.register
class OrderApproved(Event):
    """The risk engine approved a PlaceOrder (or the order of a ClosePosition)."""

    TYPE: ClassVar[str] = "OrderApproved"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.ORDERS_APPROVED

    command: PlaceOrder
    reservation: Reservation


@registry.register
class CancelApproved(Event):
    """The risk engine passed a CancelOrder on (cancels reserve nothing)."""

    TYPE: ClassVar[str] = "CancelApproved"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.ORDERS_APPROVED

    command: CancelOrder


# ------------------------------------------------------------------------ orders.events


class Fill(_Value):
    """One trade of an order."""

    trade_id: ExternalId
    price: Price
    quantity: Quantity
    fee: Amount
    fee_asset: Asset
    liquidity: Liquidity
    executed_at: UtcDatetime | None = None


class OrderEvent(Event):
    """An order's cumulative state after something happened to it.

    ``filled_quantity`` never exceeds ``quantity``, and once it is above zero
    ``avg_price`` is known. Each subclass allows the ``status`` values in its
    ``STATUSES``.
    """

    TOPIC: ClassVar[Topic] = Topic.ORDERS_EVENTS
    STATUSES: ClassVar[frozenset[OrderStatus]] = frozenset(OrderStatus)

    client_order_id: ClientOrderId
    order_id: ExternalId | None = None
    symbol: Symbol
    side: Side
    order_type: OrderType
    status: OrderStatus
    quantity: Quantity
    price: Price | None = None
    filled_quantity: Amount = _ZERO
    avg_price: Price | None = None
    last_fill: Fill | None = None
    reason_code: AnyReasonCode | None = None
    reason: Text | None = None

    @field_validator("status")
    @classmethod
    def _status_allowed(cls, status: OrderStatus) -> OrderStatus:
        if status not in cls.STATUSES:
            allowed = ", ".join(sorted(cls.STATUSES))
            raise refusal(
                ReasonCode.INVALID_FIELD, f"a {cls.__name__} has status {allowed}, not {status}"
            )
        return status

    @model_validator(mode="after")
    def _consistent_fills(self) -> OrderEvent:
        if self.filled_quantity > self.quantity:
            raise refusal(
                ReasonCode.INVALID_FIELD,
                "filled_quantity exceeds quantity",
                field="filled_quantity",
            )
        if self.filled_quantity and self.avg_price is None:
            raise refusal(
                ReasonCode.MISSING_FIELD,
                "avg_price is required once something is filled",
                field="avg_price",
            )
        return self

    @property
    def remaining_quantity(self) -> Decimal:
        """What is left to fill."""
        return self.quantity - self.filled_quantity


@registry.register
class OrderRejected(OrderEvent):
    """The risk engine or OPEX refused the order; terminal."""

    TYPE: ClassVar[str] = "OrderRejected"
    VERSION: ClassVar[int] = 1
    STATUSES: ClassVar[frozenset[OrderStatus]] = frozenset({OrderStatus.REJECTED})

    status: OrderStatus = OrderStatus.REJECTED
    source: RejectSource
    reason_code: AnyReasonCode
    reason: Text


@registry.register
class OrderSubmitted(OrderEvent):
    """The gateway sent the order to OPEX; OPEX has not listed it yet."""

    TYPE: ClassVar[str] = "OrderSubmitted"
    VERSION: ClassVar[int] = 1
    STATUSES: ClassVar[frozenset[OrderStatus]] = frozenset({OrderStatus.SUBMITTED})

    status: OrderStatus = OrderStatus.SUBMITTED


@registry.register
class OrderAccepted(OrderEvent):
    """OPEX lists the order, under its ``order_id``."""

    TYPE: ClassVar[str] = "OrderAccepted"
    VERSION: ClassVar[int] = 1
    STATUSES: ClassVar[frozenset[OrderStatus]] = frozenset({OrderStatus.ACCEPTED})

    status: OrderStatus = OrderStatus.ACCEPTED
    order_id: ExternalId


@registry.register
class OrderFilled(OrderEvent):
    """The order traded (``last_fill``); FILLED once ``filled_quantity`` is
    ``quantity``, PARTIALLY_FILLED before."""

    TYPE: ClassVar[str] = "OrderFilled"
    VERSION: ClassVar[int] = 1
    STATUSES: ClassVar[frozenset[OrderStatus]] = frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED}
    )

    last_fill: Fill

    @model_validator(mode="after")
    def _status_matches_fills(self) -> OrderFilled:
        if not self.filled_quantity:
            raise refusal(
                ReasonCode.NON_POSITIVE_AMOUNT,
                "a filled order has filled_quantity above zero",
                field="filled_quantity",
            )
        complete = self.filled_quantity == self.quantity
        if complete != (self.status is OrderStatus.FILLED):
            expected = OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED
            raise refusal(
                ReasonCode.INVALID_FIELD,
                f"status must be {expected} when {self.filled_quantity} of "
                f"{self.quantity} is filled",
                field="status",
            )
        return self


@registry.register
class OrderCanceled(OrderEvent):
    """The order was canceled, perhaps after partial fills; terminal."""

    TYPE: ClassVar[str] = "OrderCanceled"
    VERSION: ClassVar[int] = 1
    STATUSES: ClassVar[frozenset[OrderStatus]] = frozenset({OrderStatus.CANCELED})

    status: OrderStatus = OrderStatus.CANCELED


@registry.register
class OrderExpired(OrderEvent):
    """The order expired (an IOC or FOK remainder, say); terminal."""

    TYPE: ClassVar[str] = "OrderExpired"
    VERSION: ClassVar[int] = 1
    STATUSES: ClassVar[frozenset[OrderStatus]] = frozenset({OrderStatus.EXPIRED})

    status: OrderStatus = OrderStatus.EXPIRED


@registry.register
class OrderFailed(OrderEvent):
    """The gateway could not place the order and gave up; terminal."""

    TYPE: ClassVar[str] = "OrderFailed"
    VERSION: ClassVar[int] = 1
    STATUSES: ClassVar[frozenset[OrderStatus]] = frozenset({OrderStatus.FAILED})

    status: OrderStatus = OrderStatus.FAILED
    reason_code: AnyReasonCode
    reason: Text


@registry.register
class CancelRejected(Event):
    """A CancelOrder was refused; the order itself is unchanged."""

    TYPE: ClassVar[str] = "CancelRejected"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.ORDERS_EVENTS

    symbol: Symbol
    client_order_id: ClientOrderId | None = None
    order_id: ExternalId | None = None
    source: RejectSource
    reason_code: AnyReasonCode
    reason: Text

    @model_validator(mode="after")
    def _names_an_order(self) -> CancelRejected:
        if self.client_order_id is None and self.order_id is None:
            raise refusal(
                ReasonCode.MISSING_FIELD,
                "a cancel rejection needs a client_order_id or an order_id",
                field="client_order_id",
            )
        return self


# --------------------------------------------------------------------- positions.events


@registry.register
class PositionUpdated(Event):
    """A user's net position in a symbol; ``quantity`` > 0 is long, < 0 short, 0 flat."""

    TYPE: ClassVar[str] = "PositionUpdated"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.POSITIONS_EVENTS

    position_id: ExternalId
    symbol: Symbol
    quantity: SignedAmount
    avg_entry_price: Price | None = None
    realized_pnl: SignedAmount = _ZERO
    unrealized_pnl: SignedAmount = _ZERO
    mark_price: Price | None = None
    leverage: Leverage = Decimal(1)

    @property
    def side(self) -> Side | None:
        """BUY for a long position, SELL for a short one, None when flat."""
        if self.quantity > 0:
            return Side.BUY
        if self.quantity < 0:
            return Side.SELL
        return None


# ---------------------------------------------------------------------- accounts.events


class Balance(_Value):
    asset: Asset
    free: Amount
    locked: Amount = _ZERO


@registry.register
class BalancesUpdated(Event):
    """A user's balances, one entry per asset."""

    TYPE: ClassVar[str] = "BalancesUpdated"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.ACCOUNTS_EVENTS

    balances: Annotated[tuple[Balance, ...], Field(max_length=_MAX_ITEMS)]
    source: BalanceSource

    @field_validator("balances")
    @classmethod
    def _one_per_asset(cls, balances: tuple[Balance, ...]) -> tuple[Balance, ...]:
        if len({balance.asset for balance in balances}) != len(balances):
            raise refusal(ReasonCode.INVALID_FIELD, "an asset appears more than once")
        return balances


@registry.register
class TradingStateChanged(Event):
    """Trading was switched to ``state`` for one user (scope user, the envelope's
    ``user_id``) or for everyone (scope global, no user; keyed ``global``)."""

    TYPE: ClassVar[str] = "TradingStateChanged"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.ACCOUNTS_EVENTS
    GLOBAL_KEY: ClassVar[str] = "global"

    scope: TradingScope
    state: TradingState
    previous_state: TradingState | None = None
    reason: Text
    changed_by: Actor

    def routing_key(self) -> str | None:
        return self.GLOBAL_KEY if self.scope is TradingScope.GLOBAL else None


# ------------------------------------------------------------------------- users.events


@registry.register
class UserRegistered(Event):
    """The platform registered a user (the envelope's ``user_id``)."""

    TYPE: ClassVar[str] = "UserRegistered"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.USERS_EVENTS

    email: Email
    first_name: Name | None = None
    last_name: Name | None = None
    mobile: Mobile | None = None


class Wallet(_Value):
    asset: Asset
    free: Amount


@registry.register
class UserProvisioned(Event):
    """user_sync opened the user's OPEX account; its wallets exist."""

    TYPE: ClassVar[str] = "UserProvisioned"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.USERS_EVENTS

    opex_user_id: UUID
    wallets: Annotated[tuple[Wallet, ...], Field(max_length=_MAX_ITEMS)] = ()


@registry.register
class UserProvisioningFailed(Event):
    """user_sync gave up on the user after ``attempts`` tries."""

    TYPE: ClassVar[str] = "UserProvisioningFailed"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.USERS_EVENTS

    reason_code: AnyReasonCode
    reason: Text
    attempts: Attempts


# ------------------------------------------------------------------------------ market.*

_ORDER_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z_]{0,31}", re.ASCII)


def _order_type_name(value: Any) -> Any:
    if isinstance(value, str):
        if not _ORDER_TYPE_NAME.fullmatch(value):
            raise refusal(ReasonCode.INVALID_FIELD, "an order type is a name like LIMIT")
        return value.upper()
    return value


ExchangeOrderType = Annotated[
    str, StringConstraints(strict=True), BeforeValidator(_order_type_name)
]
"""An OPEX order type name, upper-cased: LIMIT, MARKET, STOP_LOSS_LIMIT..."""


@registry.register
class InstrumentUpdated(MarketEvent):
    """OPEX's rules for a pair (ARCHITECTURE.md; OPEX.md, Symbols and numbers)."""

    TYPE: ClassVar[str] = "InstrumentUpdated"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.MARKET_INSTRUMENTS

    base_asset: Asset
    quote_asset: Asset
    price_step: PositiveAmount
    quantity_step: PositiveAmount
    min_order_value: Amount
    max_order_value: PositiveAmount
    is_available: StrictBool
    order_types: Annotated[tuple[ExchangeOrderType, ...], Field(max_length=32)] = ()
    max_leverage: Leverage | None = None

    @model_validator(mode="after")
    def _consistent(self) -> InstrumentUpdated:
        if self.symbol != f"{self.base_asset}_{self.quote_asset}":
            raise refusal(
                ReasonCode.INVALID_SYMBOL,
                f"{self.symbol} is not {self.base_asset}_{self.quote_asset}",
                field="symbol",
            )
        if self.min_order_value > self.max_order_value:
            raise refusal(
                ReasonCode.INVALID_FIELD,
                "min_order_value exceeds max_order_value",
                field="min_order_value",
            )
        return self


@registry.register
class TickerUpdated(MarketEvent):
    """Latest prices of a pair at ``at``; a price is None while there is none (no trade
    yet, an empty side of the book)."""

    TYPE: ClassVar[str] = "TickerUpdated"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.MARKET_TICKERS

    last_price: Price | None = None
    bid_price: Price | None = None
    ask_price: Price | None = None
    volume: Amount = _ZERO
    at: UtcDatetime
