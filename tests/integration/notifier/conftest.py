"""Fixtures for the notifier against the real broker and database: a fresh schema per
test module, a JWKS server, the app served by uvicorn on 127.0.0.1 reading this
session's private topics, and a producer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shared.db import Database, migrate
from shared.messaging import KafkaSettings
from tests.integration.notifier.helpers import (
    KeySet,
    Notifier,
    Producer,
    jwks_server,
    notifier_settings,
)

MIGRATIONS = (
    Path(__file__).resolve().parents[3] / "services" / "notifier" / "migrations" / "versions"
)


def drop_schema(database_url: str, schema: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def schema(database_url: str) -> Iterator[str]:
    name = f"notifier_t{uuid.uuid4().hex[:10]}"
    migrate(database_url, name, MIGRATIONS)
    yield name
    drop_schema(database_url, name)


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet()


@pytest.fixture(scope="module")
async def jwks_url(keys: KeySet) -> AsyncIterator[str]:
    server = await jwks_server(keys)
    try:
        yield f"http://127.0.0.1:{server.port}/.well-known/jwks.json"
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def producer(kafka_settings: KafkaSettings, topic_prefix: str) -> AsyncIterator[Producer]:
    producer = Producer(kafka_settings, topic_prefix)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
async def notifier(
    kafka_settings: KafkaSettings,
    database_url: str,
    topic_prefix: str,
    schema: str,
    jwks_url: str,
) -> AsyncIterator[Notifier]:
    """The notifier with HS256 and JWKS keys, checking aud and iss, short limits."""
    settings = notifier_settings(
        schema,
        topic_prefix,
        jwt_jwks_url=jwks_url,
        auth_timeout_s=1.0,
        max_connections_per_user=3,
        send_budget_bytes=64 * 1024,
        slow_close_grace_s=10.0,
    )
    server = Notifier(settings, kafka_settings, database_url)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def db(database_url: str, schema: str) -> AsyncIterator[Database]:
    """The notifier's schema of this module, through the service's database class."""
    database = Database(database_url, schema, pool_size=4)
    try:
        yield database
    finally:
        await database.dispose()
