"""A small world for the risk engine's tests: one engine on a manual clock, BTC_USDT and
ETH_USDT listed and priced, a provisioned and funded user, and builders for commands and
the gateway's order events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import count
from uuid import UUID

from services.risk_engine.config import RiskLimits
from services.risk_engine.domain import (
    Approved,
    Limits,
    ManualClock,
    Outgoing,
    PlaceDecision,
    Rejected,
    RiskEngine,
)
from shared.contracts import (
    Balance,
    BalanceSource,
    BalancesUpdated,
    CancelOrder,
    Fill,
    InstrumentUpdated,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFailed,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderType,
    PlaceOrder,
    RejectReason,
    RejectSource,
    Side,
    TickerUpdated,
    TimeInForce,
    UserProvisioned,
)

D = Decimal
USER = "42"
OTHER = "7"
BTC = "BTC_USDT"
ETH = "ETH_USDT"
START_MS = 1_767_268_800_000  # 2026-01-01T12:00:00Z


def at(ms: int) -> datetime:
    """Epoch milliseconds as an aware datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def instrument(
    symbol: str = BTC,
    *,
    price_step: str = "0.01",
    quantity_step: str = "0.0001",
    min_value: str = "10",
    max_value: str = "5000000",
    available: bool = True,
    order_types: tuple[str, ...] = ("LIMIT", "MARKET"),
    max_leverage: str | None = None,
) -> InstrumentUpdated:
    base, quote = symbol.split("_")
    return InstrumentUpdated(
        symbol=symbol,
        base_asset=base,
        quote_asset=quote,
        price_step=D(price_step),
        quantity_step=D(quantity_step),
        min_order_value=D(min_value),
        max_order_value=D(max_value),
        is_available=available,
        order_types=order_types,
        max_leverage=None if max_leverage is None else D(max_leverage),
    )


@dataclass
class World:
    """An engine and the ways to feed it."""

    clock: ManualClock = field(default_factory=lambda: ManualClock(START_MS))
    limits: Limits = field(default_factory=Limits)
    engine: RiskEngine = field(init=False)
    _ids: Iterator[int] = field(default_factory=lambda: count(1))
    _trades: Iterator[int] = field(default_factory=lambda: count(1))

    def __post_init__(self) -> None:
        self.engine = RiskEngine(limits=self.limits, clock=self.clock)

    # market and accounts

    def list_instrument(self, event: InstrumentUpdated | None = None) -> None:
        self.engine.on_instrument(event if event is not None else instrument())

    def price(self, symbol: str, price: str, *, age_ms: int = 0) -> list[Outgoing]:
        return self.engine.on_ticker(
            TickerUpdated(symbol=symbol, last_price=D(price), at=at(self.clock.now - age_ms))
        )

    def provision(self, user: str = USER) -> None:
        self.engine.on_user_provisioned(
            user,
            UserProvisioned(opex_user_id=UUID(int=int(user) if user.isdigit() else 1)),
            self.clock.now,
        )

    def fund(self, user: str = USER, **balances: str) -> None:
        self.engine.on_balances(
            user,
            BalancesUpdated(
                balances=tuple(Balance(asset=a, free=D(v)) for a, v in balances.items()),
                source=BalanceSource.OPEX,
            ),
            self.clock.now,
        )

    # commands

    def order(
        self,
        side: Side = Side.BUY,
        quantity: str = "0.1",
        price: str | None = "50000",
        *,
        symbol: str = BTC,
        type: OrderType | None = None,
        coid: str | None = None,
        **extra: object,
    ) -> PlaceOrder:
        order_type = type or (OrderType.LIMIT if price is not None else OrderType.MARKET)
        fields: dict[str, object] = {
            "client_order_id": coid or f"c-{next(self._ids)}",
            "symbol": symbol,
            "side": side,
            "type": order_type,
            "quantity": D(quantity),
            **extra,
        }
        if price is not None:
            fields["price"] = D(price)
        if order_type is OrderType.MARKET:
            fields.setdefault("time_in_force", TimeInForce.IOC)
        return PlaceOrder.model_validate(fields)

    def place(self, *args: object, user: str = USER, **kwargs: object) -> PlaceDecision:
        return self.engine.decide_place(user, self.order(*args, **kwargs))  # type: ignore[arg-type]

    def approved(self, *args: object, user: str = USER, **kwargs: object) -> Approved:
        decision = self.place(*args, user=user, **kwargs)
        assert isinstance(decision, Approved), decision
        return decision

    def rejected(self, *args: object, user: str = USER, **kwargs: object) -> Rejected:
        decision = self.place(*args, user=user, **kwargs)
        assert isinstance(decision, Rejected), decision
        return decision

    def cancel(self, coid: str, *, symbol: str = BTC) -> CancelOrder:
        return CancelOrder(symbol=symbol, client_order_id=coid)

    # the gateway's order events

    def accept(self, approved: Approved, *, order_id: str | None = None) -> list[Outgoing]:
        command = approved.command
        return self.engine.on_order_event(
            approved.user_id,
            OrderAccepted(
                client_order_id=command.client_order_id,
                order_id=order_id or f"o-{command.client_order_id}",
                symbol=command.symbol,
                side=command.side,
                order_type=command.type,
                quantity=command.quantity,
                price=command.price,
            ),
            self.clock.now,
        )

    def fill(
        self,
        approved: Approved,
        quantity: str | Decimal,
        price: str | Decimal,
        *,
        filled_before: Decimal = D(0),
        fee: str = "0",
        fee_asset: str = "USDT",
        trade_id: str | None = None,
        avg_price: Decimal | None = None,
    ) -> list[Outgoing]:
        command = approved.command
        filled = filled_before + D(quantity)
        return self.engine.on_order_event(
            approved.user_id,
            OrderFilled(
                client_order_id=command.client_order_id,
                symbol=command.symbol,
                side=command.side,
                order_type=command.type,
                status=OrderStatus.FILLED
                if filled == command.quantity
                else OrderStatus.PARTIALLY_FILLED,
                quantity=command.quantity,
                price=command.price,
                filled_quantity=filled,
                avg_price=avg_price if avg_price is not None else D(price),
                last_fill=Fill(
                    trade_id=trade_id or f"t-{next(self._trades)}",
                    price=D(price),
                    quantity=D(quantity),
                    fee=D(fee),
                    fee_asset=fee_asset,
                    liquidity=Liquidity.TAKER,
                    executed_at=at(self.clock.now),
                ),
            ),
            self.clock.now,
        )

    def close(
        self,
        approved: Approved,
        how: type[OrderCanceled | OrderExpired | OrderFailed | OrderRejected],
        *,
        filled: Decimal = D(0),
        avg_price: Decimal | None = None,
    ) -> list[Outgoing]:
        command = approved.command
        extra: dict[str, object] = {}
        if how is OrderRejected:
            extra = {
                "source": RejectSource.EXCHANGE,
                "reason_code": RejectReason.EXCHANGE_REJECTED,
                "reason": "4001",
            }
        elif how is OrderFailed:
            extra = {"reason_code": RejectReason.EXCHANGE_UNAVAILABLE, "reason": "down"}
        return self.engine.on_order_event(
            approved.user_id,
            how.model_validate(
                {
                    "client_order_id": command.client_order_id,
                    "symbol": command.symbol,
                    "side": command.side,
                    "order_type": command.type,
                    "quantity": command.quantity,
                    "price": command.price,
                    "filled_quantity": filled,
                    "avg_price": avg_price,
                    **extra,
                }
            ),
            self.clock.now,
        )


def ready_world(limits: RiskLimits | None = None, **balances: str) -> World:
    """BTC_USDT at 50,000 and ETH_USDT at 3,000, fresh; USER provisioned with
    100,000 USDT and 2 BTC (or ``balances``)."""
    world = World(limits=Limits(limits))
    world.list_instrument()
    world.list_instrument(instrument(ETH))
    world.price(BTC, "50000")
    world.price(ETH, "3000")
    world.provision()
    world.fund(**(balances or {"USDT": "100000", "BTC": "2"}))
    return world
