"""Orders and trades as OPEX reports them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal(0)


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    """The API's order types. Inside OPEX every type but MARKET is a plain LIMIT order
    (there are no working stop orders); `engine_type` gives that mapping."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_LOSS = "STOP_LOSS"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"

    @property
    def engine_type(self) -> OrderType:
        return OrderType.MARKET if self is OrderType.MARKET else OrderType.LIMIT


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    REQUESTED = "REQUESTED"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_working(self) -> bool:
        return self is OrderStatus.NEW or self is OrderStatus.PARTIALLY_FILLED

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


@dataclass(slots=True, eq=False)
class Order:
    """One order. `order_id` is unique per pair (OPEX keeps one counter per order book);
    REJECTED orders never reach a book and keep `order_id` 0.

    `locked` is what the order still holds in `locked_asset` (OPEX's `remainedTransferAmount`):
    a buy locks price x quantity in the quote asset, a sell its quantity in the base asset; fills
    consume it at the trade (maker) price, so a buy filled at a better price keeps the difference
    locked until the order is filled or canceled, when the rest is released.

    Orders handed out by the engine are live objects: read them, never mutate them.
    """

    symbol: str
    order_id: int
    user: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce | None
    price: Decimal
    orig_qty: Decimal
    time: int
    update_time: int
    locked_asset: str
    locked: Decimal = ZERO
    executed_qty: Decimal = ZERO
    cummulative_quote_qty: Decimal = ZERO
    status: OrderStatus = OrderStatus.NEW
    reject_reason: str | None = None

    @property
    def remaining_qty(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_working(self) -> bool:
        return self.status.is_working


@dataclass(slots=True)
class Trade:
    """One match. Trades execute at the maker's price. Each side pays its fee in the asset it
    receives (buyer: base, seller: quote), credited to the exchange fee account.

    Read-only by convention (not `frozen`: a frozen dataclass is ~9x slower to build, and one
    is built per fill)."""

    symbol: str
    trade_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    time: int
    buyer: str
    buyer_order_id: int
    buyer_commission: Decimal
    seller: str
    seller_order_id: int
    seller_commission: Decimal
    base_asset: str
    quote_asset: str
    is_buyer_maker: bool

    @property
    def taker(self) -> str:
        return self.seller if self.is_buyer_maker else self.buyer

    @property
    def maker(self) -> str:
        return self.buyer if self.is_buyer_maker else self.seller

    def involves(self, user: str) -> bool:
        return user == self.buyer or user == self.seller

    def for_user(self, user: str) -> UserTrade:
        """The trade as `user` sees it in `myTrades`. For a self-trade OPEX's query yields one
        row, from the taker's side; so does this."""
        if user == self.taker:
            as_buyer = not self.is_buyer_maker
        elif user == self.maker:
            as_buyer = self.is_buyer_maker
        else:
            raise ValueError(f"user {user} is not a party to trade {self.trade_id}")
        return UserTrade(
            symbol=self.symbol,
            id=self.trade_id,
            order_id=self.buyer_order_id if as_buyer else self.seller_order_id,
            price=self.price,
            qty=self.qty,
            quote_qty=self.quote_qty,
            commission=self.buyer_commission if as_buyer else self.seller_commission,
            commission_asset=self.base_asset if as_buyer else self.quote_asset,
            time=self.time,
            is_buyer=as_buyer,
            is_maker=as_buyer == self.is_buyer_maker,
        )


@dataclass(slots=True)
class UserTrade:
    """A `myTrades` row. `is_buyer` here is the truth; note that OPEX's market query computes
    isBuyer as `side = 'ASK'` (inverted). The HTTP layer decides whether to mimic that."""

    symbol: str
    id: int
    order_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool
    is_best_match: bool = True
