"""Small aiokafka helpers shared by the ``opexbridge`` ops commands (dlq, tail, top,
publish): clients from :class:`KafkaSettings`, topic names with the prefix, and reading
a topic up to the end it had when the read started."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.messaging import KafkaSettings

DLQ_SUFFIX = ".dlq"


def prefix_or_env(prefix: str | None) -> str:
    """``prefix``, or ``OPEXBRIDGE_TOPIC_PREFIX`` when None."""
    return prefix if prefix is not None else os.environ.get("OPEXBRIDGE_TOPIC_PREFIX", "")


def full_topic(topic: str, prefix: str | None) -> str:
    """``topic`` with the prefix in front, unless it already starts with it."""
    pre = prefix_or_env(prefix)
    return topic if not pre or topic.startswith(pre) else pre + topic


def dlq_of(topic: str, prefix: str | None) -> str:
    """The dead-letter topic for ``topic`` (which may already name the ``.dlq``)."""
    name = full_topic(topic, prefix)
    return name if name.endswith(DLQ_SUFFIX) else name + DLQ_SUFFIX


@asynccontextmanager
async def admin_client(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs(), client_id="opexbridge-cli")
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def raw_consumer(
    settings: KafkaSettings, *, group_id: str | None = None, **extra: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer with nothing subscribed (``assign`` partitions yourself) that never
    commits on its own."""
    consumer = AIOKafkaConsumer(
        **settings.aiokafka_kwargs(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="opexbridge-cli",
        **extra,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


@asynccontextmanager
async def safe_producer(settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer whose writes are acknowledged by all in-sync replicas."""
    producer = AIOKafkaProducer(
        **settings.aiokafka_kwargs(),
        acks="all",
        enable_idempotence=True,
        client_id="opexbridge-cli",
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def partitions_of(settings: KafkaSettings, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``; ``LookupError`` when the cluster has no such topic."""
    found = await partition_counts(settings, [topic])
    if not found.get(topic):
        raise LookupError(f"no topic {topic!r} on the cluster")
    return [TopicPartition(topic, p) for p in range(found[topic])]


async def partition_counts(
    settings: KafkaSettings, topics: list[str] | None = None
) -> dict[str, int]:
    """Partitions per topic of ``topics`` (all topics when None) that exist."""
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        names = [t for t in (topics if topics is not None else existing) if t in existing]
        if not names:
            return {}
        described = await admin.describe_topics(names)
    return {
        t["topic"]: len(t["partitions"])
        for t in described
        if not t.get("error_code") and t["partitions"]
    }
