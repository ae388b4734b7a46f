"""What the gateway learns from OPEX, as plain values the domain can test without HTTP.

The OPEX adapter maps `shared.opex.Order` to `ListedOrder` and `shared.opex.Trade` to
`ListedTrade` (ids as strings, times as epoch ms, sides and symbols in the contract's
spelling); the domain never imports the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from shared.contracts import Liquidity, Side

__all__ = ["ExchangeStatus", "ListedOrder", "ListedTrade"]


class ExchangeStatus(StrEnum):
    """OPEX's order statuses (OPEX.md, Orders)."""

    REQUESTED = "REQUESTED"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        return self in (
            ExchangeStatus.REQUESTED,
            ExchangeStatus.NEW,
            ExchangeStatus.PARTIALLY_FILLED,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ListedOrder:
    """An order as OPEX lists it (``openOrders``, ``allOrders``, ``GET order``)."""

    order_id: str
    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal
    executed_quantity: Decimal = Decimal(0)
    cumulative_quote: Decimal = Decimal(0)
    status: ExchangeStatus = ExchangeStatus.NEW
    time_ms: int
    update_time_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListedTrade:
    """One of the user's trades (``myTrades``)."""

    trade_id: str
    order_id: str
    symbol: str
    price: Decimal
    quantity: Decimal
    fee: Decimal = Decimal(0)
    fee_asset: str
    time_ms: int
    is_maker: bool

    @property
    def liquidity(self) -> Liquidity:
        return Liquidity.MAKER if self.is_maker else Liquidity.TAKER
