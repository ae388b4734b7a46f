from __future__ import annotations

import asyncio
import enum
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
import structlog
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import ContractError, Envelope, decode
from shared.db import Database, is_transient_db_error
from shared.messaging._dlq import DeadLetters
from shared.messaging._outbox import stage
from shared.messaging._tables import INBOX_CLAIM, inbox_table
from shared.observability.metrics import CONSUMER_LAG, MESSAGES_CONSUMED, PROCESSING_SECONDS
from shared.observability.tracing import TraceContext, parse_traceparent, span, use_trace

log = structlog.get_logger(__name__)


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


class PermanentError(Exception):
    """Raised by a handler for a message that can never succeed: dead-letter it now.

    ``code`` becomes the dead letter's error code."""

    def __init__(self, message: str, *, code: str = "PERMANENT") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Kafka record as a consumer received it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_record(cls, record: Any) -> Delivery:
        """From an aiokafka ``ConsumerRecord`` (FastStream's ``msg.raw_message``)."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value if record.value is not None else b"",
            headers=tuple(record.headers or ()),
        )

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None


@dataclass
class Transaction:
    """What a handler gets for one message: the open database session of the unit of
    work and a way to publish messages when, and only if, it commits."""

    session: AsyncSession
    delivery: Delivery | None = None
    _outgoing: list[tuple[Envelope[Any], str | None, bytes | None]] = field(default_factory=list)

    def publish(
        self, envelope: Envelope[Any], *, topic: str | None = None, encoded: bytes | None = None
    ) -> None:
        """Publish ``envelope`` (to its model's topic unless ``topic`` is given) if the
        transaction commits; ``encoded`` is ``encode(envelope)`` when the caller has it."""
        self._outgoing.append((envelope, topic, encoded))


Handler = Callable[[Envelope[Any], Transaction], Awaitable[None]]
BatchHandler = Callable[[Sequence[Envelope[Any]], Transaction], Awaitable[None]]
"""Handles the new messages of a batch, in delivery order, in one transaction."""


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff with full jitter. Transient failures retry forever (they are never
    dead-lettered early); other failures ``max_attempts`` times, then dead-letter."""

    max_attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def _as_single(handler: BatchHandler) -> Handler:
    async def single(envelope: Envelope[Any], tx: Transaction) -> None:
        await handler([envelope], tx)

    return single


class Consumer:
    """Runs one handler per message exactly once, however often Kafka delivers it.

    For each delivery: decode (a :class:`ContractError` dead-letters it at once);
    then, in one database transaction, record ``(consumer, message id)`` in the inbox
    — a message already there is a duplicate and changes nothing — run the handler, and
    stage what it publishes in the outbox. Only after :meth:`process` returns may the
    caller commit the Kafka offset, so a crash at any point redelivers, and the inbox
    turns the redelivery into a no-op.
    """

    def __init__(
        self,
        *,
        name: str,
        db: Database,
        dead_letters: DeadLetters,
        retry: RetryPolicy | None = None,
        on_commit: Callable[[], None] | None = None,
        max_message_bytes: int | None = None,
        topic_prefix: str = "",
    ) -> None:
        self.name = name
        self._db = db
        self._dead_letters = dead_letters
        self._retry = retry or RetryPolicy()
        self._on_commit = on_commit
        self._max_bytes = max_message_bytes
        self._prefix = topic_prefix

    def decode(self, delivery: Delivery) -> Envelope[Any]:
        topic = delivery.topic.removeprefix(self._prefix)
        if self._max_bytes is None:
            return decode(delivery.value, topic=topic)
        return decode(delivery.value, topic=topic, max_size=self._max_bytes)

    async def process(self, delivery: Delivery, handler: Handler) -> Outcome:
        started = time.perf_counter()
        try:
            envelope = self.decode(delivery)
        except ContractError as error:
            await self._dead_letters.send(delivery, error, attempts=1)
            return self._done(delivery, Outcome.DEAD_LETTERED, started)
        trace = parse_traceparent(delivery.header("traceparent")) or TraceContext.of(
            envelope.correlation_id, envelope.id
        )
        with (
            structlog.contextvars.bound_contextvars(
                correlation_id=str(envelope.correlation_id),
                message_id=str(envelope.id),
                message_type=envelope.type,
            ),
            use_trace(trace),
            span(f"{self.name} consume {delivery.topic}", trace, message_type=envelope.type),
        ):
            outcome = await self._run(delivery, envelope, handler)
        return self._done(delivery, outcome, started)

    async def process_batch(
        self,
        deliveries: Sequence[Delivery],
        handler: BatchHandler,
        *,
        single: Handler | None = None,
    ) -> list[Outcome]:
        """Process a batch in one transaction: one inbox insert for all of it, one call
        of ``handler`` with the messages not seen before (in delivery order, so one
        user's messages keep their order), one outbox insert.

        Undecodable deliveries are dead-lettered first. If the batch fails for a reason
        that is not transient, it is retried message by message (with ``single``, or
        ``handler`` on a one-message list), so one poisoned message is dead-lettered
        alone and the others go through.
        """
        started = time.perf_counter()
        outcomes: list[Outcome | None] = [None] * len(deliveries)
        valid: list[tuple[int, Envelope[Any]]] = []
        for index, delivery in enumerate(deliveries):
            try:
                valid.append((index, self.decode(delivery)))
            except ContractError as error:
                await self._dead_letters.send(delivery, error, attempts=1)
                outcomes[index] = Outcome.DEAD_LETTERED
        attempt = 0
        while valid:
            attempt += 1
            try:
                fresh = await self._attempt_batch(deliveries, valid, handler)
            except Exception as error:
                if is_transient_db_error(error):
                    delay = self._retry.delay(min(attempt, 10))
                    log.warning("batch_retry", attempt=attempt, error=_short(error), delay_s=delay)
                    await asyncio.sleep(delay)
                    continue
                log.warning("batch_failed_isolating", size=len(valid), error=_short(error))
                one = single or _as_single(handler)
                for index, _ in valid:
                    outcomes[index] = await self.process(deliveries[index], one)
                break
            for index, envelope in valid:
                outcomes[index] = Outcome.PROCESSED if envelope.id in fresh else Outcome.DUPLICATE
            if fresh and self._on_commit is not None:
                self._on_commit()
            break
        done = [outcome or Outcome.DUPLICATE for outcome in outcomes]
        elapsed = time.perf_counter() - started
        # One labelled increment per (topic, outcome), not per message: this is the hot path.
        counts = Counter((d.topic, outcome) for d, outcome in zip(deliveries, done, strict=True))
        for (topic, outcome), n in counts.items():
            MESSAGES_CONSUMED.labels(consumer=self.name, topic=topic, outcome=outcome).inc(n)
        if deliveries:
            PROCESSING_SECONDS.labels(consumer=self.name, topic=deliveries[0].topic).observe(
                elapsed
            )
        return done

    async def _attempt_batch(
        self,
        deliveries: Sequence[Delivery],
        valid: Sequence[tuple[int, Envelope[Any]]],
        handler: BatchHandler,
    ) -> set[UUID]:
        claim: dict[UUID, Delivery] = {}
        for index, envelope in valid:
            claim.setdefault(envelope.id, deliveries[index])
        async with self._db.transaction() as session:
            inserted = await session.execute(
                INBOX_CLAIM,
                {
                    "rows": orjson.dumps(
                        [
                            {
                                "consumer": self.name,
                                "message_id": str(message_id),
                                "topic": d.topic,
                                "partition": d.partition,
                                "offset": d.offset,
                            }
                            for message_id, d in claim.items()
                        ]
                    ).decode()
                },
            )
            fresh = {row[0] for row in inserted}
            seen: set[UUID] = set()
            batch: list[Envelope[Any]] = []
            for _, envelope in valid:
                if envelope.id in fresh and envelope.id not in seen:
                    seen.add(envelope.id)
                    batch.append(envelope)
            if batch:
                tx = Transaction(session=session)
                await handler(batch, tx)
                await stage(session, tx._outgoing, topic_prefix=self._prefix)
        return fresh

    def _done(self, delivery: Delivery, outcome: Outcome, started: float) -> Outcome:
        MESSAGES_CONSUMED.labels(consumer=self.name, topic=delivery.topic, outcome=outcome).inc()
        PROCESSING_SECONDS.labels(consumer=self.name, topic=delivery.topic).observe(
            time.perf_counter() - started
        )
        return outcome

    async def _run(self, delivery: Delivery, envelope: Envelope[Any], handler: Handler) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await self._attempt(delivery, envelope, handler)
            except PermanentError as error:
                await self._dead_letters.send(delivery, error, attempts=attempt)
                return Outcome.DEAD_LETTERED
            except Exception as error:
                transient = is_transient_db_error(error)
                if not transient and attempt >= self._retry.max_attempts:
                    log.error("handler_failed", attempts=attempt, exc_info=error)
                    await self._dead_letters.send(delivery, error, attempts=attempt)
                    return Outcome.DEAD_LETTERED
                delay = self._retry.delay(attempt)
                log.warning(
                    "handler_retry",
                    attempt=attempt,
                    transient=transient,
                    error=f"{type(error).__name__}: {error}"[:500],
                    delay_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
                continue
            if outcome is Outcome.PROCESSED and self._on_commit is not None:
                self._on_commit()
            return outcome

    async def _attempt(
        self, delivery: Delivery, envelope: Envelope[Any], handler: Handler
    ) -> Outcome:
        async with self._db.transaction() as session:
            claimed = await session.execute(
                pg_insert(inbox_table)
                .values(
                    consumer=self.name,
                    message_id=envelope.id,
                    topic=delivery.topic,
                    partition=delivery.partition,
                    offset=delivery.offset,
                )
                .on_conflict_do_nothing()
                .returning(inbox_table.c.message_id)
            )
            if claimed.first() is None:
                log.info("duplicate_skipped")
                return Outcome.DUPLICATE
            tx = Transaction(session=session, delivery=delivery)
            await handler(envelope, tx)
            await stage(session, tx._outgoing, topic_prefix=self._prefix)
        return Outcome.PROCESSED


def record_lag(consumer_name: str, kafka_consumer: Any, records: Sequence[Any]) -> None:
    """Set ``opexbridge_consumer_lag_messages`` for each partition in ``records`` from the
    aiokafka consumer's high watermark (FastStream's ``msg.consumer``); a consumer
    without one (or a test double) is ignored."""
    highwater = getattr(kafka_consumer, "highwater", None)
    if highwater is None:
        return
    last: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        last[key] = max(last.get(key, -1), record.offset)
    from aiokafka import TopicPartition

    for (topic, partition), offset in last.items():
        mark = highwater(TopicPartition(topic, partition))
        if mark is not None:
            CONSUMER_LAG.labels(consumer_name, topic, str(partition)).set(max(0, mark - offset - 1))
