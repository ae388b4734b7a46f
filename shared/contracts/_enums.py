"""The closed vocabularies used inside messages.

Every enum here reads its input case-insensitively (``"BUY"`` and ``"buy"`` are
`Side.BUY`), and writes its canonical spelling.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BalanceSource",
    "Liquidity",
    "OrderStatus",
    "OrderType",
    "RejectSource",
    "Side",
    "TimeInForce",
    "TradingScope",
    "TradingState",
]

_MAX_ENUM_INPUT = 32


class _CaseInsensitive(StrEnum):
    @classmethod
    def _missing_(cls, value: object) -> _CaseInsensitive | None:
        if isinstance(value, str) and len(value) <= _MAX_ENUM_INPUT:
            for candidate in (value.lower(), value.upper()):
                if candidate in cls._value2member_map_:
                    member = cls._value2member_map_[candidate]
                    assert isinstance(member, cls)
                    return member
        return None


class Side(_CaseInsensitive):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(_CaseInsensitive):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"

    @property
    def needs_price(self) -> bool:
        """Limit and stop-limit orders carry a limit price."""
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT)

    @property
    def needs_stop_price(self) -> bool:
        """Stop and stop-limit orders carry a trigger price."""
        return self in (OrderType.STOP, OrderType.STOP_LIMIT)


class TimeInForce(_CaseInsensitive):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(_CaseInsensitive):
    """The order gateway's state machine (ARCHITECTURE.md, order_gateway)."""

    PENDING_SUBMIT = "PENDING_SUBMIT"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        """No further event changes an order in this status."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.FAILED,
    }
)


class Liquidity(_CaseInsensitive):
    MAKER = "maker"
    TAKER = "taker"


class RejectSource(_CaseInsensitive):
    """Who refused: the risk engine before OPEX, or OPEX itself."""

    RISK = "risk"
    EXCHANGE = "exchange"


class BalanceSource(_CaseInsensitive):
    """Where a balance snapshot comes from: OPEX's wallets, or the risk engine's view
    after its reservations."""

    OPEX = "opex"
    RISK = "risk"


class TradingScope(_CaseInsensitive):
    USER = "user"
    GLOBAL = "global"


class TradingState(_CaseInsensitive):
    """ACTIVE trades; REDUCING lets only position-reducing orders (and cancels) through;
    HALTED refuses every order but cancels."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"
