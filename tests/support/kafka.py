"""Small real-broker helpers for tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from shared.messaging import KafkaSettings


async def produce(
    settings: KafkaSettings,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def read_all(
    settings: KafkaSettings,
    topic: str,
    *,
    expect: int | None = None,
    timeout: float = 30.0,
    idle: float = 1.0,
) -> list[ConsumerRecord[Any, Any]]:
    """Every committed record of ``topic`` from the beginning: until ``expect`` records
    arrived (then ``idle`` more seconds, to catch extras), or ``timeout``."""
    consumer = AIOKafkaConsumer(
        topic,
        **settings.aiokafka_kwargs(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    deadline = time.monotonic() + timeout
    reached_at: float | None = None
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
            if expect is not None and len(records) >= expect:
                reached_at = reached_at or time.monotonic()
                if time.monotonic() - reached_at >= idle:
                    break
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records


async def wait_for(predicate: Any, *, timeout: float = 30.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


class Tally:
    """Reads topics from the beginning in the background and keeps every record, so a
    test can react the moment enough have arrived (``await tally.reach(n)``)."""

    def __init__(self, settings: KafkaSettings, *topics: str) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics,
            **settings.aiokafka_kwargs(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
            group_id=None,
        )
        self.records: list[ConsumerRecord[Any, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Tally:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for part in batch.values():
                self.records.extend(part)

    async def reach(self, predicate: Any, *, timeout: float = 30.0) -> None:
        """Wait until ``predicate(records)`` is true."""
        deadline = time.monotonic() + timeout
        while not predicate(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not reached in {timeout}s ({len(self.records)} records)")
            await asyncio.sleep(0.01)
