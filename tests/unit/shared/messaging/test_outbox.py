from __future__ import annotations

import asyncio
from types import SimpleNamespace
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from shared.messaging._outbox import _MAX_METADATA_CHARS, _fitting, decode_ids, encode_ids


def test_encode_ids_when_runs_are_contiguous_then_writes_ranges() -> None:
    assert encode_ids([7, 1, 2, 3, 4, 9, 10]) == "1-4,7,9-10"
    assert encode_ids([]) == ""


@given(st.sets(st.integers(min_value=1, max_value=10**12), max_size=300))
def test_decode_ids_when_given_encoded_ids_then_returns_them_sorted(ids: set[int]) -> None:
    assert decode_ids(encode_ids(list(ids))) == sorted(ids)


def test_fitting_when_ids_are_scattered_then_keeps_the_longest_prefix_that_fits() -> None:
    rows = [SimpleNamespace(id=1_000_000_000 + 2 * i) for i in range(1000)]
    kept = _fitting(rows)
    assert 0 < len(kept) < len(rows)
    assert list(kept) == rows[: len(kept)]
    assert len(encode_ids([r.id for r in kept])) <= _MAX_METADATA_CHARS
    assert len(encode_ids([r.id for r in rows[: len(kept) + 1]])) > _MAX_METADATA_CHARS


def test_fitting_when_ids_are_contiguous_then_keeps_all() -> None:
    rows = [SimpleNamespace(id=i) for i in range(1, 5001)]
    assert len(_fitting(rows)) == 5000


def test_relay_partition_when_keyed_then_the_same_as_the_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    from shared.messaging._outbox import _key_hash

    partitioner = DefaultPartitioner()
    for count in (1, 6, 12, 13):
        partitions = list(range(count))
        for key in (b"42", b"bench-user-7", b"BTC_USDT", "ü-ß".encode(), b"x" * 100):
            expected = partitioner(key, partitions, partitions)
            assert partitions[_key_hash(key) % count] == expected


def test_relay_name_when_topics_are_prefixed_then_the_prefix_is_part_of_it() -> None:
    from shared.messaging._outbox import relay_name

    assert relay_name("risk_engine", "0") == "risk_engine-outbox-0"
    assert relay_name("risk_engine", "0", "suite-a.") == "suite-a.risk_engine-outbox-0"
    assert relay_name("risk_engine", "0", "suite-a.") != relay_name("risk_engine", "0", "suite-b.")


def test_relay_when_topics_are_prefixed_then_its_transactional_id_and_group_carry_it() -> None:
    from shared.messaging import KafkaSettings, OutboxRelay

    relays = [
        OutboxRelay(
            SimpleNamespace(),  # type: ignore[arg-type]  # the database is not touched
            KafkaSettings(),
            service="risk_engine",
            instance="0",
            topic_prefix=prefix,
        )
        for prefix in ("suite-a.", "suite-b.", "")
    ]
    names = [relay._name for relay in relays]
    assert names == [
        "suite-a.risk_engine-outbox-0",
        "suite-b.risk_engine-outbox-0",
        "risk_engine-outbox-0",
    ]


@given(st.uuids(), st.uuids(), st.booleans())
def test_message_headers_when_any_ids_then_as_the_tracing_module_writes_them(
    message_id: UUID, correlation_id: UUID, zero_span: bool
) -> None:
    from shared.contracts import PlaceOrder, new_message
    from shared.contracts.testing import example
    from shared.messaging._outbox import message_headers
    from shared.observability.tracing import traceparent_for

    if zero_span:  # a message id whose first 64 bits are zero: not a valid span id
        message_id = UUID(int=message_id.int & (2**64 - 1))
    envelope = new_message(
        example(PlaceOrder), user_id="42", message_id=message_id, correlation_id=correlation_id
    )

    headers = message_headers(envelope)

    assert headers == {
        "content-type": "application/json",
        "x-message-type": "PlaceOrder",
        "x-message-id": str(message_id),
        "x-correlation-id": str(correlation_id),
        "traceparent": traceparent_for(correlation_id, message_id),
        "x-user-id": "42",
    }


async def test_relay_when_notified_with_linger_then_one_batch_for_the_commits_of_a_moment() -> None:
    from shared.messaging import KafkaSettings, OutboxRelay

    for linger, expected_reads in ((0.05, 1), (0.0, None)):
        relay = OutboxRelay(
            SimpleNamespace(),  # type: ignore[arg-type]  # relay_once is replaced below
            KafkaSettings(),
            service="notifier",
            poll_interval=60,
            linger=linger,
        )
        reads: list[float] = []

        async def relay_once(reads: list[float] = reads) -> int:
            reads.append(asyncio.get_running_loop().time())
            return 0

        relay.relay_once = relay_once  # type: ignore[method-assign]
        relay.start()
        await asyncio.sleep(0.01)  # the first read, at start
        reads.clear()
        for _ in range(5):  # five commits a moment apart
            relay.notify()
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.1)
        await relay.stop()
        if expected_reads is not None:
            assert len(reads) == expected_reads  # all five rows in one read, after the linger
        else:
            assert len(reads) > 1  # without linger the first commit is read at once
