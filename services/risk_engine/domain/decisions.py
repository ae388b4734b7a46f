"""What the engine decides and what it has to say, as light immutable values (named tuples:
cheap to make on the hot path); each turns into its
contract message with ``to_message()`` (the service wraps it in an envelope keyed by
``user_id`` and publishes it where the message's ``TOPIC`` says).

========================  ==========================  =================================
result                    message                     topic
========================  ==========================  =================================
`Approved`                OrderApproved               orders.approved
`Rejected`                OrderRejected (source risk) orders.events
`CancelPassed`            CancelApproved              orders.approved
`CancelRefused`           CancelRejected (risk)       orders.events
`Outgoing`                PositionUpdated,            positions.events, accounts.events
                          TradingStateChanged
========================  ==========================  =================================
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from shared.contracts import (
    CancelApproved,
    CancelOrder,
    CancelRejected,
    Event,
    OrderApproved,
    OrderRejected,
    PlaceOrder,
    RejectSource,
    Reservation,
    trusted,
)

from .amounts import to_wire_ceiling
from .checks import RefusalCode

__all__ = [
    "Approved",
    "CancelDecision",
    "CancelPassed",
    "CancelRefused",
    "Outgoing",
    "PlaceDecision",
    "Rejected",
]


class Outgoing(NamedTuple):
    """An event to publish: ``user_id`` is the envelope's (None for a global one)."""

    user_id: str | None
    message: Event


class Approved(NamedTuple):
    """The order passed every check; ``amount`` of ``asset`` is now reserved for it."""

    user_id: str
    command: PlaceOrder
    asset: str
    amount: Decimal
    events: tuple[Outgoing, ...] = ()

    @property
    def approved(self) -> bool:
        return True

    def to_message(self) -> OrderApproved:
        """OrderApproved; the reservation rounded up to the 18 decimals a message has."""
        reservation = Reservation(asset=self.asset, amount=to_wire_ceiling(self.amount))
        # both fields are validated models: nothing is left to validate
        return trusted(OrderApproved, {"command": self.command, "reservation": reservation})


class Rejected(NamedTuple):
    """The order was refused by one check: ``code`` and a human ``reason``."""

    user_id: str
    command: PlaceOrder
    code: RefusalCode
    reason: str
    events: tuple[Outgoing, ...] = ()

    @property
    def approved(self) -> bool:
        return False

    def to_message(self) -> OrderRejected:
        command = self.command
        return OrderRejected(
            client_order_id=command.client_order_id,
            symbol=command.symbol,
            side=command.side,
            order_type=command.type,
            quantity=command.quantity,
            price=command.price,
            source=RejectSource.RISK,
            reason_code=self.code,
            reason=self.reason,
        )


PlaceDecision = Approved | Rejected


class CancelPassed(NamedTuple):
    """The cancel names an open order of the user's: pass it to the gateway."""

    user_id: str
    command: CancelOrder
    client_order_id: str

    def to_message(self) -> CancelApproved:
        """CancelApproved with the order's ``client_order_id`` filled in (a cancel may
        name only OPEX's ``order_id``)."""
        command = self.command
        if command.client_order_id != self.client_order_id:
            command = command.model_copy(update={"client_order_id": self.client_order_id})
        return CancelApproved(command=command)


class CancelRefused(NamedTuple):
    user_id: str
    command: CancelOrder
    code: RefusalCode
    reason: str

    def to_message(self) -> CancelRejected:
        command = self.command
        return CancelRejected(
            symbol=command.symbol,
            client_order_id=command.client_order_id,
            order_id=command.order_id,
            source=RejectSource.RISK,
            reason_code=self.code,
            reason=self.reason,
        )


CancelDecision = CancelPassed | CancelRefused
