"""Composition root of the risk engine: ``create_app()`` wires settings, database,
broker, the domain engine and the HTTP surface (/health, /metrics) together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy
from starlette.applications import Starlette

from services.risk_engine.config import RiskSettings, ServiceSettings
from services.risk_engine.domain.clock import system_clock
from services.risk_engine.domain.engine import RiskEngine
from services.risk_engine.handlers import RiskService
from shared.db import Database, DatabaseSettings
from shared.messaging import (
    Consumer,
    DeadLetters,
    Delivery,
    KafkaSettings,
    OutboxRelay,
    create_broker,
    record_lag,
    start_broker,
)
from shared.messaging.topics import (
    ACCOUNTS_EVENTS,
    MARKET_INSTRUMENTS,
    MARKET_TICKERS,
    ORDERS_COMMANDS,
    ORDERS_EVENTS,
    USERS_EVENTS,
)
from shared.observability import Health, configure_logging, ops_routes
from shared.observability.tracing import configure_tracing

SERVICE = "risk_engine"
USER_TOPICS = (ORDERS_COMMANDS, ORDERS_EVENTS, ACCOUNTS_EVENTS, USERS_EVENTS)
MARKET_TOPICS = (MARKET_INSTRUMENTS, MARKET_TICKERS)
log = structlog.get_logger(__name__)
RELAY_BATCH_ROWS = 5000
"""Outbox rows per Kafka transaction: a transaction is several broker round trips
whatever its size, and behind a busy consumer each of them waits for the event loop."""


@dataclass
class RiskApp:
    """Everything the process runs, for tests and benchmarks to drive directly."""

    settings: ServiceSettings
    db: Database
    broker: KafkaBroker
    relay: OutboxRelay
    service: RiskService
    consumer: Consumer
    health: Health
    _ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.service.rebuild(self.db)
        # The engine keeps many small long-lived objects without reference cycles; the
        # cyclic GC rescanning them halved batch throughput as the state grew. Collect
        # rarely, and never look again at what exists after the rebuild.
        gc.set_threshold(50_000, 20, 100)
        gc.collect()
        gc.freeze()
        self.relay.start()
        await start_broker(self.broker)
        self._ticker = asyncio.create_task(self._tick_forever(), name="risk-tick")
        log.info("risk_engine_started")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.broker.stop()
        await self.relay.stop()
        await self.db.dispose()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval_s)
            try:
                async with self.db.transaction() as session:
                    staged = await self.service.tick(
                        session, topic_prefix=self.settings.topic_prefix
                    )
                if staged:
                    self.relay.notify()
            except Exception as error:
                self.health.last_error = f"tick: {type(error).__name__}: {error}"[:300]
                log.warning("risk_tick_failed", error=self.health.last_error)
                await self.service.rebuild(self.db)


def build(
    settings: ServiceSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    database: DatabaseSettings | None = None,
    risk: RiskSettings | None = None,
) -> RiskApp:
    settings = settings or ServiceSettings()
    kafka = kafka or KafkaSettings()
    database = database or DatabaseSettings()
    risk = risk or RiskSettings()
    prefix = settings.topic_prefix
    db = Database.from_settings(database, settings.schema_name)
    broker = create_broker(kafka, service=SERVICE)
    relay = OutboxRelay(
        db,
        kafka,
        service=SERVICE,
        instance=settings.instance,
        topic_prefix=prefix,
        batch_size=RELAY_BATCH_ROWS,
        # batches commit often; the relay publishes what a few of them staged in one go
        linger=settings.relay_linger_ms / 1000,
    )
    limits = risk.limits()
    service = RiskService(RiskEngine(clock=system_clock), limits, clock=system_clock)
    consumer = Consumer(
        name=SERVICE,
        db=db,
        dead_letters=DeadLetters(broker, SERVICE),
        on_commit=relay.notify,
        topic_prefix=prefix,
    )
    health = Health(SERVICE)
    health.add("database", db.ping)

    async def kafka_ok() -> bool:
        return await broker.ping(2.0)

    health.add("kafka", kafka_ok)

    async def keep_raw(message: Any) -> tuple[tuple[Any, ...], Any]:
        """The handler's body: the batch's raw records (decoded by the contracts' codec,
        not by FastStream's JSON decoding of each body) and the aiokafka consumer. A
        handler asking for the message through FastStream's ``Context`` would have it
        looked up in a worker thread, one thread hop per batch."""
        raw = message.raw_message
        return (raw if isinstance(raw, tuple) else (raw,)), message.consumer

    async def on_records(batch: Any) -> None:
        records, kafka_consumer = batch
        record_lag(SERVICE, kafka_consumer, records)
        await consumer.process_batch(
            [Delivery.from_record(record) for record in records], service.handle_batch
        )

    broker.subscriber(
        *(prefix + topic for topic in USER_TOPICS),
        batch=True,
        max_records=settings.batch_size,
        batch_timeout_ms=settings.batch_timeout_ms,
        group_id=settings.group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        isolation_level="read_committed",
        fetch_min_bytes=settings.fetch_min_bytes,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        decoder=keep_raw,
        title="risk_engine: commands and user events",
    )(on_records)
    broker.subscriber(
        *(prefix + topic for topic in MARKET_TOPICS),
        batch=True,
        max_records=settings.batch_size,
        batch_timeout_ms=settings.batch_timeout_ms,
        group_id=f"{settings.group_id}-market-{settings.instance}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        isolation_level="read_committed",
        decoder=keep_raw,
        title="risk_engine: instruments and tickers",
    )(on_records)
    return RiskApp(settings, db, broker, relay, service, consumer, health)


def create_app() -> Starlette:
    """The risk engine as an ASGI app: consuming while it runs, /health and /metrics."""
    settings = ServiceSettings()
    configure_logging(SERVICE, level=settings.log_level)
    configure_tracing(SERVICE)
    risk_app = build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await risk_app.start()
        try:
            yield
        finally:
            await risk_app.stop()

    return Starlette(routes=ops_routes(risk_app.health), lifespan=lifespan)
