"""Reservations: the funds an approved order holds until it is closed.

====================  =========  ====================================================
order                 asset      reserved per unit of quantity (``unit``)
====================  =========  ====================================================
buy limit/stop-limit  quote      limit price x (1 + fee allowance)
buy market            quote      reference price x (1 + market collar) x (1 + fee allowance)
buy stop              quote      stop price x (1 + market collar) x (1 + fee allowance)
sell (any type)       base       1
====================  =========  ====================================================

The reservation is ``unit x quantity``, exactly (OrderApproved carries it rounded up to
18 decimals). A fill of ``q`` consumes ``unit x q`` of it (never more than is left); the
order's terminal event (filled, canceled, expired, rejected by OPEX, failed) releases the
rest. So a reservation is never negative and is zero once its order is closed, and
``Account.reserved[asset]`` is always the sum of the open orders' reservations.

OPEX charges each side's fee in the asset it receives (OPEX.md), so a buy pays no fee in
the quote asset; the fee allowance is a safety margin (set it to 0 to reserve exactly what
OPEX locks).
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from services.risk_engine.config import RiskLimits
from shared.contracts import OrderType, PlaceOrder, Side

from .amounts import ONE, ZERO
from .state import Account, Instrument, OpenOrder

__all__ = ["ReservationPlan", "consume", "plan_reservation", "release", "reserve"]


class ReservationPlan(NamedTuple):
    """What an approval would reserve: ``amount`` of ``asset``, ``unit`` per unit of
    quantity."""

    asset: str
    unit: Decimal
    amount: Decimal


def buy_unit_price(
    order: PlaceOrder, reference: Decimal | None, limits: RiskLimits
) -> Decimal | None:
    """The price a buy's reservation counts per unit, before the fee allowance; None for
    a market buy without a reference price."""
    order_type = order.type
    if order_type is OrderType.LIMIT or order_type is OrderType.STOP_LIMIT:
        return order.price
    base = order.stop_price if order_type is OrderType.STOP else reference
    if base is None:
        return None
    return base * limits.market_buy_factor


def plan_reservation(
    order: PlaceOrder, instrument: Instrument, reference: Decimal | None, limits: RiskLimits
) -> ReservationPlan | None:
    """What approving ``order`` would reserve; None if a buy cannot be priced."""
    quantity = order.quantity
    if order.side is Side.SELL:
        return ReservationPlan(instrument.base, ONE, quantity)
    price = buy_unit_price(order, reference, limits)
    if price is None:
        return None
    unit = price * limits.buy_fee_factor
    return ReservationPlan(instrument.quote, unit, unit * quantity)


def reserve(account: Account, order: OpenOrder) -> None:
    """Hold ``order.reserved`` of its asset."""
    asset = order.reserve_asset
    account.reserved[asset] = account.reserved.get(asset, ZERO) + order.reserved


def consume(account: Account, order: OpenOrder, quantity: Decimal) -> Decimal:
    """A fill of ``quantity`` used ``unit x quantity`` of the reservation (at most what is
    left); the amount consumed."""
    amount = min(order.unit * quantity, order.reserved)
    _take(account, order, amount)
    return amount


def release(account: Account, order: OpenOrder) -> Decimal:
    """The order is closed: release what is left of its reservation; the amount."""
    amount = order.reserved
    _take(account, order, amount)
    return amount


def _take(account: Account, order: OpenOrder, amount: Decimal) -> None:
    if not amount:
        return
    order.reserved -= amount
    asset = order.reserve_asset
    left = account.reserved.get(asset, ZERO) - amount
    if left:
        account.reserved[asset] = left
    else:
        account.reserved.pop(asset, None)
