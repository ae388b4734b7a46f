"""What the notifier does with a Kafka batch.

User events (``orders.events``, ``positions.events``, ``accounts.events``)::

    decode ─┬─ refused ─▶ <topic>.dlq
            └─ translate ─▶ record (one transaction: inbox, seqs, stream, latest state)
                              └─ committed ─▶ fan-out (enqueue only, never a socket)
    ─▶ return: only now does the subscriber commit the Kafka offsets

A failed transaction is retried: transient database errors forever with backoff,
others a few times, then the batch is split and the one message that still fails is
dead-lettered. Redelivered or already-recorded messages are pushed again from the
stream rows (the connections drop seqs they already sent), so a crash between the
database commit and the offset commit loses nothing and doubles nothing.

Tickers (``market.tickers``) go straight to the fan-out, latest per symbol.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import structlog

from services.notifier import metrics
from services.notifier.domain.events import TickerFrame, translate
from services.notifier.domain.stream import Record, Recorded, StreamEntry
from shared.contracts import ContractError, Envelope, decode
from shared.db import is_transient_db_error
from shared.messaging import Delivery

__all__ = [
    "Backoff",
    "DeadLetterSink",
    "FanOut",
    "Prepared",
    "Recorder",
    "TickerHandler",
    "UserEventsHandler",
]

log = structlog.get_logger(__name__)


class Recorder(Protocol):
    """The write side of the store (adapters/store.py `StreamStore`)."""

    async def record(self, records: Sequence[Record]) -> Recorded: ...

    async def entries_for(self, message_ids: Sequence[UUID]) -> list[StreamEntry]: ...


class FanOut(Protocol):
    """The in-process hub: it only enqueues (`publish` yields to the event loop between
    chunks, it never waits on a socket)."""

    def has_user(self, user_id: str) -> bool: ...

    async def publish(self, entries: Sequence[StreamEntry]) -> None: ...

    def publish_notice(self, frame: str) -> None: ...

    def publish_ticker(self, symbol: str, frame: str) -> None: ...


class DeadLetterSink(Protocol):
    async def send(self, delivery: Delivery, error: BaseException, *, attempts: int) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff; non-transient failures give up after
    ``max_attempts``."""

    max_attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass
class Prepared:
    """A decoded batch, ready to record."""

    started: float
    records: list[Record] = field(default_factory=list)
    origin: dict[UUID, Delivery] = field(default_factory=dict)


class UserEventsHandler:
    """Records a batch of user events and pushes what it committed."""

    def __init__(
        self,
        recorder: Recorder,
        fanout: FanOut,
        dead_letters: DeadLetterSink,
        *,
        topic_prefix: str = "",
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._recorder = recorder
        self._fanout = fanout
        self._dead_letters = dead_letters
        self._prefix = topic_prefix
        self._backoff = backoff or Backoff()
        self._sleep = sleep

    def _decode(self, delivery: Delivery) -> Envelope[Any]:
        return decode(delivery.value, topic=delivery.topic.removeprefix(self._prefix))

    async def handle(self, deliveries: Sequence[Delivery]) -> Recorded:
        """Record and push ``deliveries``; returns what was committed."""
        return await self.commit(await self.prepare(deliveries))

    async def prepare(self, deliveries: Sequence[Delivery]) -> Prepared:
        """Stage 1, no database: decode (dead-lettering what cannot be read),
        translate, drop repeats within the batch."""
        prepared = Prepared(time.perf_counter())
        for delivery in deliveries:
            try:
                envelope = self._decode(delivery)
            except ContractError as error:
                await self._dead_letters.send(delivery, error, attempts=1)
                metrics.STREAM_EVENTS.labels(outcome="dead_lettered").inc()
                continue
            item = translate(envelope)
            if item is None or isinstance(item, TickerFrame) or item.message_id in prepared.origin:
                continue
            prepared.origin[item.message_id] = delivery
            prepared.records.append(
                Record(item, delivery.topic, delivery.partition, delivery.offset)
            )
        return prepared

    async def commit(self, prepared: Prepared) -> Recorded:
        """Stage 2: record in one transaction, then push what it committed."""
        recorded = await self._record(prepared.records, prepared.origin)
        await self._push(recorded)
        metrics.STREAM_EVENTS.labels(outcome="recorded").inc(len(recorded.entries))
        metrics.STREAM_EVENTS.labels(outcome="duplicate").inc(len(recorded.duplicates))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - prepared.started)
        return recorded

    async def _record(self, records: list[Record], origin: dict[UUID, Delivery]) -> Recorded:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._recorder.record(records)
            except Exception as error:
                transient = is_transient_db_error(error)
                if transient or attempt < self._backoff.max_attempts:
                    delay = self._backoff.delay(attempt)
                    log.warning(
                        "record_retry",
                        attempt=attempt,
                        transient=transient,
                        batch=len(records),
                        error=f"{type(error).__name__}: {error}"[:500],
                        delay_s=round(delay, 3),
                    )
                    await self._sleep(delay)
                    continue
                if len(records) > 1:
                    log.warning("record_split", batch=len(records))
                    return await self._one_by_one(records, origin)
                log.error("record_failed", attempts=attempt, exc_info=error)
                await self._dead_letters.send(
                    origin[records[0].message_id], error, attempts=attempt
                )
                metrics.STREAM_EVENTS.labels(outcome="dead_lettered").inc()
                return Recorded()

    async def _one_by_one(self, records: list[Record], origin: dict[UUID, Delivery]) -> Recorded:
        merged = Recorded()
        for record in records:
            part = await self._record([record], origin)
            merged.entries.extend(part.entries)
            merged.duplicates.extend(part.duplicates)
            merged.notices.extend(part.notices)
        return merged

    async def _push(self, recorded: Recorded) -> None:
        if recorded.entries:
            await self._fanout.publish(recorded.entries)
        watched = [i.message_id for i in recorded.duplicates if self._fanout.has_user(i.user_id)]
        if watched:
            await self._fanout.publish(await self._recorder.entries_for(watched))
        for notice in recorded.notices:
            self._fanout.publish_notice(notice.frame)


class TickerHandler:
    """Pushes the latest ticker of each symbol in a batch; nothing is stored. A ticker
    that cannot be read is logged and skipped: the notifier reads ``market.tickers``
    without a consumer group and leaves dead letters to the topic's owners."""

    def __init__(self, fanout: FanOut, *, topic_prefix: str = "") -> None:
        self._fanout = fanout
        self._prefix = topic_prefix

    def handle(self, deliveries: Sequence[Delivery]) -> int:
        latest: dict[str, str] = {}
        for delivery in deliveries:
            try:
                envelope = decode(delivery.value, topic=delivery.topic.removeprefix(self._prefix))
            except ContractError as error:
                log.warning("ticker_refused", error_code=str(error.code), offset=delivery.offset)
                continue
            ticker = translate(envelope)
            if isinstance(ticker, TickerFrame):
                latest[ticker.symbol] = ticker.frame
        for symbol, text in latest.items():
            self._fanout.publish_ticker(symbol, text)
        return len(latest)
