from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import OperationalError

from services.notifier.handlers import Backoff, TickerHandler, UserEventsHandler
from shared.contracts import (
    Envelope,
    OrderAccepted,
    TickerUpdated,
    TradingStateChanged,
    encode,
    new_message,
    partition_key,
)
from shared.contracts.testing import example_envelope, examples
from shared.messaging import Delivery
from tests.unit.notifier.fakes import MemoryStore, RecordingDeadLetters, RecordingHub

PREFIX = "t1."


def accepted(user: str, coid: str) -> Envelope[Any]:
    return new_message(
        OrderAccepted(
            client_order_id=coid,
            order_id="9",
            symbol="BTC_USDT",
            side="buy",
            order_type="limit",
            quantity=Decimal(1),
            price=Decimal(10),
        ),
        user_id=user,
    )


def delivery(
    envelope: Envelope[Any] | bytes, offset: int = 0, topic: str = "orders.events"
) -> Delivery:
    if isinstance(envelope, bytes):
        return Delivery(PREFIX + topic, 0, offset, b"k", envelope)
    return Delivery(
        PREFIX + envelope.topic.value, 0, offset, partition_key(envelope), encode(envelope)
    )


async def no_sleep(_delay: float) -> None:
    return None


def handler(store: MemoryStore, hub: RecordingHub, dlq: RecordingDeadLetters) -> UserEventsHandler:
    return UserEventsHandler(
        store, hub, dlq, topic_prefix=PREFIX, backoff=Backoff(max_attempts=2), sleep=no_sleep
    )


async def test_handle_when_two_users_then_contiguous_seqs_pushed_after_recording() -> None:
    store, hub, dlq = MemoryStore(), RecordingHub(), RecordingDeadLetters()
    batch = [accepted("a", "1"), accepted("b", "2"), accepted("a", "3")]
    await handler(store, hub, dlq).handle([delivery(e, i) for i, e in enumerate(batch)])
    assert [(e.user_id, e.seq) for e in hub.published] == [("a", 1), ("b", 1), ("a", 2)]
    assert json.loads(hub.published[2].frame)["data"]["id"] == "3"
    assert not dlq.sent


async def test_handle_when_bytes_are_not_a_message_then_dead_lettered_and_rest_recorded() -> None:
    store, hub, dlq = MemoryStore(), RecordingHub(), RecordingDeadLetters()
    wrong_topic = delivery(encode(example_envelope(examples(TickerUpdated)[0])), 1)
    await handler(store, hub, dlq).handle(
        [delivery(b"{not json", 0), wrong_topic, delivery(accepted("a", "1"), 2)]
    )
    assert [str(error.code) for _, error, _ in dlq.sent] == ["MALFORMED_JSON", "WRONG_TOPIC"]  # type: ignore[attr-defined]
    assert [(e.user_id, e.seq) for e in hub.published] == [("a", 1)]


async def test_handle_when_message_repeats_then_one_seq_and_redelivery_is_pushed_again() -> None:
    store, hub, dlq = MemoryStore(), RecordingHub(), RecordingDeadLetters()
    envelope = accepted("a", "1")
    h = handler(store, hub, dlq)
    await h.handle([delivery(envelope, 0), delivery(envelope, 1)])
    assert [e.seq for e in hub.published] == [1]
    # a redelivery after a crash: nothing new recorded, but a connected user gets it
    # again (its connections drop the seq they already sent)
    hub.users.add("a")
    recorded = await h.handle([delivery(envelope, 0)])
    assert not recorded.entries
    assert [e.seq for e in hub.published] == [1, 1]
    assert store.cursors["a"].last_seq == 1


async def test_handle_when_redelivered_for_unconnected_user_then_no_lookup() -> None:
    store, hub, dlq = MemoryStore(), RecordingHub(), RecordingDeadLetters()
    envelope = accepted("a", "1")
    h = handler(store, hub, dlq)
    await h.handle([delivery(envelope)])
    await h.handle([delivery(envelope)])
    assert len(hub.published) == 1


async def test_handle_when_database_busy_then_retried_until_it_commits() -> None:
    transient = OperationalError("insert", {}, ConnectionError("server closed the connection"))
    store = MemoryStore(fail_with=[transient, transient, transient])
    hub, dlq = RecordingHub(), RecordingDeadLetters()
    await handler(store, hub, dlq).handle([delivery(accepted("a", "1"))])
    assert store.calls == 4
    assert [e.seq for e in hub.published] == [1]
    assert not dlq.sent


async def test_handle_when_one_message_keeps_failing_then_split_and_only_it_dead_lettered() -> None:
    poison = accepted("a", "2")
    store = MemoryStore(poison={poison.id})
    hub, dlq = RecordingHub(), RecordingDeadLetters()
    batch = [accepted("a", "1"), poison, accepted("a", "3")]
    await handler(store, hub, dlq).handle([delivery(e, i) for i, e in enumerate(batch)])
    assert [json.loads(e.frame)["data"]["id"] for e in hub.published] == ["1", "3"]
    assert [e.seq for e in hub.published] == [1, 2]
    assert len(dlq.sent) == 1
    assert dlq.sent[0][0].offset == 1


async def test_handle_when_global_trading_state_then_notice_pushed() -> None:
    store, hub, dlq = MemoryStore(), RecordingHub(), RecordingDeadLetters()
    envelope = example_envelope(examples(TradingStateChanged)[1])
    await handler(store, hub, dlq).handle([delivery(envelope)])
    assert len(hub.notices) == 1
    assert json.loads(hub.notices[0])["type"] == "trading_state"
    assert not hub.published


def test_ticker_handler_when_batch_then_latest_per_symbol_and_bad_ones_skipped() -> None:
    hub = RecordingHub()
    from datetime import UTC, datetime

    def tick(symbol: str, price: str) -> Delivery:
        envelope = new_message(
            TickerUpdated(symbol=symbol, last_price=Decimal(price), at=datetime.now(UTC)),
            user_id=None,
        )
        return delivery(envelope)

    pushed = TickerHandler(hub, topic_prefix=PREFIX).handle(
        [
            tick("BTC_USDT", "1"),
            delivery(b"garbage", topic="market.tickers"),
            tick("ETH_USDT", "2"),
            tick("BTC_USDT", "3"),
        ]
    )
    assert pushed == 2
    latest = {symbol: json.loads(frame)["data"]["last_price"] for symbol, frame in hub.tickers}
    assert latest == {"BTC_USDT": "3", "ETH_USDT": "2"}
