"""Session-wide fixtures. Integration tests get a real Kafka broker and PostgreSQL:
the ones named by KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set, otherwise the local
stack (deploy/local/stack.py), started here if it is not running and stopped at the
end if this session started it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.messaging import KafkaSettings, apply_topics, topic_specs
from tests.support.stack import load_stack


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    external = {
        key: os.environ[key]
        for key in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
        if os.environ.get(key)
    }
    if len(external) == 2:
        yield external
        return
    stack: Any = load_stack()
    started = stack.ensure_up(
        kafka="KAFKA_BOOTSTRAP_SERVERS" not in external, pg="DATABASE_URL" not in external
    )
    env = {**stack.endpoints(), **external}
    os.environ.update(env)
    try:
        yield env
    finally:
        if os.environ.get("OPEXBRIDGE_KEEP_STACK") != "1":
            stack.stop(started)


@pytest.fixture(scope="session")
def kafka_settings(stack_env: dict[str, str]) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"])


@pytest.fixture(scope="session")
def database_url(stack_env: dict[str, str]) -> str:
    return stack_env["DATABASE_URL"]


@pytest.fixture(scope="session")
async def topic_prefix(kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    """A private copy of every topic (3 partitions each) for this test session."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    admin = AIOKafkaAdminClient(**kafka_settings.aiokafka_kwargs())
    await admin.start()
    try:
        await apply_topics(admin, topic_specs(partitions=3, prefix=prefix))
        yield prefix
    finally:
        existing = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if existing:
            await admin.delete_topics(existing)
        await admin.close()
