"""user_sync's one FastStream subscriber, kept thin: ``users.events`` in batches, consumer
group `UserSyncSettings.group_id` (static membership per instance, so a restarted
process takes its partitions back at once), ``read_committed``, offsets committed only
after the batch's transaction (``NACK_ON_ERROR``). The Consumer decodes (undecodable:
DLQ), de-duplicates by message id (inbox) and runs `RegistrationHandler` in one
transaction; this service's own UserProvisioned / UserProvisioningFailed are skipped by
their header before any of that."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from services.user_sync.config import UserSyncSettings
from services.user_sync.handlers import RegistrationHandler
from shared.contracts import ContractError, Envelope, UserProvisioned, UserProvisioningFailed
from shared.messaging import Consumer, Delivery, Transaction
from shared.messaging.topics import USERS_EVENTS

__all__ = ["OWN_TYPES", "subscribe"]

OWN_TYPES = frozenset({UserProvisioned.TYPE.encode(), UserProvisioningFailed.TYPE.encode()})
"""What this service publishes on the topic it reads (``x-message-type``)."""


def _own(record: Any) -> bool:
    return any(k == "x-message-type" and v in OWN_TYPES for k, v in record.headers or ())


def subscribe(
    broker: KafkaBroker,
    settings: UserSyncSettings,
    consumer: Consumer,
    handler: RegistrationHandler,
) -> None:
    @broker.subscriber(
        settings.topic_prefix + USERS_EVENTS,
        batch=True,
        group_id=settings.group_id,
        group_instance_id=f"{settings.group_id}-{settings.instance_id}",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=2_000,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        isolation_level="read_committed",
        max_records=500,
        batch_timeout_ms=20,
        fetch_max_wait_ms=100,
    )
    async def on_users_events(msg: KafkaMessage) -> None:
        raw = msg.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        deliveries = [Delivery.from_record(r) for r in records if not _own(r)]
        if not deliveries:
            return

        async def batch(envelopes: Sequence[Envelope[Any]], tx: Transaction) -> None:
            by_id: dict[UUID, Delivery] = {}
            for delivery in deliveries:
                try:
                    by_id.setdefault(consumer.decode(delivery).id, delivery)
                except ContractError:
                    continue
            await handler.handle_batch(envelopes, tx, by_id)

        await consumer.process_batch(deliveries, batch, single=handler.handle)
