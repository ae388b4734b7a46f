"""Decisions as contract messages."""

from __future__ import annotations

from decimal import Decimal

from services.risk_engine.domain import Approved, Rejected
from shared.contracts import (
    OrderApproved,
    OrderRejected,
    OrderType,
    PlaceOrder,
    RejectReason,
    RejectSource,
    Side,
)

D = Decimal
ORDER = PlaceOrder(
    client_order_id="c-1",
    symbol="BTC_USDT",
    side=Side.BUY,
    type=OrderType.LIMIT,
    quantity=D("0.1"),
    price=D(100),
)


def test_approved_when_made_a_message_then_the_reservation_rounded_up_to_18_places() -> None:
    approved = Approved("42", ORDER, "USDT", D("1.0000000000000000001"))

    message = approved.to_message()

    assert message == OrderApproved(
        command=ORDER, reservation={"asset": "USDT", "amount": D("1.000000000000000001")}
    )


def test_rejected_when_made_a_message_then_source_risk_with_code_and_reason() -> None:
    rejected = Rejected("42", ORDER, RejectReason.PRICE_COLLAR, "too far")

    message = rejected.to_message()

    assert isinstance(message, OrderRejected)
    assert (message.source, message.reason_code, message.reason) == (
        RejectSource.RISK,
        RejectReason.PRICE_COLLAR,
        "too far",
    )
    assert (message.client_order_id, message.quantity, message.price) == ("c-1", D("0.1"), D(100))


def test_approved_message_when_built_without_revalidation_then_same_as_validated() -> None:
    message = Approved("42", ORDER, "USDT", D("10.02")).to_message()

    assert message == OrderApproved.model_validate(message.model_dump())
    assert (
        message.model_dump_json()
        == OrderApproved.model_validate(message.model_dump()).model_dump_json()
    )
