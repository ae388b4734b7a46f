"""Composition root of the order gateway: ``create_app()`` wires settings, database,
broker, the OPEX client, the credential store and `GatewayService` together, and serves
/health and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from starlette.applications import Starlette

from services.order_gateway.config import GatewaySettings, ServiceSettings
from services.order_gateway.domain.clock import system_clock
from services.order_gateway.handlers import GatewayService
from shared.contracts import ContractError, decode
from shared.credentials import CredentialStore, SecretBox
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
    MARKET_INSTRUMENTS,
    MARKET_TICKERS,
    ORDERS_APPROVED,
    USERS_EVENTS,
)
from shared.observability import Health, configure_logging, ops_routes
from shared.observability.tracing import configure_tracing
from shared.opex import OpexClient, OpexSettings

SERVICE = "order_gateway"
log = structlog.get_logger(__name__)


@dataclass
class GatewayApp:
    """Everything the process runs, for tests and benchmarks to drive directly."""

    settings: ServiceSettings
    db: Database
    broker: KafkaBroker
    relay: OutboxRelay
    opex: OpexClient
    service: GatewayService
    consumer: Consumer
    health: Health
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        await self.service.load()
        self.relay.start()
        await start_broker(self.broker)
        service = self.service
        loops: list[tuple[str, Coroutine[Any, Any, None]]] = [
            ("submit", service.submit_forever()),
            ("results", service.results_forever()),
            ("poll", service.poll_forever()),
            ("cancel", service.cancel_forever()),
            ("balances", service.balances_forever()),
            ("reconcile", service.reconcile_forever()),
            ("prune", service.prune_forever()),
        ]
        if self.settings.publish_market_data:
            loops.append(("market", service.market_data_forever()))
        for name, loop in loops:
            self._tasks.append(asyncio.create_task(_forever(name, loop), name=f"gateway-{name}"))
        log.info("order_gateway_started", orders=len(service.book))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.broker.stop()
        await self.service.stop()
        await self.relay.stop()
        await self.opex.aclose()
        await self.db.dispose()


async def _forever(name: str, loop: Coroutine[Any, Any, None]) -> None:
    try:
        await loop
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug: say so loudly; the health check reports the loop dead
        log.exception("gateway_loop_died", loop=name)
        raise


def build(
    settings: ServiceSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    database: DatabaseSettings | None = None,
    gateway: GatewaySettings | None = None,
    opex: OpexSettings | None = None,
    box: SecretBox | None = None,
) -> GatewayApp:
    settings = settings or ServiceSettings()
    kafka = kafka or KafkaSettings()
    database = database or DatabaseSettings()
    config = (gateway or GatewaySettings()).config()
    prefix = settings.topic_prefix
    db = Database.from_settings(database, settings.schema_name)
    broker = create_broker(kafka, service=SERVICE)
    relay = OutboxRelay(
        db,
        kafka,
        service=SERVICE,
        instance=settings.instance,
        topic_prefix=prefix,
        poll_interval=settings.outbox_poll_ms / 1000,
    )
    client = OpexClient(opex or OpexSettings())
    credentials = CredentialStore(
        db, box or SecretBox.from_settings(), schema=settings.credentials_schema
    )
    service = GatewayService(
        config=config,
        db=db,
        opex=client,
        credentials=credentials,
        clock=system_clock,
        topic_prefix=prefix,
        on_commit=relay.notify,
        place_concurrency=settings.place_concurrency,
        poll_concurrency=settings.poll_concurrency,
        min_poll_gap_ms=settings.min_poll_gap_ms,
        balances_interval_ms=settings.balances_interval_ms,
        balances_refresh_ms=settings.balances_refresh_ms,
        market_data_interval_ms=settings.market_data_interval_ms,
        instruments_interval_ms=settings.instruments_interval_ms,
        publish_market_data=settings.publish_market_data,
        market_heartbeat_ms=settings.market_heartbeat_ms,
        listing_margin_ms=settings.listing_margin_ms,
    )
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
    gateway_app = GatewayApp(settings, db, broker, relay, client, service, consumer, health)

    async def loops_ok() -> bool:
        return all(not task.done() for task in gateway_app._tasks)

    health.add("loops", loops_ok)

    async def on_approved(msg: KafkaMessage) -> None:
        raw = msg.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        record_lag(SERVICE, msg.consumer, records)
        deliveries = [Delivery.from_record(record) for record in records]
        async with service.lock:
            service.begin_batch()
            try:
                await consumer.process_batch(deliveries, service.handle_batch)
            finally:
                await service.end_batch()

    async def on_market(msg: KafkaMessage) -> None:
        raw = msg.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        envelopes = []
        for record in records:
            try:
                envelopes.append(
                    decode(record.value or b"", topic=record.topic.removeprefix(prefix))
                )
            except ContractError as error:  # the risk engine dead-letters market data
                log.warning("market_message_skipped", error=str(error)[:200])
        async with service.lock:
            service.on_market(envelopes)

    async def on_users(msg: KafkaMessage) -> None:
        raw = msg.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        envelopes = []
        for record in records:
            with contextlib.suppress(ContractError):  # user_sync dead-letters bad input
                envelopes.append(decode(record.value or b"", topic=USERS_EVENTS))
        service.on_users(envelopes)

    broker.subscriber(
        prefix + ORDERS_APPROVED,
        batch=True,
        max_records=settings.batch_size,
        batch_timeout_ms=settings.batch_timeout_ms,
        group_id=settings.group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        isolation_level="read_committed",
        fetch_max_wait_ms=settings.fetch_wait_ms,
        title="order_gateway: approved orders and cancels",
    )(on_approved)
    broker.subscriber(
        prefix + MARKET_INSTRUMENTS,
        prefix + MARKET_TICKERS,
        batch=True,
        max_records=settings.batch_size,
        batch_timeout_ms=settings.market_batch_timeout_ms,
        group_id=f"{settings.group_id}-market-{settings.instance}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        isolation_level="read_committed",
        fetch_max_wait_ms=settings.market_fetch_wait_ms,
        title="order_gateway: instruments and tickers (best prices, stop triggers)",
    )(on_market)
    broker.subscriber(
        prefix + USERS_EVENTS,
        batch=True,
        max_records=settings.batch_size,
        batch_timeout_ms=settings.side_batch_timeout_ms,
        group_id=None,  # no commits: every start reads who is provisioned from the start
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK_FIRST,
        isolation_level="read_committed",
        fetch_max_wait_ms=settings.side_fetch_wait_ms,
        title="order_gateway: provisioned users (balances to publish)",
    )(on_users)
    return gateway_app


def create_app() -> Starlette:
    """The gateway as an ASGI app: consuming and working while it runs, /health and
    /metrics."""
    settings = ServiceSettings()
    configure_logging(SERVICE, level=settings.log_level)
    configure_tracing(SERVICE)
    gateway_app = build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await gateway_app.start()
        try:
            yield
        finally:
            await gateway_app.stop()

    return Starlette(routes=ops_routes(gateway_app.health), lifespan=lifespan)
