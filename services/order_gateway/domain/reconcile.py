"""Reconciliation with OPEX, at start and periodically (NautilusTrader's live
reconciliation): one user's open local orders against OPEX's open orders (and recent
all-orders), differences fixed by events.

=================================================  =========================================
case                                               result
=================================================  =========================================
in flight locally, an unclaimed listing matches    claimed: OrderAccepted (+ what it lists)
local open, OPEX lists it (open or finished)       ``on_listed``: its status and fills; e.g.
                                                   PENDING_CANCEL + CANCELED -> OrderCanceled
local open, OPEX lists it nowhere                  ``unresolved``: query it by id
OPEX executed more than the trades seen            ``needs_trades``: fetch its trades
OPEX open, unknown locally, unclaimed              ``external``: recorded, logged, no event
=================================================  =========================================

In-flight orders OPEX does not list are left to `inflight.resolve` (never resent).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.order_gateway.config import GatewayConfig

from .correlation import Intent, correlate
from .observations import ListedOrder
from .orders import GatewayOrder, Outcome

__all__ = ["Reconciliation", "reconcile"]


@dataclass(frozen=True, slots=True)
class Reconciliation:
    outcome: Outcome
    """Events to publish, refused transitions and anomalies to log and count."""
    external: tuple[GatewayOrder, ...] = ()
    """Orders found only on OPEX: record them (external), log; nothing is published."""
    unresolved: tuple[GatewayOrder, ...] = ()
    """Local open orders OPEX listed nowhere: query each by its OPEX id."""
    needs_trades: tuple[GatewayOrder, ...] = ()
    """Orders whose trades must be fetched before their state is complete."""
    ambiguous: tuple[str, ...] = ()


def reconcile(
    user_id: str,
    local_open: Iterable[GatewayOrder],
    opex_open: Iterable[ListedOrder],
    opex_recent: Iterable[ListedOrder] = (),
    *,
    config: GatewayConfig,
) -> Reconciliation:
    """Bring ``user_id``'s open orders in line with OPEX; mutates the local orders."""
    local = [order for order in local_open if order.is_open]
    open_list = list(opex_open)
    by_id: dict[str, ListedOrder] = {order.order_id: order for order in opex_recent}
    by_id.update({order.order_id: order for order in open_list})
    bound = {order.opex_order_id: order for order in local if order.opex_order_id is not None}

    outcome = Outcome()
    needs: list[GatewayOrder] = []
    unresolved: list[GatewayOrder] = []

    intents = [intent for order in local if (intent := Intent.of(order)) is not None]
    by_client = {order.client_order_id: order for order in local}
    matched = correlate(
        intents,
        by_id.values(),
        claimed_ids=bound.keys(),
        skew_ms=config.clock_skew_ms,
        window_ms=config.correlation_window_ms,
    )
    claimed = {listed.order_id for listed in matched.claims.values()}
    for client_order_id, listed in sorted(matched.claims.items()):
        order = by_client[client_order_id]
        step = order.on_listed(listed)
        outcome = outcome + step
        if step.needs_trades:
            needs.append(order)

    for opex_id, order in sorted(bound.items()):
        seen = by_id.get(opex_id)
        if seen is None:
            unresolved.append(order)
            continue
        step = order.on_listed(seen)
        outcome = outcome + step
        if step.needs_trades:
            needs.append(order)

    external = tuple(
        GatewayOrder.from_external(user_id, listed)
        for listed in sorted(open_list, key=lambda item: (item.time_ms, item.order_id))
        if listed.order_id not in bound and listed.order_id not in claimed and listed.status.is_open
    )
    return Reconciliation(
        outcome=outcome,
        external=external,
        unresolved=tuple(unresolved),
        needs_trades=tuple(needs),
        ambiguous=matched.ambiguous,
    )
