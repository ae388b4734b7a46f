"""The order state machine: the transition table as data.

``ALLOWED`` is every (from, to) pair the gateway may apply; anything else is refused
with an `IllegalTransition`, which the service logs and counts and never applies.
``transition`` never raises for an illegal pair: a refusal is an expected outcome (a
stale or reordered OPEX observation), not a bug.

=================  ==========================================================  ==========
from               to                                                          why
=================  ==========================================================  ==========
PENDING_SUBMIT     SUBMITTED                                                   request answered (or ambiguous)
PENDING_SUBMIT     ACCEPTED                                                    crash between request and record; found listed
PENDING_SUBMIT     REJECTED                                                    OPEX refused the request (a definite 4xx)
PENDING_SUBMIT     FAILED                                                      gave up (never listed, or never sendable)
PENDING_SUBMIT     CANCELED                                                    a held stop (or a queued order never sent) canceled
SUBMITTED          ACCEPTED, REJECTED, FAILED                                  correlated / refused / never listed
ACCEPTED           PARTIALLY_FILLED, FILLED                                    trades
ACCEPTED           PENDING_CANCEL                                              cancel sent
ACCEPTED           CANCELED, EXPIRED, REJECTED                                 OPEX lists it so (IOC remainder, engine refusal)
PARTIALLY_FILLED   PARTIALLY_FILLED, FILLED, PENDING_CANCEL, CANCELED, EXPIRED  more trades, cancel, end
PENDING_CANCEL     PENDING_CANCEL                                              a partial fill while the cancel is pending
PENDING_CANCEL     FILLED                                                      the fill won the race against the cancel
PENDING_CANCEL     CANCELED, EXPIRED                                           OPEX confirms the end
PENDING_CANCEL     ACCEPTED, PARTIALLY_FILLED                                  the cancel was refused; the order is still open
CANCELED           CANCELED, FILLED                                            late fill (below)
EXPIRED            EXPIRED, FILLED                                             late fill (below)
FILLED, REJECTED,  (none)                                                      absorbing
FAILED
=================  ==========================================================  ==========

Late fills. OPEX's cancel is asynchronous (OPEX.md, Orders): ``DELETE`` answers
CANCELED at once while the matching engine may still trade the order, and trades are
discovered by polling ``myTrades``, so a trade can be learnt after the order was
recorded CANCELED or EXPIRED. It happened, so it is applied: the status stays
CANCELED/EXPIRED (a self-loop, the event re-states the terminal status with the new
cumulative fill), or becomes FILLED when the trades cover the whole quantity. FILLED,
REJECTED and FAILED have nothing after them: a FILLED order cannot trade more, a
REJECTED one never traded, and a FAILED one was given up (if OPEX lists it later,
reconciliation records it as an external order).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts import OrderStatus

__all__ = [
    "ALLOWED",
    "LATE_FILL",
    "OPEN",
    "TERMINAL",
    "IllegalTransition",
    "Transition",
    "can_transition",
    "transition",
]

S = OrderStatus

ALLOWED: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {
        (S.PENDING_SUBMIT, S.SUBMITTED),
        (S.PENDING_SUBMIT, S.ACCEPTED),
        (S.PENDING_SUBMIT, S.REJECTED),
        (S.PENDING_SUBMIT, S.FAILED),
        (S.PENDING_SUBMIT, S.CANCELED),
        (S.SUBMITTED, S.ACCEPTED),
        (S.SUBMITTED, S.REJECTED),
        (S.SUBMITTED, S.FAILED),
        (S.ACCEPTED, S.PARTIALLY_FILLED),
        (S.ACCEPTED, S.FILLED),
        (S.ACCEPTED, S.PENDING_CANCEL),
        (S.ACCEPTED, S.CANCELED),
        (S.ACCEPTED, S.EXPIRED),
        (S.ACCEPTED, S.REJECTED),
        (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED),
        (S.PARTIALLY_FILLED, S.FILLED),
        (S.PARTIALLY_FILLED, S.PENDING_CANCEL),
        (S.PARTIALLY_FILLED, S.CANCELED),
        (S.PARTIALLY_FILLED, S.EXPIRED),
        (S.PENDING_CANCEL, S.PENDING_CANCEL),
        (S.PENDING_CANCEL, S.FILLED),
        (S.PENDING_CANCEL, S.CANCELED),
        (S.PENDING_CANCEL, S.EXPIRED),
        (S.PENDING_CANCEL, S.ACCEPTED),
        (S.PENDING_CANCEL, S.PARTIALLY_FILLED),
        (S.CANCELED, S.CANCELED),
        (S.CANCELED, S.FILLED),
        (S.EXPIRED, S.EXPIRED),
        (S.EXPIRED, S.FILLED),
    }
)
"""Every transition the gateway applies (see the module's table)."""

LATE_FILL: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {
        (S.CANCELED, S.CANCELED),
        (S.CANCELED, S.FILLED),
        (S.EXPIRED, S.EXPIRED),
        (S.EXPIRED, S.FILLED),
    }
)
"""The transitions out of a terminal status: only a fill learnt late does them."""

TERMINAL: frozenset[OrderStatus] = frozenset(status for status in S if status.is_terminal)
"""FILLED, CANCELED, REJECTED, EXPIRED, FAILED (the contract's terminal statuses)."""

OPEN: frozenset[OrderStatus] = frozenset(S) - TERMINAL
"""Statuses in which the order may still change on OPEX or locally."""


@dataclass(frozen=True, slots=True)
class Transition:
    """An allowed step, to apply."""

    from_status: OrderStatus
    to_status: OrderStatus

    @property
    def is_late_fill(self) -> bool:
        return (self.from_status, self.to_status) in LATE_FILL


@dataclass(frozen=True, slots=True)
class IllegalTransition:
    """A refused step: log it (``str``), count it, apply nothing."""

    client_order_id: str
    from_status: OrderStatus
    to_status: OrderStatus
    cause: str

    def __str__(self) -> str:
        return (
            f"order {self.client_order_id}: {self.from_status} -> {self.to_status} "
            f"refused ({self.cause})"
        )


def can_transition(from_status: OrderStatus, to_status: OrderStatus) -> bool:
    """The table allows ``from_status`` -> ``to_status``."""
    return (from_status, to_status) in ALLOWED


def transition(
    from_status: OrderStatus,
    to_status: OrderStatus,
    *,
    client_order_id: str = "",
    cause: str = "",
) -> Transition | IllegalTransition:
    """The step to apply, or why it is refused (never raises)."""
    if (from_status, to_status) in ALLOWED:
        return Transition(from_status, to_status)
    return IllegalTransition(client_order_id, from_status, to_status, cause or "not in the table")
