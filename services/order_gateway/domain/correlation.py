"""Correlating submissions with the orders OPEX lists.

OPEX answers a placement without an order id and ignores client order ids (OPEX.md), so
an intent is matched to a listed order by its fingerprint: symbol, side, limit price
and quantity, inside a time window around the request, among listed orders not claimed
yet. Why the match is never a guess:

1. Listings are per OPEX account, and each platform user has their own, so only that
   user's orders are candidates.
2. `may_submit` keeps two intents with one fingerprint from being in flight together:
   an identical second order waits until the first is correlated (or failed), so at most
   one in-flight intent can want a given listed order.
3. Orders already claimed (bound to any order the gateway holds, external ones too) are
   excluded, so a listed order is claimed once, ever.
4. The window (OPEX's time within [request - clock skew, request + window]) keeps an
   older identical order (one that filled long ago) out.

What is left is an identical order the user placed outside the suite on their own
account inside the window. Then two candidates tie, the earliest is claimed (same
terms, same account: economically the same order) and the intent is reported in
``ambiguous`` to log and count; the other becomes an external order in reconciliation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .observations import ListedOrder
from .orders import Fingerprint, GatewayOrder

__all__ = ["Correlation", "Intent", "correlate", "may_submit"]


@dataclass(frozen=True, slots=True)
class Intent:
    """An in-flight submission, as the matcher sees it."""

    client_order_id: str
    fingerprint: Fingerprint
    submitted_at_ms: int

    @classmethod
    def of(cls, order: GatewayOrder) -> Intent | None:
        """The intent of an in-flight order, None for any other."""
        print_ = order.fingerprint
        if not order.is_in_flight or print_ is None or order.submitted_at_ms is None:
            return None
        return cls(order.client_order_id, print_, order.submitted_at_ms)


@dataclass(frozen=True, slots=True)
class Correlation:
    """``claims``: client order id -> the listed order it is; ``ambiguous``: intents
    that had more than one candidate (claimed the earliest; log and count)."""

    claims: dict[str, ListedOrder]
    ambiguous: tuple[str, ...] = ()


def _order_key(listed: ListedOrder) -> tuple[int, int, str]:
    return (listed.time_ms, len(listed.order_id), listed.order_id)


def _matches(intent: Intent, listed: ListedOrder, skew_ms: int, window_ms: int) -> bool:
    print_ = intent.fingerprint
    return (
        listed.symbol == print_.symbol
        and listed.side is print_.side
        and listed.price == print_.price
        and listed.quantity == print_.quantity
        and intent.submitted_at_ms - skew_ms <= listed.time_ms <= intent.submitted_at_ms + window_ms
    )


def correlate(
    intents: Iterable[Intent],
    listed: Iterable[ListedOrder],
    claimed_ids: Iterable[str] = (),
    *,
    skew_ms: int,
    window_ms: int,
) -> Correlation:
    """Assign each listed order to at most one intent and each intent at most one listed
    order, deterministically: intents oldest first, each takes the earliest matching
    listed order nobody has claimed. ``listed`` is one user's (open and recent orders,
    duplicates across the two listings are fine); ``claimed_ids`` the OPEX ids already
    bound to orders the gateway holds."""
    taken = set(claimed_ids)
    unique: dict[str, ListedOrder] = {}
    for order in listed:
        unique.setdefault(order.order_id, order)
    candidates: Sequence[ListedOrder] = sorted(unique.values(), key=_order_key)
    claims: dict[str, ListedOrder] = {}
    ambiguous: list[str] = []
    for intent in sorted(intents, key=lambda i: (i.submitted_at_ms, i.client_order_id)):
        if intent.client_order_id in claims:
            continue
        found = [
            order
            for order in candidates
            if order.order_id not in taken and _matches(intent, order, skew_ms, window_ms)
        ]
        if not found:
            continue
        if len(found) > 1:
            ambiguous.append(intent.client_order_id)
        claims[intent.client_order_id] = found[0]
        taken.add(found[0].order_id)
    return Correlation(claims, tuple(ambiguous))


def may_submit(
    in_flight: Iterable[GatewayOrder], fingerprint: Fingerprint, client_order_id: str
) -> bool:
    """False while another order with the same fingerprint is in flight: the service
    queues this one until that one is correlated or failed (rule 2 above)."""
    return not any(
        order.client_order_id != client_order_id
        and order.is_in_flight
        and order.fingerprint == fingerprint
        for order in in_flight
    )
