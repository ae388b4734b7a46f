"""Envelopes the engine publishes, built without revalidation: the same as the
contracts' validated builders make."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from services.risk_engine.outgoing import Envelopes
from shared.contracts import (
    Envelope,
    InvalidMessage,
    OrderType,
    PlaceOrder,
    PositionUpdated,
    Side,
    TickerUpdated,
    TradingScope,
    TradingState,
    TradingStateChanged,
    caused_by,
    decode,
    encode,
    new_message,
)

D = Decimal
COMMAND = new_message(
    PlaceOrder(
        client_order_id="c-1",
        symbol="BTC_USDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        quantity=D("0.1"),
        price=D(100),
    ),
    user_id="42",
)
POSITION = PositionUpdated(
    position_id="BTC_USDT:42",
    symbol="BTC_USDT",
    quantity=D("0.1"),
    avg_entry_price=D(100),
    realized_pnl=D(0),
    unrealized_pnl=D(0),
    mark_price=D(100),
)
GLOBAL_HALT = TradingStateChanged(
    scope=TradingScope.GLOBAL,
    state=TradingState.HALTED,
    previous_state=TradingState.ACTIVE,
    reason="ops",
    changed_by="ops:me",
)


def same_but_ids_and_time(ours: Envelope[Any], theirs: Envelope[Any]) -> None:
    keep = {"id", "occurred_at", "correlation_id"}
    assert ours.model_dump(exclude=keep) == theirs.model_dump(exclude=keep)
    assert decode(encode(ours)) == ours  # what it says on the wire reads back the same
    assert ours.occurred_at.microsecond % 1000 == 0


def test_make_when_caused_by_a_command_then_as_caused_by_makes_it() -> None:
    ours = Envelopes().make(COMMAND, POSITION, "42")
    theirs = caused_by(COMMAND, POSITION, user_id="42")

    same_but_ids_and_time(ours, theirs)
    assert ours.correlation_id == COMMAND.correlation_id
    assert ours.causation_id == COMMAND.id
    assert ours.id not in (COMMAND.id, theirs.id)


def test_make_when_no_parent_then_a_new_chain_as_new_message_makes_it() -> None:
    ours = Envelopes().make(None, GLOBAL_HALT, None)

    same_but_ids_and_time(ours, new_message(GLOBAL_HALT, user_id=None))
    assert ours.correlation_id == ours.id
    assert ours.causation_id is None


def test_make_when_user_missing_malformed_or_not_allowed_then_refused_like_the_contract() -> None:
    envelopes = Envelopes()
    with pytest.raises(InvalidMessage):
        envelopes.make(COMMAND, POSITION, None)
    with pytest.raises(InvalidMessage):
        envelopes.make(COMMAND, POSITION, "has space")
    ticker = TickerUpdated(symbol="BTC_USDT", last_price=D(1), at=COMMAND.occurred_at)
    with pytest.raises(InvalidMessage):
        envelopes.make(None, ticker, "42")


def test_new_id_when_many_then_distinct_random_version_4() -> None:
    envelopes = Envelopes(block=4)

    ids = [envelopes.new_id() for _ in range(1000)]

    assert len(set(ids)) == 1000
    assert all(isinstance(i, UUID) and i.version == 4 for i in ids)


def test_new_id_when_many_then_random_version_4_uuids_as_uuid_makes_them() -> None:
    envelopes = Envelopes(block=8)
    ids = [envelopes.new_id() for _ in range(100)]

    assert len(set(ids)) == 100
    for made in ids:
        reference = UUID(bytes=made.bytes, version=4)
        assert made == reference
        assert (made.version, made.variant) == (4, reference.variant)
        assert (str(made), hash(made), made.is_safe) == (
            str(reference),
            hash(reference),
            reference.is_safe,
        )
