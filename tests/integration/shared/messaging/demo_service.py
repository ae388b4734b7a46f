"""A minimal service for the messaging tests, run in-process or as a subprocess:
consumes PlaceOrder from ``<prefix>orders.commands``, records an effect row and, in the
same transaction, publishes an OrderRejected through the outbox."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from shared.contracts import Envelope, OrderRejected, PlaceOrder, RejectReason, caused_by
from shared.db import Database
from shared.messaging import (
    Consumer,
    DeadLetters,
    Delivery,
    KafkaSettings,
    OutboxRelay,
    PermanentError,
    Transaction,
    create_broker,
)

effects = sa.Table(
    "effects",
    sa.MetaData(),
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("message_id", sa.Uuid),
    sa.Column("client_order_id", sa.String(64)),
)


@dataclass
class DemoService:
    broker: KafkaBroker
    relay: OutboxRelay
    consumer: Consumer
    db: Database

    async def start(self) -> None:
        await self.broker.start()
        self.relay.start()

    async def stop(self) -> None:
        await self.broker.stop()
        await self.relay.stop()
        await self.db.dispose()


def build(
    settings: KafkaSettings,
    database_url: str,
    schema: str,
    prefix: str,
    *,
    delay: float = 0.0,
    batch: bool = False,
) -> DemoService:
    db = Database(database_url, schema, pool_size=4)
    broker = create_broker(settings, service="demo")
    relay = OutboxRelay(db, settings, service="demo", instance=schema, topic_prefix=prefix)
    consumer = Consumer(
        name="demo",
        db=db,
        dead_letters=DeadLetters(broker, "demo"),
        on_commit=relay.notify,
        topic_prefix=prefix,
    )

    async def handle(envelope: Envelope[Any], tx: Transaction) -> None:
        order = envelope.data_as(PlaceOrder)
        if order.client_order_id.startswith("poison"):
            raise PermanentError("poisoned order", code="POISON")
        await tx.session.execute(
            sa.insert(effects).values(message_id=envelope.id, client_order_id=order.client_order_id)
        )
        if delay:
            await asyncio.sleep(delay)
        tx.publish(
            caused_by(
                envelope,
                OrderRejected(
                    client_order_id=order.client_order_id,
                    symbol=order.symbol,
                    side=order.side,
                    order_type=order.type,
                    quantity=order.quantity,
                    source="risk",
                    reason_code=RejectReason.INSUFFICIENT_BALANCE,
                    reason="demo",
                ),
            )
        )

    async def handle_batch(envelopes: Sequence[Envelope[Any]], tx: Transaction) -> None:
        for envelope in envelopes:
            await handle(envelope, tx)

    topic = prefix + "orders.commands"
    group = f"demo-{schema}"
    if batch:

        @broker.subscriber(
            topic,
            batch=True,
            max_records=50,
            group_id=group,
            group_instance_id=group,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            isolation_level="read_committed",
        )
        async def on_commands(msg: KafkaMessage) -> None:
            raw = msg.raw_message
            records = raw if isinstance(raw, tuple) else (raw,)
            await consumer.process_batch([Delivery.from_record(r) for r in records], handle_batch)

    else:

        @broker.subscriber(
            topic,
            group_id=group,
            group_instance_id=group,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            isolation_level="read_committed",
        )
        async def on_command(msg: KafkaMessage) -> None:
            await consumer.process(Delivery.from_record(msg.raw_message), handle)

    return DemoService(broker, relay, consumer, db)


async def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--batch", action="store_true")
    args = parser.parse_args()
    service = build(
        KafkaSettings(),
        args.database_url,
        args.schema,
        args.prefix,
        delay=args.delay,
        batch=args.batch,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await service.start()
    print("ready", flush=True)
    await stop.wait()
    await service.stop()


if __name__ == "__main__":
    asyncio.run(_main())
