from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import murmur2
from sqlalchemy import Text, cast, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import Envelope, encode, partition_key
from shared.db import Database, is_transient_db_error
from shared.messaging._broker import KafkaSettings
from shared.messaging._tables import OUTBOX_DELETE, outbox_table
from shared.messaging.topics import OUTBOX_PROGRESS
from shared.observability.metrics import OUTBOX_PUBLISHED

log = structlog.get_logger(__name__)
_NO_SPAN = "0" * 15 + "1"  # traceparent_for's span id for a message id whose first half is 0


def _uuid_text(hex_digits: str) -> str:
    """``str(UUID(hex=hex_digits))`` for 32 lower-case hex digits."""
    h = hex_digits
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def message_headers(envelope: Envelope[Any]) -> dict[str, str]:
    """Headers that let tools filter without parsing the body.

    ``traceparent`` is `traceparent_for` (the correlation id as the trace, the first 64
    bits of the message id as the span), written here from the ids' hex digits that
    the other headers use too: this runs for every message a service publishes."""
    message_hex, correlation_hex = envelope.id.hex, envelope.correlation_id.hex
    span = message_hex[:16]
    headers = {
        "content-type": "application/json",
        "x-message-type": envelope.type,
        "x-message-id": _uuid_text(message_hex),
        "x-correlation-id": _uuid_text(correlation_hex),
        "traceparent": f"00-{correlation_hex}-{span if span.strip('0') else _NO_SPAN}-01",
    }
    if envelope.user_id is not None:
        headers["x-user-id"] = envelope.user_id
    return headers


# Rows travel as one JSON document (see _tables.py) but their payloads do not: they
# are concatenated into one bytea parameter (escaped by libpq, in C) and cut out again
# by offset, which spares JSON-escaping every quote of every payload twice over.
_STAGE = text(
    """
    INSERT INTO outbox (message_id, topic, key, payload, headers)
    SELECT message_id, topic, convert_to(key, 'UTF8'),
           substring(CAST(:payloads AS bytea) FROM start + 1 FOR size), headers
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
        AS x(n int, message_id uuid, topic text, key text, headers jsonb, start int, size int)
    ORDER BY n
    """
)


async def stage(
    session: AsyncSession,
    outgoing: Iterable[
        tuple[Envelope[Any], str | None] | tuple[Envelope[Any], str | None, bytes | None]
    ],
    *,
    topic_prefix: str = "",
) -> int:
    """Write messages to the outbox inside the caller's transaction. They are published
    by :class:`OutboxRelay` if, and only if, that transaction commits."""
    items = list(outgoing)
    if items:
        rows = []
        payloads = []
        start = 0
        for n, item in enumerate(items):
            envelope, topic = item[0], item[1]
            encoded = item[2] if len(item) > 2 else None
            payload = encoded or encode(envelope)
            payloads.append(payload)
            rows.append(
                {
                    "n": n,
                    "message_id": str(envelope.id),
                    "topic": topic_prefix + (topic or envelope.topic),
                    "key": partition_key(envelope).decode(),
                    "headers": message_headers(envelope),
                    "start": start,
                    "size": len(payload),
                }
            )
            start += len(payload)
        await session.execute(
            _STAGE, {"rows": orjson.dumps(rows).decode(), "payloads": b"".join(payloads)}
        )
    return len(items)


PROGRESS_TOPIC = OUTBOX_PROGRESS
"""Holds no messages: the relay commits its progress as a consumer-group offset on
partition 0 of this topic, inside the Kafka transaction that publishes the batch."""

_MAX_METADATA_CHARS = 3000  # Kafka's offset.metadata.max.bytes defaults to 4096


def encode_ids(ids: Sequence[int]) -> str:
    """Sorted row ids as compact ranges: ``1-4,7,9-10``."""
    parts: list[str] = []
    ordered = sorted(ids)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def decode_ids(text: str) -> list[int]:
    ids: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        ids.extend(range(int(low), int(high or low) + 1))
    return ids


@functools.lru_cache(maxsize=65536)
def _key_hash(key: bytes) -> int:
    """aiokafka's (and Java's) default partitioner hash of a key, cached: a service
    publishes for the same users and symbols over and over."""
    hashed: int = murmur2(key)
    return hashed & 0x7FFFFFFF


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a delivery's outcome as seen (a failure also fails the commit)."""
    if not future.cancelled():
        future.exception()


_MAX_BATCH_BYTES = 512 * 1024
"""Record batches the relay builds (below the broker's 1 MiB ``message.max.bytes``)."""


def _fitting(rows: Sequence[Any]) -> Sequence[Any]:
    """The longest prefix of ``rows`` whose ids fit in the offset metadata."""
    if len(encode_ids([row.id for row in rows])) <= _MAX_METADATA_CHARS:
        return rows
    low, high = 1, len(rows)
    while low < high:
        mid = (low + high + 1) // 2
        if len(encode_ids([row.id for row in rows[:mid]])) <= _MAX_METADATA_CHARS:
            low = mid
        else:
            high = mid - 1
    return rows[:low]


def relay_name(service: str, instance: str, topic_prefix: str = "") -> str:
    """The relay's Kafka transactional id and progress consumer group:
    ``[<topic prefix>]<service>-outbox-<instance>``. The prefix keeps two suites sharing
    a broker (each with its own topic prefix) from fencing each other's relays."""
    return f"{topic_prefix}{service}-outbox-{instance}"


class OutboxRelay:
    """Publishes committed outbox rows, in id order, exactly once.

    Each batch is published in one Kafka transaction (a transactional producer whose
    id, `relay_name`, is fixed per topic prefix and service instance, so a restarted
    relay fences its predecessor).
    The same transaction commits, as the offset metadata of a consumer group on
    :data:`PROGRESS_TOPIC`, the ids of the rows it carries. After the transaction the
    rows are deleted. If the process dies between the two, the next start reads the
    committed ids back and deletes those rows instead of sending them again; if it dies
    before the Kafka commit, the transaction is aborted and the rows are still there.
    Rows are locked ``FOR UPDATE SKIP LOCKED`` while they are sent, so several relay
    instances never take the same row. Consumers read with ``read_committed``.
    """

    def __init__(
        self,
        db: Database,
        settings: KafkaSettings,
        *,
        service: str,
        instance: str = "0",
        topic_prefix: str = "",
        batch_size: int = 500,
        poll_interval: float = 0.5,
        linger: float = 0.0,
    ) -> None:
        """``linger``: seconds the relay waits after a `notify` before it reads rows, so
        the commits of that moment go out in one Kafka transaction instead of one each
        (a transaction is several broker round trips whatever its size)."""
        self._db = db
        self._settings = settings
        self._service = service
        self._name = relay_name(service, instance, topic_prefix)
        self._progress = TopicPartition(topic_prefix + PROGRESS_TOPIC, 0)
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._linger = linger
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._batches = 0

    def notify(self) -> None:
        """Tell the relay that a transaction with outbox rows has just committed."""
        self._wake.set()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self._settings.aiokafka_kwargs(),
                client_id=self._name,
                transactional_id=self._name,
                enable_idempotence=True,
                acks="all",
                linger_ms=self._settings.linger_ms,
                max_batch_size=_MAX_BATCH_BYTES,
                max_request_size=2 * _MAX_BATCH_BYTES,
            )
            await producer.start()
            try:
                await self._recover()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _recover(self) -> None:
        """Delete the rows of a batch that Kafka committed but the database did not."""
        admin = AIOKafkaAdminClient(**self._settings.aiokafka_kwargs())
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self._name)
        finally:
            await admin.close()
        committed = offsets.get(self._progress)
        if committed is None or not committed.metadata:
            return
        ids = decode_ids(committed.metadata)
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(outbox_table).where(outbox_table.c.id.in_(ids)).returning(outbox_table.c.id)
            )
            already = len(result.all())
        if already:
            log.info("outbox_recovered", rows=already)

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        producer = await self._ensure_producer()
        async with self._db.transaction() as session:
            selected: Sequence[Any] = (
                await session.execute(
                    select(
                        outbox_table.c.id,
                        outbox_table.c.topic,
                        outbox_table.c.key,
                        outbox_table.c.payload,
                        # parsed by orjson in _publish, not by psycopg's stdlib json
                        cast(outbox_table.c.headers, Text).label("headers"),
                    )
                    .order_by(outbox_table.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not selected:
                return 0
            rows = _fitting(selected)
            self._batches += 1
            async with producer.transaction():
                await self._publish(producer, rows)
                await producer.send_offsets_to_transaction(
                    {self._progress: (self._batches, encode_ids([row.id for row in rows]))},
                    self._name,
                )
            await self._forget(session, [row.id for row in rows])
        for topic, n in Counter(row.topic for row in rows).items():
            OUTBOX_PUBLISHED.labels(service=self._service, topic=topic).inc(n)
        return len(rows)

    @staticmethod
    async def _publish(producer: AIOKafkaProducer, rows: Sequence[Any]) -> None:
        """Send ``rows`` in order within the open transaction: one record batch per
        partition (partitioned as ``producer.send`` would: the default partitioner's hash
        of the key), so each message costs an append, not a future and a queue lookup.
        The transaction's commit is what tells whether they were delivered."""
        futures: list[asyncio.Future[Any]] = []
        partitions: dict[str, list[int]] = {}
        builders: dict[tuple[str, int], Any] = {}
        for row in rows:
            topic, key, value = row.topic, row.key, row.payload
            headers = [
                (k, (v if type(v) is str else str(v)).encode())
                for k, v in orjson.loads(row.headers).items()
            ]
            if key is None:  # the partitioner would pick one at random
                futures.append(await producer.send(topic, value, headers=headers))
                continue
            known = partitions.get(topic)
            if known is None:
                known = partitions[topic] = list(await producer.partitions_for(topic))
            partition = known[_key_hash(bytes(key)) % len(known)]
            builder = builders.get((topic, partition))
            if builder is None:
                builder = builders[topic, partition] = producer.create_batch()
            if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                futures.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[topic, partition] = producer.create_batch()
                if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                    raise MessageSizeTooLargeError(f"outbox row {row.id} does not fit a batch")
        for (topic, partition), builder in builders.items():
            futures.append(await producer.send_batch(builder, topic, partition=partition))
        for future in futures:
            future.add_done_callback(_retrieve)

    async def _forget(self, session: AsyncSession, ids: list[int]) -> None:
        """Delete rows the broker has committed (within the batch's transaction)."""
        await session.execute(OUTBOX_DELETE, {"ids": ids})

    async def drain(self) -> int:
        """Publish until the outbox is empty (tests, shutdown)."""
        total = 0
        while n := await self.relay_once():
            total += n
        return total

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                published = await self.relay_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                delay = min(5.0, 0.1 * 2 ** min(failures, 6))
                log.warning(
                    "outbox_relay_failed",
                    transient=is_transient_db_error(error),
                    error=f"{type(error).__name__}: {error}"[:500],
                    retry_in_s=delay,
                )
                await self._reset_producer()
                await asyncio.sleep(delay)
                continue
            if published < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                    if self._linger > 0:
                        await asyncio.sleep(self._linger)

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._reset_producer()
