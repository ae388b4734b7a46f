"""record_lag: the consumer-lag gauge from the high watermark after a batch."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition

from shared.messaging import record_lag
from shared.observability.metrics import CONSUMER_LAG


@dataclass
class Record:
    topic: str
    partition: int
    offset: int


class FakeConsumer:
    def __init__(self, marks: dict[TopicPartition, int | None]) -> None:
        self.marks = marks

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.marks.get(tp)


def _lag(consumer: str, topic: str, partition: int) -> float:
    return float(CONSUMER_LAG.labels(consumer, topic, str(partition))._value.get())


def test_record_lag_when_batch_then_highwater_minus_next_offset_per_partition() -> None:
    consumer = FakeConsumer({TopicPartition("t.lag", 0): 100, TopicPartition("t.lag", 1): 7})
    records = [Record("t.lag", 0, 10), Record("t.lag", 0, 41), Record("t.lag", 1, 6)]
    record_lag("lagtest", consumer, records)
    assert _lag("lagtest", "t.lag", 0) == 58  # 100 - (41 + 1)
    assert _lag("lagtest", "t.lag", 1) == 0


def test_record_lag_when_no_highwater_then_nothing() -> None:
    record_lag("lagtest2", object(), [Record("t.none", 0, 1)])
    record_lag("lagtest2", FakeConsumer({}), [Record("t.none", 0, 1)])
    assert _lag("lagtest2", "t.none", 0) == 0
