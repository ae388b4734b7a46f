"""`apply_topics` against the real broker: creates, is idempotent, reports and fixes drift."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.messaging import KafkaSettings, apply_topics, topic_specs
from shared.messaging.topics import describe
from tests.support.kafka import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def admin(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**kafka_settings.aiokafka_kwargs())
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def prefix(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    """A private topic namespace for one test, deleted afterwards."""
    name = f"ta{uuid.uuid4().hex[:8]}."
    yield name
    created = [t for t in await admin.list_topics() if t.startswith(name)]
    if created:
        await admin.delete_topics(created)


async def test_apply_when_topics_missing_then_creates_every_spec_with_its_configs(
    admin: AIOKafkaAdminClient, prefix: str
) -> None:
    specs = topic_specs(partitions=2, prefix=prefix)
    report = await apply_topics(admin, specs)
    assert sorted(report.created) == sorted(s.name for s in specs)
    partitions, configs = await describe(admin, [s.name for s in specs])
    for spec in specs:
        assert partitions[spec.name] == spec.partitions
        assert configs[spec.name]["cleanup.policy"] == spec.configs()["cleanup.policy"]
        assert configs[spec.name]["retention.ms"] == spec.configs()["retention.ms"]
    compacted = {s.name for s in specs if configs[s.name]["cleanup.policy"] == "compact"}
    assert compacted == {s.name for s in specs if s.name.endswith("market.instruments")}
    assert all(s.name + ".dlq" in partitions for s in specs if s.key in ("user_id", "symbol"))


async def test_apply_when_run_twice_then_second_run_changes_nothing(
    admin: AIOKafkaAdminClient, prefix: str
) -> None:
    specs = topic_specs(partitions=2, prefix=prefix)
    await apply_topics(admin, specs)
    again = await apply_topics(admin, specs)
    assert again.created == []
    assert again.drift == []
    assert sorted(again.unchanged) == sorted(s.name for s in specs)


async def test_apply_when_config_and_partitions_drift_then_reports_and_fix_repairs(
    admin: AIOKafkaAdminClient, prefix: str
) -> None:
    await apply_topics(admin, topic_specs(partitions=2, prefix=prefix))
    target = prefix + "orders.events"
    await admin.alter_configs(
        [
            ConfigResource(
                ConfigResourceType.TOPIC,
                target,
                {"retention.ms": "1000", "cleanup.policy": "delete"},
            )
        ]
    )
    wanted = topic_specs(partitions=4, prefix=prefix)

    async def altered() -> bool:
        _, configs = await describe(admin, [target])
        return configs.get(target, {}).get("retention.ms") == "1000"

    await wait_for(altered, timeout=15)
    report = await apply_topics(admin, wanted)
    drifted = {(d.topic, d.what) for d in report.drift}
    assert (target, "retention.ms") in drifted
    assert (target, "partitions") in drifted
    assert report.fixed == []

    fixed = await apply_topics(admin, wanted, fix=True)
    assert {(d.topic, d.what) for d in fixed.fixed} == {(d.topic, d.what) for d in fixed.drift}

    async def repaired() -> bool:
        return not (await apply_topics(admin, wanted)).drift

    await wait_for(repaired, timeout=15)
    partitions, configs = await describe(admin, [target])
    assert partitions[target] == 4
    assert configs[target]["retention.ms"] == str(30 * 24 * 3600 * 1000)


async def test_apply_when_spec_has_fewer_partitions_then_drift_is_not_fixable(
    admin: AIOKafkaAdminClient, prefix: str
) -> None:
    await apply_topics(admin, topic_specs(partitions=3, prefix=prefix))
    report = await apply_topics(admin, topic_specs(partitions=2, prefix=prefix), fix=True)
    shrink = [d for d in report.drift if d.what == "partitions"]
    assert shrink
    assert not any(d.fixable for d in shrink)
    assert not any(d.what == "partitions" for d in report.fixed)
