"""Fixtures of the order gateway against the real broker, PostgreSQL and the sandbox: a
sandbox for the session, per test its own topics, gateway schema and credentials
schema, and a factory that starts the gateway in-process."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.order_gateway.app import GatewayApp, build
from services.order_gateway.config import GatewaySettings, ServiceSettings
from shared.credentials import SecretBox, generate_key
from shared.db import DatabaseSettings, migrate
from shared.messaging import KafkaSettings, apply_topics, topic_specs
from shared.opex import OpexClient
from tests.integration.order_gateway.support import (
    Sandbox,
    User,
    create_credentials_schema,
    drop_schema,
    provision,
    serve_sandbox,
)

MIGRATIONS = Path(__file__).resolve().parents[3] / "services/order_gateway/migrations/versions"
TOPICS = (
    "orders.approved",
    "orders.approved.dlq",
    "orders.events",
    "accounts.events",
    "market.instruments",
    "market.tickers",
    "users.events",
    "opexbridge.outbox",
)

StartGateway = Callable[..., Awaitable[GatewayApp]]
NewUser = Callable[[], Awaitable[User]]


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with serve_sandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def _no_faults(sandbox: Sandbox) -> Iterator[None]:
    sandbox.clear_faults()
    yield
    sandbox.clear_faults()


@pytest.fixture(scope="session")
def box() -> SecretBox:
    return SecretBox([generate_key()])


@pytest.fixture
def schemas(database_url: str) -> Iterator[tuple[str, str]]:
    """(the gateway's schema, the credentials schema) for this test."""
    tag = uuid.uuid4().hex[:10]
    gateway, creds = f"gw_t{tag}", f"gwcreds_t{tag}"
    migrate(database_url, gateway, MIGRATIONS)
    create_credentials_schema(database_url, creds)
    yield gateway, creds
    drop_schema(database_url, gateway)
    drop_schema(database_url, creds)


@pytest.fixture
async def topic_prefix(kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    """This test's own topics: a gateway reads orders.approved from the start."""
    prefix = f"gw{uuid.uuid4().hex[:8]}."
    specs = [s for s in topic_specs(partitions=3, prefix=prefix) if s.name[len(prefix) :] in TOPICS]
    admin = AIOKafkaAdminClient(**kafka_settings.aiokafka_kwargs())
    await admin.start()
    try:
        await apply_topics(admin, specs)
        yield prefix
    finally:
        await admin.delete_topics([s.name for s in specs])
        await admin.close()


@pytest.fixture
async def opex(sandbox: Sandbox) -> AsyncIterator[OpexClient]:
    async with OpexClient(sandbox.opex_settings()) as client:
        yield client


@pytest.fixture
def new_user(
    opex: OpexClient, database_url: str, schemas: tuple[str, str], box: SecretBox
) -> NewUser:
    async def make() -> User:
        return await provision(opex, database_url=database_url, schema=schemas[1], box=box)

    return make


def gateway_settings(**changes: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "listing_grace_ms": 200,
        "query_interval_ms": 200,
        "failed_after_ms": 3_000,
        "correlation_window_ms": 5_000,
        "poll_interval_ms": 300,
        "reconcile_interval_ms": 5_000,
        "breaker_cool_down_ms": 500,
        **changes,
    }
    return GatewaySettings(**values)


@pytest.fixture
async def start_gateway(
    kafka_settings: KafkaSettings,
    database_url: str,
    topic_prefix: str,
    schemas: tuple[str, str],
    sandbox: Sandbox,
    box: SecretBox,
) -> AsyncIterator[StartGateway]:
    """``await start_gateway(gateway=GatewaySettings(...), **service settings)``."""
    running: list[GatewayApp] = []
    group = f"gw-{uuid.uuid4().hex[:8]}"

    async def start(gateway: GatewaySettings | None = None, **changes: Any) -> GatewayApp:
        values: dict[str, Any] = {
            "ORDER_GATEWAY_SCHEMA": schemas[0],
            "ORDER_GATEWAY_CREDENTIALS_SCHEMA": schemas[1],
            "ORDER_GATEWAY_GROUP": group,
            # the outbox's transactional id is <service>-outbox-<instance>: a shared
            # instance id would fence another test session's gateway on the same broker
            "ORDER_GATEWAY_INSTANCE": group,
            "OPEXBRIDGE_TOPIC_PREFIX": topic_prefix,
            "ORDER_GATEWAY_MARKET_DATA_INTERVAL_MS": 200,
            "ORDER_GATEWAY_BALANCES_INTERVAL_MS": 200,
            **changes,
        }
        app = build(
            ServiceSettings(**values),
            kafka=kafka_settings,
            database=DatabaseSettings(DATABASE_URL=database_url),
            gateway=gateway or gateway_settings(),
            opex=sandbox.opex_settings(),
            box=box,
        )
        await app.start()
        running.append(app)
        return app

    try:
        yield start
    finally:
        for app in running:
            with contextlib.suppress(Exception):
                await app.stop()
