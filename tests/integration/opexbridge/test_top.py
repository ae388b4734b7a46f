"""``opexbridge top`` against the real broker: the lag, DLQ depth and message counts it
shows match what was produced and committed; services are scraped (or shown down)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from opexbridge.top import Endpoint, snapshot
from shared.messaging import KafkaSettings
from tests.integration.opexbridge.support import invoke
from tests.support.kafka import produce

pytestmark = pytest.mark.integration

RISK_METRICS = """# TYPE opexbridge_risk_decisions_total counter
opexbridge_risk_decisions_total{outcome="approved",reason=""} 7.0
opexbridge_risk_decisions_total{outcome="rejected",reason="INSUFFICIENT_BALANCE"} 2.0
opexbridge_risk_decisions_total{outcome="rejected",reason="PRICE_COLLAR"} 1.0
# TYPE opexbridge_messages_consumed_total counter
opexbridge_messages_consumed_total{consumer="risk",topic="orders.commands",outcome="processed"} 10.0
"""
NOTIFIER_METRICS = """# TYPE notifier_connections gauge
notifier_connections{state="open"} 3.0
notifier_connections{state="pending"} 1.0
"""


def fake_services(request: httpx.Request) -> httpx.Response:
    host, path = request.url.host, request.url.path
    if host == "risk":
        if path == "/health":
            return httpx.Response(200, json={"service": "risk_engine", "status": "ok"})
        return httpx.Response(200, text=RISK_METRICS)
    if host == "notifier":
        if path == "/health":
            return httpx.Response(503, json={"status": "unavailable", "last_error": "db down"})
        return httpx.Response(200, text=NOTIFIER_METRICS)
    raise httpx.ConnectError("refused", request=request)


async def seed_lag(settings: KafkaSettings, prefix: str, group: str) -> dict[int, int]:
    """Six messages on orders.approved; the group commits one less than the end on every
    partition that got some. Returns the expected lag per partition."""
    topic = prefix + "orders.approved"
    await produce(settings, topic, [(f"u{i}".encode(), b"{}") for i in range(6)])
    consumer = AIOKafkaConsumer(
        **settings.aiokafka_kwargs(), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        commits = {tp: OffsetAndMetadata(max(0, ends[tp] - 1), "") for tp in tps}
        await consumer.commit(commits)
    finally:
        await consumer.stop()
    return {tp.partition: ends[tp] - commits[tp].offset for tp in tps}


async def test_top_snapshot_when_seeded_then_lag_dlq_and_services_match(
    kafka_settings: KafkaSettings, topic_prefix: str
) -> None:
    group = f"top-test-{uuid.uuid4().hex[:8]}"
    expected_lag = await seed_lag(kafka_settings, topic_prefix, group)
    dlq = topic_prefix + "positions.events.dlq"
    await produce(kafka_settings, dlq, [(b"k", b"x")] * 3)

    services = [
        Endpoint("risk_engine", "http://risk/health", "http://risk/metrics"),
        Endpoint("notifier", "http://notifier/health", "http://notifier/metrics"),
        Endpoint("order_gateway", "http://gone/health", "http://gone/metrics"),
    ]
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake_services)) as http:
        snap = await snapshot(
            kafka_settings,
            prefix=topic_prefix,
            interval=0.2,
            services=services,
            group_filter=group,
            http=http,
        )

    lag = {item.partition: item.lag for item in snap.lag if item.group == group}
    assert lag == expected_lag
    assert snap.group_lag()[group] == sum(expected_lag.values())
    assert snap.dlq_depth[dlq] >= 3
    approved = next(t for t in snap.topics if t.topic == topic_prefix + "orders.approved")
    assert approved.partitions == 3
    assert approved.messages >= 6

    status = {s.name: s for s in snap.services}
    assert status["risk_engine"].up
    assert not status["notifier"].up
    assert status["notifier"].last_error == "db down"
    assert not status["order_gateway"].up
    assert status["order_gateway"].status == "down"
    suite = snap.suite
    assert (suite.decided, suite.approved, suite.rejected) == (10, 7, 3)
    assert suite.rejected_by_reason == {"INSUFFICIENT_BALANCE": 2, "PRICE_COLLAR": 1}
    assert suite.notifier_connections == 4
    assert suite.in_flight is None
    assert suite.filled is None
    assert suite.consumed == {"processed": 10}


async def test_top_once_json_prints_one_snapshot(
    kafka_settings: KafkaSettings, topic_prefix: str
) -> None:
    group = f"top-cli-{uuid.uuid4().hex[:8]}"
    expected_lag = await seed_lag(kafka_settings, topic_prefix, group)
    down = [
        f"--service={name}=http://127.0.0.1:9"
        for name in ("risk_engine", "notifier", "user_sync", "order_gateway", "sandbox")
    ]
    result = await invoke(
        "top", "--once", "--json", "--interval", "0.2", "--group", group, "--prefix", topic_prefix,
        *down,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    snap = json.loads(result.stdout)
    assert snap["group_lag"] == {group: sum(expected_lag.values())}
    assert {(x["partition"], x["lag"]) for x in snap["lag"]} == set(expected_lag.items())
    assert {s["name"]: s["up"] for s in snap["services"]} == {
        "risk_engine": False,
        "notifier": False,
        "user_sync": False,
        "order_gateway": False,
        "sandbox": False,
    }
    assert topic_prefix + "orders.commands.dlq" in snap["dlq_depth"]
    assert snap["suite"]["decided"] is None
