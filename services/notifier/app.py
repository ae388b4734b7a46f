"""The notifier's composition root: ``create_app()`` wires settings, the database, the
Kafka subscribers, the fan-out hub, the WebSocket endpoint and the REST snapshots into
one ASGI app whose lifespan starts and stops the consumers.

One path to follow: Kafka batch → adapters/kafka.py → handlers.py (`UserEventsHandler`)
→ domain/events.py + domain/stream.py → adapters/store.py (one transaction) →
adapters/hub.py → adapters/websocket.py (`Connection`) → the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from services.notifier.adapters.commands import CommandStore
from services.notifier.adapters.errors import install_error_handlers
from services.notifier.adapters.hub import Hub
from services.notifier.adapters.jwks import JwksKeys
from services.notifier.adapters.kafka import subscribe
from services.notifier.adapters.market import MarketData
from services.notifier.adapters.readiness import Readiness
from services.notifier.adapters.rest import rest_router
from services.notifier.adapters.server import install_token_filter
from services.notifier.adapters.store import StreamStore
from services.notifier.adapters.trading import PlaceOrderEndpoint, trading_router
from services.notifier.adapters.websocket import Context, WebSocketEndpoint
from services.notifier.config import NotifierSettings
from services.notifier.domain.auth import CachingVerifier, TokenVerifier
from services.notifier.domain.stream import Retention
from services.notifier.handlers import TickerHandler, UserEventsHandler
from services.notifier.static import demo_routes
from shared.db import Database, DatabaseSettings
from shared.messaging import DeadLetters, KafkaSettings, OutboxRelay, create_broker, start_broker
from shared.observability import Health, ops_routes
from shared.opex import OpexClient, OpexSettings

__all__ = ["NotifierApp", "build_verifier", "create_app"]

log = structlog.get_logger(__name__)
WS_PATH = "/ws"
PLACE_PATH = "/api/trading/orders"


class NotifierApp(FastAPI):
    """FastAPI with two paths served by raw ASGI handlers: ``/ws`` (a WebSocket lives
    for hours, and every middleware layer or per-connection object adds to its idle
    memory) and ``POST /api/trading/orders`` (the API's hot path: FastAPI's middleware,
    routing and dependency solving cost more than the order itself; its FastAPI route
    still documents it in the OpenAPI document)."""

    ws_endpoint: WebSocketEndpoint | None = None
    place_endpoint: PlaceOrderEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if (
                scope["path"] == PLACE_PATH
                and scope["method"] == "POST"
                and self.place_endpoint is not None
            ):
                await self.place_endpoint(scope, receive, send)
                return
        elif kind == "websocket" and scope["path"] == WS_PATH and self.ws_endpoint:
            await self.ws_endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def build_verifier(settings: NotifierSettings) -> CachingVerifier:
    keys = (
        JwksKeys(settings.jwt_jwks_url, cache_s=settings.jwks_cache_s)
        if settings.jwt_jwks_url
        else None
    )
    verifier = TokenVerifier(
        hs256_secret=settings.hs256_secret(),
        keys=keys,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway_s=settings.jwt_leeway_s,
    )
    return CachingVerifier(
        verifier, max_entries=settings.token_cache_size, max_age_s=settings.token_cache_s
    )


def _warn_about(settings: NotifierSettings) -> None:
    if settings.uses_dev_secret:
        log.warning(
            "jwt_dev_secret_in_use",
            message="JWT_SECRET and JWT_JWKS_URL are unset: accepting HS256 tokens signed "
            "with the public development secret. Never run like this outside a laptop.",
        )
    secret = settings.hs256_secret()
    if secret is not None and len(secret.encode()) < 32:
        log.warning(
            "jwt_secret_short",
            message="JWT_SECRET is shorter than 32 bytes, below RFC 7518's minimum for HS256.",
        )
    if settings.jwt_audience is None or settings.jwt_issuer is None:
        log.warning(
            "jwt_claims_unchecked",
            message="JWT_AUDIENCE and/or JWT_ISSUER are unset: tokens are accepted "
            "whatever their aud / iss.",
        )


async def _prune_forever(
    store: StreamStore, commands: CommandStore, settings: NotifierSettings, health: Health
) -> None:
    while True:
        await asyncio.sleep(settings.prune_interval_s)
        try:
            pruned = await store.prune()
            inbox = await store.prune_inbox(settings.inbox_retention_s)
            forgotten = await commands.prune(settings.idempotency_ttl_s)
            if pruned or inbox or forgotten:
                log.info("pruned", stream_events=pruned, inbox_rows=inbox, commands=forgotten)
        except Exception as error:
            health.last_error = f"prune: {type(error).__name__}"
            log.warning("prune_failed", error=f"{type(error).__name__}: {error}"[:300])


def create_app(
    settings: NotifierSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    database_url: str | None = None,
    opex: OpexSettings | None = None,
) -> NotifierApp:
    """The notifier as an ASGI app; serve it with ``adapters.server.uvicorn_config``."""
    settings = settings or NotifierSettings()
    kafka = kafka or KafkaSettings()
    opex = opex or OpexSettings()
    db = Database(
        database_url or DatabaseSettings().database_url,
        settings.schema_name,
        pool_size=settings.db_pool_size,
    )
    store = StreamStore(
        db,
        retention=Retention(settings.retention_events, settings.retention_s),
        max_replay=settings.retention_events * 2 + settings.batch_max_records,
    )
    hub = Hub()
    verifier = build_verifier(settings)
    # per-batch access lines at DEBUG: at thousands of events a second they are noise
    broker = create_broker(kafka, service="notifier", log_level=logging.DEBUG)
    users = UserEventsHandler(
        store, hub, DeadLetters(broker, "notifier"), topic_prefix=settings.topic_prefix
    )
    pipeline = subscribe(
        broker, settings, users, TickerHandler(hub, topic_prefix=settings.topic_prefix)
    )

    health = Health("notifier")
    health.add("database", db.ping)

    async def kafka_up() -> bool:
        return bool(await broker.ping(timeout=1.5))

    health.add("kafka", kafka_up)
    endpoint = WebSocketEndpoint(Context(settings, hub, store, verifier))

    # the trading REST API: commands through the outbox, market data, readiness
    relay = OutboxRelay(
        db,
        kafka,
        service="notifier",
        instance=settings.outbox_instance,
        topic_prefix=settings.topic_prefix,
        batch_size=500,
        # the commits of a moment go out in one Kafka transaction instead of one each
        linger=settings.relay_linger_ms / 1000,
    )
    commands = CommandStore(
        db,
        topic_prefix=settings.topic_prefix,
        on_commit=relay.notify,
        max_batch=settings.command_batch_max,
    )
    opex_client = OpexClient(
        opex.model_copy(update={"timeout": min(opex.timeout, settings.opex_timeout_s)})
    )
    probes_http = httpx.AsyncClient(timeout=settings.health_timeout_s, trust_env=False)

    async def opex_up() -> bool:
        return (await opex_client.health()).up

    readiness = Readiness(
        {"broker": kafka_up, "database": db.ping, "opex": opex_up},
        services=settings.service_health_urls,
        optional=settings.optional_services,
        http=probes_http,
        timeout_s=settings.health_timeout_s,
        cache_s=settings.health_cache_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        _warn_about(settings)
        install_token_filter()
        await start_broker(broker)
        relay.start()
        pruner = asyncio.create_task(_prune_forever(store, commands, settings, health))
        log.info(
            "notifier_started",
            group=settings.consumer_group,
            topic_prefix=settings.topic_prefix,
            schema=settings.schema_name,
        )
        try:
            yield {}
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            await commands.aclose()
            await relay.stop()
            await broker.stop()
            await pipeline.drain()
            for connection in list(hub):
                dispose = getattr(connection, "dispose", None)
                if dispose is not None:
                    dispose()
            await store.aclose()
            await opex_client.aclose()
            await probes_http.aclose()
            await db.dispose()
            log.info("notifier_stopped")

    app = NotifierApp(
        title="opex-bridge notifier",
        description="The platform's trading REST API and the WebSocket push "
        '(services/notifier/README.md). Errors: {"error": {"code", "message", "field"}}.',
        lifespan=lifespan,
    )
    app.ws_endpoint = endpoint
    app.place_endpoint = PlaceOrderEndpoint(commands, verifier)
    install_error_handlers(app)
    app.include_router(rest_router(store, verifier))
    app.include_router(trading_router(commands, verifier, MarketData(hub, opex_client), readiness))
    app.router.routes.extend(ops_routes(health))
    app.router.routes.extend(demo_routes())  # GET /demo: the demo page (static/)
    app.state.settings = settings
    app.state.hub = hub
    app.state.store = store
    app.state.broker = broker
    app.state.health = health
    app.state.commands = commands
    app.state.relay = relay
    app.state.readiness = readiness
    return app
