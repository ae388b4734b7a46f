"""Resolving an in-flight order: one that may be on OPEX but is not correlated yet (a
timeout, a 5xx, a lost answer, a crash between the request and its record).

It is resolved by asking OPEX, never by sending it again: first the listings the
service polls anyway (open orders, recent all-orders), then a targeted query
(``allOrders`` of the symbol over the order's window), and only when a targeted query
made after ``failed_after_ms`` still finds nothing is it given up as FAILED with
NOT_ACKNOWLEDGED. There is deliberately no "resend" outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.order_gateway.config import GatewayConfig
from shared.contracts import RejectReason

from .observations import ListedOrder
from .orders import GatewayOrder

__all__ = ["Claim", "GiveUp", "QueryWindow", "Resolution", "WaitForListing", "resolve"]


@dataclass(frozen=True, slots=True)
class Claim:
    """OPEX lists it: apply ``GatewayOrder.on_listed(listed)`` (OrderAccepted)."""

    listed: ListedOrder


@dataclass(frozen=True, slots=True)
class WaitForListing:
    """Look again in the listings; nothing else to do before ``recheck_at_ms``."""

    recheck_at_ms: int


@dataclass(frozen=True, slots=True)
class QueryWindow:
    """Ask OPEX for the user's orders of ``symbol`` in [start_ms, end_ms] (``allOrders``
    with startTime/endTime), correlate, and call `resolve` again with the query time."""

    symbol: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Apply ``GatewayOrder.fail(reason_code, reason)`` (OrderFailed)."""

    reason_code: RejectReason
    reason: str


Resolution = Claim | WaitForListing | QueryWindow | GiveUp


def resolve(
    order: GatewayOrder,
    found: ListedOrder | None,
    *,
    now_ms: int,
    config: GatewayConfig,
    last_query_at_ms: int | None = None,
) -> Resolution:
    """What to do with in-flight ``order`` given the listed order the matcher claimed for
    it (``found``) and when the last targeted query for it ran. `ValueError` when the
    order is not in flight (a caller's bug)."""
    if not order.is_in_flight or order.submitted_at_ms is None:
        raise ValueError(f"order {order.client_order_id} is not in flight")
    if found is not None:
        return Claim(found)
    sent = order.submitted_at_ms
    if now_ms < sent + config.listing_grace_ms:
        return WaitForListing(sent + config.listing_grace_ms)
    deadline = sent + config.failed_after_ms
    if last_query_at_ms is not None and last_query_at_ms >= deadline:
        return GiveUp(
            RejectReason.NOT_ACKNOWLEDGED,
            f"OPEX did not list the order within {config.failed_after_ms} ms of the request",
        )
    next_query = (
        sent + config.listing_grace_ms
        if last_query_at_ms is None
        else last_query_at_ms + config.query_interval_ms
    )
    if now_ms >= deadline:
        next_query = min(next_query, now_ms)
    if now_ms < next_query:
        return WaitForListing(min(next_query, deadline))
    return QueryWindow(order.symbol, sent - config.clock_skew_ms, now_ms)
