"""user_sync's composition root: ``create_app()`` wires settings, the database, the
encryption keys, the OPEX client, the Kafka subscriber, the worker, the outbox relay and
the reconcile job into one ASGI app (``/health``, ``/metrics``) whose lifespan starts
and stops them.

One path to follow: ``users.events`` → adapters/kafka.py → handlers.py
(`RegistrationHandler`) → adapters/store.py (a provisioning row); then worker.py →
handlers.py (`Provisioner.step`, OPEX) → domain/provisioning.py (`settle`) →
adapters/store.py (`save`: the state, the encrypted credentials, the outcome in the
outbox) → the relay → ``users.events``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from faststream.kafka import KafkaBroker
from starlette.applications import Starlette

from services.user_sync.adapters.kafka import subscribe
from services.user_sync.adapters.store import ProvisioningStore
from services.user_sync.config import SERVICE, UserSyncSettings
from services.user_sync.domain.provisioning import Decision, Provisioning
from services.user_sync.handlers import Provisioner, RegistrationHandler
from services.user_sync.reconcile import Reconciler
from services.user_sync.worker import Hooks, Worker
from shared.credentials import SecretBox
from shared.db import Database, DatabaseSettings
from shared.messaging import (
    Consumer,
    DeadLetters,
    KafkaSettings,
    OutboxRelay,
    create_broker,
    start_broker,
)
from shared.observability import Health, ops_routes
from shared.opex import OpexClient, OpexSettings

__all__ = ["UserSync", "crash_hooks", "create_app"]

log = structlog.get_logger(__name__)


@dataclass
class UserSync:
    """The running parts of one user_sync process."""

    settings: UserSyncSettings
    db: Database
    broker: KafkaBroker
    relay: OutboxRelay
    store: ProvisioningStore
    worker: Worker
    reconciler: Reconciler
    opex: OpexClient
    health: Health

    async def start(self) -> None:
        self.relay.start()
        self.worker.start()
        self.reconciler.start()
        await start_broker(self.broker)
        log.info(
            "user_sync_started",
            group=self.settings.group_id,
            instance=self.settings.instance_id,
            topic_prefix=self.settings.topic_prefix,
            schema=self.settings.schema_name,
        )

    async def stop(self) -> None:
        await self.broker.stop()
        await self.reconciler.stop()
        await self.worker.stop()
        await self.relay.stop()
        await self.opex.aclose()
        await self.db.dispose()
        log.info("user_sync_stopped")


def _kill_self() -> None:
    """SIGKILL this process: no cleanup, no flush (crash tests)."""
    os.kill(os.getpid(), signal.SIGKILL)


def crash_hooks(settings: UserSyncSettings) -> Hooks | None:
    """``USER_SYNC_TEST_CRASH_BEFORE`` / ``_AFTER``: kill the process right before the
    commit of a decision that reaches that step, or right after it."""
    before, after = settings.test_crash_before, settings.test_crash_after
    if before is None and after is None:
        return None
    log.warning("test_crash_hooks_armed", before=before, after=after)

    async def before_commit(state: Provisioning, decision: Decision) -> None:
        if before is not None and decision.state.step is before and state.step is not before:
            _kill_self()

    async def after_commit(state: Provisioning, decision: Decision) -> None:
        if after is not None and state.step is after:
            _kill_self()

    return Hooks(before_commit=before_commit, after_commit=after_commit)


def build(
    settings: UserSyncSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    database_url: str | None = None,
    opex: OpexSettings | None = None,
    box: SecretBox | None = None,
    hooks: Hooks | None = None,
) -> UserSync:
    """Every part, wired and not started."""
    settings = settings or UserSyncSettings()
    kafka = kafka or KafkaSettings()
    db = Database(
        database_url or DatabaseSettings().database_url,
        settings.schema_name,
        pool_size=settings.db_pool_size,
    )
    box = box or SecretBox.from_settings()
    client = OpexClient(opex or OpexSettings())
    broker = create_broker(kafka, service=SERVICE, log_level=logging.DEBUG)
    relay = OutboxRelay(
        db,
        kafka,
        service=SERVICE,
        instance=settings.instance_id,
        topic_prefix=settings.topic_prefix,
        batch_size=500,
        poll_interval=0.5,
    )
    store = ProvisioningStore(
        db,
        box,
        owner=settings.instance_id,
        lease_s=settings.lease_s,
        topic_prefix=settings.topic_prefix,
        service=SERVICE,
    )
    worker = Worker(
        store,
        Provisioner(client),
        settings.retry_policy(),
        concurrency=settings.concurrency,
        poll_interval_s=settings.poll_interval_s,
        on_published=relay.notify,
        hooks=hooks if hooks is not None else crash_hooks(settings),
    )

    def committed() -> None:
        worker.notify()
        relay.notify()

    consumer = Consumer(
        name=SERVICE,
        db=db,
        dead_letters=DeadLetters(broker, SERVICE),
        on_commit=committed,
        topic_prefix=settings.topic_prefix,
    )
    subscribe(broker, settings, consumer, RegistrationHandler(store))
    reconciler = Reconciler(
        store,
        client,
        interval_s=settings.reconcile_interval_s,
        auto_retries=settings.auto_retries,
        verify_every_s=settings.verify_every_s,
        verify_batch=settings.verify_batch,
        on_requeued=worker.notify,
    )
    health = Health(SERVICE)
    health.add("database", db.ping)

    async def kafka_up() -> bool:
        return bool(await broker.ping(timeout=1.5))

    health.add("kafka", kafka_up)
    return UserSync(settings, db, broker, relay, store, worker, reconciler, client, health)


def create_app(
    settings: UserSyncSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    database_url: str | None = None,
    opex: OpexSettings | None = None,
    box: SecretBox | None = None,
    hooks: Hooks | None = None,
) -> Starlette:
    """user_sync as an ASGI app: ``/health`` and ``/metrics``; its lifespan runs the
    subscriber, the worker, the outbox relay and the reconcile job
    (``app.state.user_sync`` is the `UserSync`)."""
    service = build(
        settings, kafka=kafka, database_url=database_url, opex=opex, box=box, hooks=hooks
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(routes=ops_routes(service.health), lifespan=lifespan)
    app.state.user_sync = service
    return app
