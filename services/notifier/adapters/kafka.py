"""The notifier's two FastStream subscribers, kept thin.

- user events: ``orders.events``, ``positions.events`` and ``accounts.events`` in one
  batch subscriber (one consumer, so a user's events of all three topics are recorded
  by one loop, one batch at a time), consumer group `NotifierSettings.consumer_group`
  with static membership, ``read_committed``. Batches go through a two-stage
  `Pipeline`: decoding batch N+1 overlaps the database round trip of batch N, while
  recording, pushing and committing offsets stay strictly in batch order. A batch's
  offsets are committed (explicitly, never beyond that batch) after its transaction
  and its push; the batches recorded while a commit is in flight share the next one.
- tickers: ``market.tickers`` without a consumer group, from the latest offset: only
  the current price matters, nothing is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiokafka.structs import TopicPartition
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy

from services.notifier import metrics
from services.notifier.config import NotifierSettings
from services.notifier.handlers import Prepared, TickerHandler, UserEventsHandler
from shared.messaging import Delivery
from shared.messaging.topics import (
    ACCOUNTS_EVENTS,
    MARKET_TICKERS,
    ORDERS_EVENTS,
    POSITIONS_EVENTS,
)

__all__ = ["USER_TOPICS", "Pipeline", "UserBatches", "batch_offsets", "subscribe"]

log = structlog.get_logger(__name__)

USER_TOPICS = (ORDERS_EVENTS, POSITIONS_EVENTS, ACCOUNTS_EVENTS)

Offsets = dict[TopicPartition, int]


async def _raw_batch(message: Any) -> tuple[tuple[Any, ...], Any]:
    """The decoder of both subscribers: the batch's raw records and its aiokafka consumer
    (explicit offsets, seeks), which the handlers take as their body. The handlers read
    the records themselves (`shared.contracts.decode`), so FastStream's JSON decoding of
    every body would be wasted work, and a second parser of the same untrusted bytes;
    and a handler asking for the message through ``Context`` would have it looked up in
    a worker thread, one thread hop per batch."""
    return _records(message), message.consumer


def _records(message: Any) -> tuple[Any, ...]:
    raw = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


def batch_offsets(records: Sequence[Any]) -> tuple[Offsets, Offsets]:
    """``(first, next)`` offset of each partition in a batch: where to rewind to, and
    what to commit once the batch is recorded."""
    first: Offsets = {}
    after: Offsets = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        first[partition] = min(first.get(partition, record.offset), record.offset)
        after[partition] = max(after.get(partition, 0), record.offset + 1)
    return first, after


class Pipeline:
    """Stage 2 (record, push, then commit the batch's offsets) runs in a task, one batch
    at a time and in order; ``submit`` returns once the previous batch's stage 2 is done, so
    the subscriber decodes the next batch meanwhile and at most two batches are in
    flight. If a stage 2 fails, every later batch already handed over is dropped
    uncommitted and the consumer rewinds to the failed batch, which comes again."""

    def __init__(self, handler: UserEventsHandler) -> None:
        self._handler = handler
        self._tail: asyncio.Task[None] | None = None
        self._committing: asyncio.Task[None] | None = None
        self._waiting: tuple[Callable[[Offsets], Awaitable[Any]], Offsets] | None = None
        self.generation = 0

    async def submit(
        self,
        prepared: Prepared,
        generation: int,
        commit: Callable[[Offsets], Awaitable[Any]],
        rewind: Callable[[Offsets], None],
        offsets: tuple[Offsets, Offsets],
    ) -> None:
        previous = self._tail
        self._tail = asyncio.create_task(
            self._stage2(previous, prepared, generation, commit, rewind, offsets)
        )
        if previous is not None:
            await asyncio.shield(previous)

    async def _stage2(
        self,
        previous: asyncio.Task[None] | None,
        prepared: Prepared,
        generation: int,
        commit: Callable[[Offsets], Awaitable[Any]],
        rewind: Callable[[Offsets], None],
        offsets: tuple[Offsets, Offsets],
    ) -> None:
        if previous is not None:
            await previous
        if generation != self.generation:
            return  # fetched before a rewind: it will come again
        first, after = offsets
        try:
            await self._handler.commit(prepared)
        except Exception:
            log.exception("batch_failed_rewinding")
            self.generation += 1
            try:
                rewind(first)
            except Exception as error:  # revoked meanwhile: the next owner redelivers
                log.warning("rewind_failed", error=f"{type(error).__name__}: {error}"[:300])
            return
        # the offset commit (a broker round trip) overlaps the next batch's transaction;
        # commits go out one after the other, in batch order, and the batches recorded
        # while one is in flight share the next (each partition's latest offset)
        waiting = self._waiting
        if waiting is not None and waiting[0] == commit:
            self._waiting = (commit, {**waiting[1], **after})
        elif self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit(commit, after))
        elif waiting is None:
            self._waiting = (commit, after)
            self._committing = asyncio.create_task(self._commit_waiting(self._committing))
        else:  # another consumer's offsets wait already (never the case in practice)
            self._committing = asyncio.create_task(
                self._commit_after(self._committing, commit, after)
            )

    async def _commit_waiting(self, previous: asyncio.Task[None]) -> None:
        """After ``previous``: one commit of every batch recorded meanwhile."""
        await previous
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            await self._commit(*waiting)

    async def _commit_after(
        self,
        previous: asyncio.Task[None],
        commit: Callable[[Offsets], Awaitable[Any]],
        after: Offsets,
    ) -> None:
        await previous
        await self._commit(commit, after)

    @staticmethod
    async def _commit(commit: Callable[[Offsets], Awaitable[Any]], after: Offsets) -> None:
        try:
            await commit(after)
        except Exception as error:  # e.g. partitions revoked: the next owner redelivers
            log.warning("offset_commit_failed", error=f"{type(error).__name__}: {error}"[:300])

    async def drain(self) -> None:
        """Wait for the batch in stage 2 and its offset commit (shutdown)."""
        if self._tail is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail
        if self._committing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._committing


class UserBatches:
    """What the user-events subscriber does with each batch: stage 1 here, stage 2 in
    the `Pipeline`; the consumer is the aiokafka one (explicit commits, seeks)."""

    def __init__(self, handler: UserEventsHandler, *, retry_delay: float = 1.0) -> None:
        self._handler = handler
        self._retry_delay = retry_delay
        self.pipeline = Pipeline(handler)

    async def consume(self, records: Sequence[Any], consumer: Any) -> None:
        pipeline = self.pipeline
        generation = pipeline.generation
        offsets = batch_offsets(records)

        def rewind(first: Offsets) -> None:
            for partition, offset in first.items():
                consumer.seek(partition, offset)

        try:
            prepared = await self._handler.prepare([Delivery.from_record(r) for r in records])
        except Exception:
            # e.g. a dead letter could not be written: this batch comes again (the one
            # in stage 2 before it is unaffected and still commits its own offsets)
            log.exception("batch_prepare_failed_rewinding")
            if generation == pipeline.generation:  # else an earlier batch rewound further
                rewind(offsets[0])
            await asyncio.sleep(self._retry_delay)
            return
        await pipeline.submit(prepared, generation, consumer.commit, rewind, offsets)
        newest = max((record.timestamp for record in records), default=None)
        if newest is not None and newest > 0:
            metrics.KAFKA_LAG.set(max(0.0, time.time() - newest / 1000))


def subscribe(
    broker: KafkaBroker,
    settings: NotifierSettings,
    users: UserEventsHandler,
    tickers: TickerHandler,
) -> Pipeline:
    prefix = settings.topic_prefix
    batches = UserBatches(users)

    @broker.subscriber(
        *(prefix + topic for topic in USER_TOPICS),
        batch=True,
        group_id=settings.consumer_group,
        # static membership: a restarted instance takes its partitions back at once
        # instead of waiting for its dead predecessor's session to time out
        group_instance_id=settings.consumer_group + "-member",
        session_timeout_ms=10_000,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw_batch,
        isolation_level="read_committed",
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        # a held fetch ends ~1 ms after records become readable, a transaction commit
        # included (measured on Kafka 4.1.1): a long wait adds no latency, a short one
        # costs an idle notifier a fetch round trip every few ms
        fetch_max_wait_ms=500,
    )
    async def on_user_events(batch: Any) -> None:
        records, consumer = batch
        await batches.consume(records, consumer)

    @broker.subscriber(
        prefix + MARKET_TICKERS,
        batch=True,
        group_id=None,
        auto_offset_reset="latest",
        ack_policy=AckPolicy.ACK_FIRST,
        decoder=_raw_batch,
        isolation_level="read_committed",
        max_records=1000,
        batch_timeout_ms=settings.batch_timeout_ms,
        # a held fetch ends ~1 ms after records become readable, a transaction commit
        # included (measured on Kafka 4.1.1): a long wait adds no latency, a short one
        # costs an idle notifier a fetch round trip every few ms
        fetch_max_wait_ms=500,
    )
    async def on_tickers(batch: Any) -> None:
        tickers.handle([Delivery.from_record(record) for record in batch[0]])

    return batches.pipeline
