"""The risk engine's state: plain dataclasses in memory, everything a decision reads.

```
RiskState
├── instruments        symbol -> Instrument              (market.instruments)
├── references         symbol -> ReferencePrice          (market.tickers)
├── global_trading     TradingStatus                     (ops commands)
└── accounts           user id -> Account
    ├── provisioned                                      (users.events)
    ├── totals, opex_locked, external_locked, journal    (accounts.events + fills)
    ├── reserved        asset -> amount                  (sum of the open orders' reservations)
    ├── open_orders     client order id -> OpenOrder     (approvals, orders.events)
    ├── closed_orders   client order id -> OpenOrder     (kept after the terminal event: late fills)
    ├── order_ids, seen_client_order_ids, seen_trades
    ├── positions       symbol -> Position               (fills)
    ├── approvals_ms    the order-rate window
    └── trading         TradingStatus
```

Nothing here does I/O; the state is rebuilt by replaying the events it was built from
(`RiskEngine.replay`), and can be snapshotted with `dataclasses.asdict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from shared.contracts import (
    InstrumentUpdated,
    OrderStatus,
    OrderType,
    Side,
    TickerUpdated,
    TradingState,
)

from .amounts import PNL, ZERO
from .positions import Position

__all__ = [
    "Account",
    "Instrument",
    "OpenOrder",
    "ReferencePrice",
    "RiskState",
    "TradingStatus",
    "reference_from_ticker",
    "stricter",
]

_TWO = Decimal(2)
_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class Instrument:
    """OPEX's rules for a pair, from InstrumentUpdated."""

    symbol: str
    base: str
    quote: str
    price_step: Decimal
    quantity_step: Decimal
    min_order_value: Decimal
    max_order_value: Decimal
    trading: bool
    order_types: frozenset[str]
    """OPEX order type names allowed on the pair; empty when OPEX published none."""
    max_leverage: Decimal | None = None

    @classmethod
    def from_event(cls, event: InstrumentUpdated) -> Instrument:
        return cls(
            symbol=event.symbol,
            base=event.base_asset,
            quote=event.quote_asset,
            price_step=event.price_step,
            quantity_step=event.quantity_step,
            min_order_value=event.min_order_value,
            max_order_value=event.max_order_value,
            trading=event.is_available,
            order_types=frozenset(event.order_types),
            max_leverage=event.max_leverage,
        )


@dataclass(frozen=True, slots=True)
class ReferencePrice:
    """A symbol's reference price and when the ticker saw it (epoch ms)."""

    price: Decimal
    at_ms: int


def reference_from_ticker(ticker: TickerUpdated) -> Decimal | None:
    """The last trade price, else the mid of bid and ask, else whichever side there is;
    None when the ticker has no price at all."""
    if ticker.last_price is not None:
        return ticker.last_price
    bid, ask = ticker.bid_price, ticker.ask_price
    if bid is not None and ask is not None:
        return PNL.divide(bid + ask, _TWO)
    return bid if bid is not None else ask


@dataclass(slots=True)
class OpenOrder:
    """An approved order, its reservation and what has filled of it.

    ``reserved`` starts at ``unit x quantity``, each fill
    consumes ``unit x fill`` of it (never more than is left) and the terminal event
    releases the rest, so it is never negative and is zero once the order is closed.
    A closed order (``closed_as`` set) is kept in ``Account.closed_orders``: OPEX's
    cancel answers at once while its engine may still trade, so fills can be learnt after
    the terminal event; they move the position and balances, and reserve nothing.
    """

    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    reserve_asset: str
    unit: Decimal
    """Amount of ``reserve_asset`` reserved per unit of quantity."""
    reserved: Decimal
    """What is still reserved."""
    approved_at_ms: int
    reduce_only: bool = False
    order_id: str | None = None
    accepted: bool = False
    """OPEX has listed the order (so its funds are among OPEX's locked ones)."""
    filled_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    implied_quantity: Decimal = ZERO
    """Of ``filled_quantity``, what a cumulative state said had filled before the fill's
    own event came (applied at the implied price, without its fee)."""
    closed_as: OrderStatus | None = None
    """The terminal status; None while the order is open."""

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


@dataclass(slots=True)
class TradingStatus:
    """A trading state and who set it; ``automatic`` when the engine itself did (the
    daily-loss guard), which the next UTC day undoes."""

    state: TradingState = TradingState.ACTIVE
    changed_by: str = "default"
    reason: str = "initial state"
    automatic: bool = False


def stricter(first: TradingState, second: TradingState) -> TradingState:
    """The more restrictive of two states (HALTED > REDUCING > ACTIVE)."""
    return first if _SEVERITY[first] >= _SEVERITY[second] else second


@dataclass(slots=True)
class Account:
    """One user, as the risk engine sees them."""

    user_id: str
    provisioned: bool = False
    opex_user_id: str | None = None
    # balances: OPEX's last snapshot (free + locked = total), kept current by fills
    totals: dict[str, Decimal] | None = None
    """Per asset, free + locked at OPEX; None until the first snapshot."""
    opex_locked: dict[str, Decimal] = field(default_factory=dict)
    external_locked: dict[str, Decimal] = field(default_factory=dict)
    """What OPEX had locked at the last snapshot beyond the reservations of orders it had
    accepted from us (orders placed elsewhere): unavailable until the next snapshot."""
    balances_as_of_ms: int | None = None
    balances_seeded: bool = False
    """The totals come from UserProvisioned's wallets, not yet from an OPEX snapshot."""
    journal: list[tuple[int, str, Decimal]] = field(default_factory=list)
    """Balance changes of fills after the last snapshot: (executed at, asset, delta)."""
    drift_count: int = 0
    # reservations and orders
    reserved: dict[str, Decimal] = field(default_factory=dict)
    open_orders: dict[str, OpenOrder] = field(default_factory=dict)
    order_ids: dict[str, str] = field(default_factory=dict)
    """OPEX order id -> client order id."""
    closed_orders: dict[str, OpenOrder] = field(default_factory=dict)
    """Orders past their terminal event (reserving nothing), for late fills."""
    seen_client_order_ids: set[str] = field(default_factory=set)
    seen_trades: set[tuple[str, str, Side]] = field(default_factory=set)
    """(symbol, trade id, side): a self-trade fills both sides under one trade id."""
    approvals_ms: list[int] = field(default_factory=list)
    # positions and P&L
    positions: dict[str, Position] = field(default_factory=dict)
    day: int | None = None
    """The UTC day (epoch ms // DAY_MS) the positions' day anchors belong to."""
    trading: TradingStatus = field(default_factory=TradingStatus)

    def available(self, asset: str) -> Decimal | None:
        """Total - reserved - externally locked; None before the first snapshot."""
        totals = self.totals
        if totals is None:
            return None
        amount = totals.get(asset, ZERO) - self.reserved.get(asset, ZERO)
        return amount - self.external_locked.get(asset, ZERO)


@dataclass(slots=True)
class RiskState:
    """Everything the engine knows."""

    instruments: dict[str, Instrument] = field(default_factory=dict)
    pairs: dict[tuple[str, str], str] = field(default_factory=dict)
    """(base, quote) -> symbol, to value a balance in a quote asset."""
    references: dict[str, ReferencePrice] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    holders: dict[str, set[str]] = field(default_factory=dict)
    """symbol -> users with a non-zero position in it."""
    global_trading: TradingStatus = field(default_factory=TradingStatus)
    drift_count: int = 0
    ignored_events: int = 0
    """Order events for orders the engine does not hold (unknown or already closed)."""

    def account(self, user_id: str) -> Account:
        """The user's account, created empty (not provisioned) if new."""
        account = self.accounts.get(user_id)
        if account is None:
            account = self.accounts[user_id] = Account(user_id)
        return account

    def mark(self, position: Position) -> Decimal | None:
        """The latest price of the position's symbol, however old: the newer of the
        ticker's reference price and the last fill's price."""
        reference = self.references.get(position.symbol)
        if reference is None or (
            position.last_fill_price is not None and position.last_fill_at_ms > reference.at_ms
        ):
            return position.last_fill_price
        return reference.price

    def effective_trading(self, account: Account | None) -> TradingState:
        """The stricter of the global state and the user's."""
        state = self.global_trading.state
        return state if account is None else stricter(state, account.trading.state)
