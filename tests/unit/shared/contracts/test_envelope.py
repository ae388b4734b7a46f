"""The envelope and its helpers (shared/contracts/_envelope.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from shared.contracts import (
    CancelOrder,
    Envelope,
    InvalidMessage,
    OrderAccepted,
    OrderRejected,
    PlaceOrder,
    ReasonCode,
    RejectReason,
    RejectSource,
    TickerUpdated,
    Topic,
    TradingScope,
    TradingStateChanged,
    UnexpectedMessageType,
    caused_by,
    new_message,
    partition_key,
)
from shared.contracts.testing import example, examples

PLACE = example(PlaceOrder)
TICKER = example(TickerUpdated)
USER_TRADING, GLOBAL_TRADING = examples(TradingStateChanged)


def test_new_message_then_fresh_id_is_its_correlation_and_time_is_utc_ms() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    envelope = new_message(PLACE, user_id="42")
    after = datetime.now(UTC)

    assert envelope.id.version == 4
    assert envelope.correlation_id == envelope.id
    assert envelope.causation_id is None
    assert envelope.type == "PlaceOrder"
    assert envelope.version == 1
    assert envelope.user_id == "42"
    assert envelope.data is PLACE
    assert envelope.occurred_at.tzinfo is UTC
    assert envelope.occurred_at.microsecond % 1000 == 0
    assert before <= envelope.occurred_at <= after
    assert envelope.topic == Topic.ORDERS_COMMANDS


def test_new_message_when_called_twice_then_ids_differ() -> None:
    assert new_message(PLACE, user_id="42").id != new_message(PLACE, user_id="42").id


def test_new_message_when_ids_and_time_given_then_used() -> None:
    message_id, correlation_id, causation_id = uuid4(), uuid4(), uuid4()
    at = datetime(2026, 1, 1, 3, 30, 0, 123456, timezone(timedelta(hours=3, minutes=30)))

    envelope = new_message(
        PLACE,
        user_id="42",
        correlation_id=correlation_id,
        causation_id=causation_id,
        message_id=message_id,
        occurred_at=at,
    )

    assert (envelope.id, envelope.correlation_id, envelope.causation_id) == (
        message_id,
        correlation_id,
        causation_id,
    )
    assert envelope.occurred_at == datetime(2026, 1, 1, 0, 0, 0, 123000, UTC)


def test_new_message_when_user_topic_without_user_then_invalid_message() -> None:
    with pytest.raises(InvalidMessage) as caught:
        new_message(PLACE, user_id=None)

    assert caught.value.code is ReasonCode.MISSING_FIELD
    assert caught.value.errors[0].loc == ("user_id",)


def test_new_message_when_market_data_with_user_then_invalid_message() -> None:
    with pytest.raises(InvalidMessage) as caught:
        new_message(TICKER, user_id="42")

    assert caught.value.code is ReasonCode.FIELD_NOT_ALLOWED
    assert caught.value.errors[0].loc == ("user_id",)


@pytest.mark.parametrize("user_id", ["", "a b", "x" * 65])
def test_new_message_when_user_id_malformed_then_invalid_message(user_id: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        new_message(PLACE, user_id=user_id)

    assert caught.value.code is ReasonCode.INVALID_IDENTIFIER


def test_new_message_when_naive_occurred_at_then_invalid_timestamp() -> None:
    with pytest.raises(InvalidMessage) as caught:
        new_message(PLACE, user_id="42", occurred_at=datetime(2026, 1, 1))

    assert caught.value.code is ReasonCode.INVALID_TIMESTAMP


def test_caused_by_then_same_chain_and_user_and_parent_as_cause() -> None:
    parent = new_message(PLACE, user_id="42")
    rejected = OrderRejected(
        client_order_id=PLACE.client_order_id,
        symbol=PLACE.symbol,
        side=PLACE.side,
        order_type=PLACE.type,
        quantity=PLACE.quantity,
        source=RejectSource.RISK,
        reason_code=RejectReason.MAX_NOTIONAL,
        reason="too big",
    )

    child = caused_by(parent, rejected)
    grandchild = caused_by(child, example(OrderAccepted))

    assert child.correlation_id == parent.id
    assert child.causation_id == parent.id
    assert child.user_id == "42"
    assert child.id not in (parent.id, grandchild.id)
    assert grandchild.correlation_id == parent.id
    assert grandchild.causation_id == child.id


def test_caused_by_when_data_has_no_user_then_user_dropped() -> None:
    parent = new_message(PLACE, user_id="42")

    child = caused_by(parent, TICKER)

    assert child.user_id is None
    assert child.causation_id == parent.id


def test_caused_by_when_user_given_then_that_user() -> None:
    ticker = new_message(TICKER, user_id=None)

    state = caused_by(ticker, USER_TRADING, user_id="7")

    assert state.user_id == "7"
    assert state.correlation_id == ticker.id


def test_caused_by_when_parent_has_no_user_and_data_needs_one_then_invalid() -> None:
    ticker = new_message(TICKER, user_id=None)

    with pytest.raises(InvalidMessage):
        caused_by(ticker, PLACE)


def test_partition_key_when_user_topic_then_user_id() -> None:
    assert partition_key(new_message(PLACE, user_id="42")) == b"42"
    assert partition_key(new_message(USER_TRADING, user_id="7")) == b"7"


def test_partition_key_when_market_topic_then_symbol() -> None:
    assert partition_key(new_message(TICKER, user_id=None)) == b"BTC_USDT"


def test_partition_key_when_global_trading_state_then_global_and_no_user() -> None:
    assert GLOBAL_TRADING.scope is TradingScope.GLOBAL
    envelope = new_message(GLOBAL_TRADING, user_id=None)

    assert partition_key(envelope) == b"global"
    with pytest.raises(InvalidMessage):
        new_message(GLOBAL_TRADING, user_id="42")
    with pytest.raises(InvalidMessage):
        new_message(USER_TRADING, user_id=None)


def test_data_as_when_right_type_then_typed_data() -> None:
    envelope: Envelope[Any] = new_message(PLACE, user_id="42")

    order = envelope.data_as(PlaceOrder)

    assert order is PLACE
    assert order.quantity == PLACE.quantity


def test_data_as_when_other_type_then_unexpected_message_type() -> None:
    envelope: Envelope[Any] = new_message(PLACE, user_id="42")

    with pytest.raises(UnexpectedMessageType) as caught:
        envelope.data_as(CancelOrder)

    assert caught.value.code is ReasonCode.UNEXPECTED_MESSAGE_TYPE
    assert (caught.value.expected, caught.value.actual) == ("CancelOrder", "PlaceOrder")


def test_envelope_is_frozen_and_hashable() -> None:
    envelope = new_message(PLACE, user_id="42")

    with pytest.raises(ValidationError):
        envelope.user_id = "43"  # type: ignore[misc]
    assert hash(envelope) == hash(envelope.model_copy())
    assert {envelope, envelope.model_copy()} == {envelope}


def header(**changes: Any) -> dict[str, Any]:
    message_id = str(uuid4())
    return {
        "id": message_id,
        "type": "PlaceOrder",
        "version": 1,
        "occurred_at": "2026-01-01T00:00:00.000Z",
        "correlation_id": message_id,
        "causation_id": None,
        "user_id": "42",
        "data": PLACE.model_dump(mode="json"),
    } | changes


def test_validate_plain_envelope_when_dict_then_data_model_from_registry() -> None:
    envelope: Envelope[Any] = Envelope.model_validate(header())

    assert isinstance(envelope.data, PlaceOrder)
    assert envelope.data == PLACE


def test_validate_typed_envelope_when_dict_then_that_model() -> None:
    envelope = Envelope[PlaceOrder].model_validate(header())

    assert envelope.data == PLACE


def test_validate_envelope_when_type_does_not_match_data_then_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Envelope(
            id=uuid4(),
            type="CancelOrder",
            version=1,
            occurred_at=datetime.now(UTC),
            correlation_id=uuid4(),
            user_id="42",
            data=PLACE,
        )

    assert caught.value.errors()[0]["type"] == "invalid_field"


def test_validate_plain_envelope_when_unknown_type_then_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Envelope.model_validate(header(type="Nope"))

    assert caught.value.errors()[0]["type"] == "unknown_message_type"


def test_validate_envelope_when_ids_not_uuids_then_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Envelope.model_validate(header(id="not-a-uuid", correlation_id=7))

    assert {error["loc"] for error in caught.value.errors()} == {("id",), ("correlation_id",)}


def test_envelope_ids_serialise_as_uuid_strings() -> None:
    envelope = new_message(PLACE, user_id="42")
    dumped = envelope.model_dump(mode="json")

    assert UUID(dumped["id"]) == envelope.id
    assert dumped["causation_id"] is None
