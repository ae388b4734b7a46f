"""Fixtures of user_sync against the real broker, PostgreSQL and the sandbox: a sandbox
(uvicorn, in a thread) for the session, a fresh migrated schema per test, and a factory
that starts user_sync in-process on them (stopped at the end of the test)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import create_engine, text

from services.user_sync.app import UserSync, build
from services.user_sync.worker import Hooks
from shared.credentials import SecretBox, generate_key
from shared.db import migrate
from shared.messaging import KafkaSettings, apply_topics, topic_specs
from tests.integration.user_sync.support import Sandbox, serve_sandbox, settings_for

MIGRATIONS = Path(__file__).resolve().parents[3] / "services/user_sync/migrations/versions"

StartService = Callable[..., Awaitable[UserSync]]


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with serve_sandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def _no_faults(sandbox: Sandbox) -> Iterator[None]:
    sandbox.clear_faults()
    yield
    sandbox.clear_faults()


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    name = f"user_sync_t{uuid.uuid4().hex[:10]}"
    migrate(database_url, name, MIGRATIONS)
    yield name
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        engine.dispose()


USER_TOPICS = ("users.events", "users.events.dlq", "opexbridge.outbox")


@pytest.fixture
async def topic_prefix(kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    """This test's own ``users.events`` (and its DLQ and the outbox's progress topic):
    a service reads its topic from the start, so one test's users must not reach
    another test's service (which would register them on OPEX too)."""
    prefix = f"us{uuid.uuid4().hex[:8]}."
    specs = [
        s for s in topic_specs(partitions=3, prefix=prefix) if s.name[len(prefix) :] in USER_TOPICS
    ]
    admin = AIOKafkaAdminClient(**kafka_settings.aiokafka_kwargs())
    await admin.start()
    try:
        await apply_topics(admin, specs)
        yield prefix
    finally:
        await admin.delete_topics([s.name for s in specs])
        await admin.close()


@pytest.fixture(scope="session")
def secrets_key() -> str:
    """This session's OPEXBRIDGE_SECRETS_KEY."""
    return generate_key()


@pytest.fixture(scope="session")
def box(secrets_key: str) -> SecretBox:
    return SecretBox([secrets_key])


@pytest.fixture
async def start_service(
    kafka_settings: KafkaSettings,
    database_url: str,
    topic_prefix: str,
    schema: str,
    sandbox: Sandbox,
    box: SecretBox,
) -> AsyncIterator[StartService]:
    """``await start_service(**settings)``: user_sync on this test's schema and the
    session's topics, started; ``hooks=`` for crash injection. Each one started is
    stopped at the end (or earlier with ``await service.stop()``)."""
    running: list[UserSync] = []

    async def start(hooks: Hooks | None = None, **changes: Any) -> UserSync:
        service = build(
            settings_for(schema, topic_prefix, **changes),
            kafka=kafka_settings,
            database_url=database_url,
            opex=sandbox.opex_settings(),
            box=box,
            hooks=hooks or Hooks(),
        )
        await service.start()
        running.append(service)
        return service

    try:
        yield start
    finally:
        for service in running:
            with contextlib.suppress(Exception):  # already stopped by the test
                await service.stop()
