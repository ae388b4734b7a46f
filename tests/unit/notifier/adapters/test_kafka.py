"""The two-stage pipeline: stage 2 in batch order, offsets committed after each batch's
stage 2 (the batches recorded while a commit is in flight share the next one), and a
failed batch rewinds the consumer and drops the batches behind it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import TopicPartition

from services.notifier.adapters.kafka import Offsets, Pipeline, UserBatches, batch_offsets
from services.notifier.domain.stream import Recorded
from services.notifier.handlers import Prepared


@dataclass
class Record:
    topic: str
    partition: int
    offset: int


@dataclass
class Handler:
    """Records which batches reached stage 2; fails the ones named in ``fail``."""

    done: list[float] = field(default_factory=list)
    fail: set[float] = field(default_factory=set)
    delay: float = 0.01

    async def commit(self, prepared: Prepared) -> Recorded:
        await asyncio.sleep(self.delay)
        if prepared.started in self.fail:
            self.fail.discard(prepared.started)
            raise RuntimeError("bug")
        self.done.append(prepared.started)
        return Recorded()


TP = TopicPartition("t.orders.events", 0)


def test_batch_offsets_when_partitions_mixed_then_first_and_next_per_partition() -> None:
    records = [Record("a", 0, 5), Record("a", 1, 9), Record("a", 0, 7), Record("a", 0, 6)]
    first, after = batch_offsets(records)
    assert first == {TopicPartition("a", 0): 5, TopicPartition("a", 1): 9}
    assert after == {TopicPartition("a", 0): 8, TopicPartition("a", 1): 10}


async def test_pipeline_when_batches_flow_then_in_order_each_committed_after_its_stage2() -> None:
    handler = Handler()
    pipeline = Pipeline(handler)  # type: ignore[arg-type]
    commits: list[Offsets] = []

    async def commit(offsets: Offsets) -> None:
        assert len(handler.done) >= len(commits) + 1  # the batch is recorded first
        commits.append(offsets)

    for n in range(5):
        await pipeline.submit(
            Prepared(float(n)), pipeline.generation, commit, lambda _: None, ({TP: n}, {TP: n + 1})
        )
    await pipeline.drain()
    assert handler.done == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert commits == [{TP: n + 1} for n in range(5)]


async def test_pipeline_when_a_commit_is_slow_then_batches_behind_it_share_the_next() -> None:
    handler = Handler(delay=0)
    pipeline = Pipeline(handler)  # type: ignore[arg-type]
    release = asyncio.Event()
    commits: list[tuple[Offsets, int]] = []
    other = TopicPartition("t.orders.events", 1)

    async def commit(offsets: Offsets) -> None:
        commits.append((offsets, len(handler.done)))
        await release.wait()

    for n in range(4):
        after = {TP: n + 1} if n != 2 else {TP: n + 1, other: 7}
        await pipeline.submit(
            Prepared(float(n)), pipeline.generation, commit, lambda _: None, ({TP: n}, after)
        )
    for _ in range(5):
        await asyncio.sleep(0)
    release.set()
    await pipeline.drain()
    # the first commit alone, then one for the three batches recorded while it waited
    assert commits == [({TP: 1}, 1), ({TP: 4, other: 7}, 4)]


async def test_pipeline_when_a_batch_fails_then_rewound_and_later_batches_dropped() -> None:
    handler = Handler(fail={1.0})
    pipeline = Pipeline(handler)  # type: ignore[arg-type]
    commits: list[Offsets] = []
    rewinds: list[Offsets] = []

    async def commit(offsets: Offsets) -> None:
        commits.append(offsets)

    stale = pipeline.generation
    await pipeline.submit(Prepared(0.0), stale, commit, rewinds.append, ({TP: 0}, {TP: 1}))
    await pipeline.submit(Prepared(1.0), stale, commit, rewinds.append, ({TP: 1}, {TP: 2}))
    # fetched before the failure was known: dropped, uncommitted
    await pipeline.submit(Prepared(2.0), stale, commit, rewinds.append, ({TP: 2}, {TP: 3}))
    # after the rewind the failed batch comes again, and the rest with it
    await pipeline.submit(
        Prepared(1.5), pipeline.generation, commit, rewinds.append, ({TP: 1}, {TP: 3})
    )
    await pipeline.drain()
    assert rewinds == [{TP: 1}]
    assert handler.done == [0.0, 1.5]
    assert commits == [{TP: 1}, {TP: 3}]


async def test_pipeline_when_commit_fails_then_logged_and_next_batch_still_runs() -> None:
    handler = Handler()
    pipeline = Pipeline(handler)  # type: ignore[arg-type]

    async def revoked(_offsets: Offsets) -> Any:
        raise RuntimeError("CommitFailedError: partitions revoked")

    await pipeline.submit(Prepared(0.0), 0, revoked, lambda _: None, ({TP: 0}, {TP: 1}))
    await pipeline.submit(Prepared(1.0), 0, revoked, lambda _: None, ({TP: 1}, {TP: 2}))
    await pipeline.drain()
    assert handler.done == [0.0, 1.0]


@dataclass
class ConsumerRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None = b"k"
    value: bytes = b"{}"
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = 0


@dataclass
class FakeConsumer:
    commits: list[Offsets] = field(default_factory=list)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)

    async def commit(self, offsets: Offsets) -> None:
        self.commits.append(offsets)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))


@dataclass
class BatchHandler(Handler):
    prepare_fails: int = 0

    async def prepare(self, deliveries: list[Any]) -> Prepared:
        if self.prepare_fails:
            self.prepare_fails -= 1
            raise ConnectionError("the dead-letter topic is unreachable")
        return Prepared(float(deliveries[0].offset))


async def test_user_batches_when_flowing_then_each_batch_commits_its_own_offsets() -> None:
    handler = BatchHandler()
    batches = UserBatches(handler, retry_delay=0)  # type: ignore[arg-type]
    consumer = FakeConsumer()
    await batches.consume([ConsumerRecord("t", 0, 0), ConsumerRecord("t", 0, 1)], consumer)
    await batches.consume([ConsumerRecord("t", 0, 2)], consumer)
    await batches.pipeline.drain()
    assert handler.done == [0.0, 2.0]
    assert consumer.commits == [{TopicPartition("t", 0): 2}, {TopicPartition("t", 0): 3}]
    assert consumer.seeks == []


async def test_user_batches_when_prepare_fails_then_rewound_and_earlier_batch_still_commits() -> (
    None
):
    handler = BatchHandler(delay=0.05)
    batches = UserBatches(handler, retry_delay=0)  # type: ignore[arg-type]
    consumer = FakeConsumer()
    await batches.consume([ConsumerRecord("t", 0, 0)], consumer)  # in stage 2 now
    handler.prepare_fails = 1
    await batches.consume([ConsumerRecord("t", 0, 1), ConsumerRecord("t", 1, 7)], consumer)
    await batches.pipeline.drain()
    assert consumer.seeks == [(TopicPartition("t", 0), 1), (TopicPartition("t", 1), 7)]
    assert handler.done == [0.0]
    assert consumer.commits == [{TopicPartition("t", 0): 1}]
