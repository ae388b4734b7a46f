"""What an approval reserves, and how fills and terminal events use it up exactly."""

from __future__ import annotations

from decimal import Decimal

from services.risk_engine.config import RiskLimits
from services.risk_engine.domain import Account, Instrument, OpenOrder
from services.risk_engine.domain.reservations import consume, plan_reservation, release, reserve
from shared.contracts import OrderType, PlaceOrder, Side, TimeInForce

D = Decimal
LIMITS = RiskLimits(fee_allowance_rate=D("0.002"), market_collar_pct=D("0.05"))
BTC = Instrument(
    "BTC_USDT", "BTC", "USDT", D("0.01"), D("0.0001"), D(10), D(10**6), True, frozenset()
)


def order(side: Side, order_type: OrderType, **fields: object) -> PlaceOrder:
    base: dict[str, object] = {
        "client_order_id": "c",
        "symbol": "BTC_USDT",
        "side": side,
        "type": order_type,
        "quantity": D("0.5"),
    }
    if order_type is OrderType.MARKET:
        base["time_in_force"] = TimeInForce.IOC
    return PlaceOrder.model_validate({**base, **fields})


def test_plan_when_buy_limit_then_quote_at_the_limit_price_plus_fee_allowance() -> None:
    plan = plan_reservation(order(Side.BUY, OrderType.LIMIT, price=D(100)), BTC, D(99), LIMITS)

    assert plan is not None
    assert (plan.asset, plan.unit, plan.amount) == ("USDT", D("100.2"), D("50.1"))


def test_plan_when_market_buy_then_quote_at_the_collar_edge() -> None:
    plan = plan_reservation(order(Side.BUY, OrderType.MARKET), BTC, D(100), LIMITS)

    assert plan is not None
    assert plan.amount == D("0.5") * D(105) * D("1.002")


def test_plan_when_market_buy_without_reference_then_none() -> None:
    assert plan_reservation(order(Side.BUY, OrderType.MARKET), BTC, None, LIMITS) is None


def test_plan_when_stop_buy_then_quote_at_the_stop_price_collar_edge() -> None:
    stop = order(Side.BUY, OrderType.STOP, stop_price=D(110))

    plan = plan_reservation(stop, BTC, D(100), LIMITS)

    assert plan is not None
    assert plan.unit == D(110) * D("1.05") * D("1.002")


def test_plan_when_sell_then_base_quantity() -> None:
    plan = plan_reservation(order(Side.SELL, OrderType.MARKET), BTC, None, LIMITS)

    assert plan is not None
    assert (plan.asset, plan.unit, plan.amount) == ("BTC", D(1), D("0.5"))


def open_order(unit: str, quantity: str) -> OpenOrder:
    return OpenOrder(
        "c",
        "BTC_USDT",
        Side.BUY,
        OrderType.LIMIT,
        D(quantity),
        D(100),
        "USDT",
        D(unit),
        D(unit) * D(quantity),
        0,
    )


def test_fills_then_terminal_when_summed_then_reservation_is_exactly_zero() -> None:
    account = Account("42")
    held = open_order("100.2", "0.3")
    reserve(account, held)

    for quantity in ("0.1", "0.1"):
        consumed = consume(account, held, D(quantity))
        held.filled_quantity += D(quantity)
        assert consumed == D("10.02")
    released = release(account, held)

    assert released == D("10.02")
    assert held.reserved == 0
    assert account.reserved == {}


def test_consume_when_more_than_is_left_then_stops_at_zero() -> None:
    account = Account("42")
    held = open_order("100", "0.1")
    reserve(account, held)

    assert consume(account, held, D(1)) == D(10)
    assert held.reserved == 0
    assert account.reserved == {}


def test_reserve_when_two_orders_then_the_sum() -> None:
    account = Account("42")
    reserve(account, open_order("100", "0.1"))
    reserve(account, open_order("100", "0.2"))

    assert account.reserved == {"USDT": D(30)}
