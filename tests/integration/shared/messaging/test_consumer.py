"""The consumer pipeline against the real broker and database: dead letters with their
headers, exactly-once effects and outbox messages across a SIGKILL mid-batch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared.contracts import OrderRejected, PlaceOrder, decode, encode, new_message
from shared.db import Database
from shared.messaging import DLQ_HEADERS, KafkaSettings
from tests.integration.shared.messaging.demo_service import build, effects
from tests.support.kafka import produce, read_all, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[4]


def place_order(user: str, n: int, prefix: str = "co") -> bytes:
    return encode(
        new_message(
            PlaceOrder(
                client_order_id=f"{prefix}-{user}-{n}",
                symbol="BTC_USDT",
                side="buy",
                type="limit",
                quantity=Decimal("0.01"),
                price=Decimal("50000"),
                time_in_force="GTC",
            ),
            user_id=user,
        )
    )


async def count_effects(db: Database, prefix: str) -> tuple[int, int]:
    """Effect rows (and distinct message ids among them) of orders whose client order id
    starts with ``prefix`` (tests share the session's topics)."""
    async with db.transaction() as session:
        total, distinct = (
            await session.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(effects.c.message_id))).where(
                    effects.c.client_order_id.startswith(prefix)
                )
            )
        ).one()
    return int(total), int(distinct)


async def outbox_size(db: Database) -> int:
    async with db.transaction() as session:
        return int((await session.execute(sa.text("select count(*) from outbox"))).scalar_one())


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
async def test_consume_when_messages_are_bad_then_they_land_in_dlq_with_headers_and_the_rest_flow(
    kafka_settings: KafkaSettings,
    database_url: str,
    topic_prefix: str,
    demo_db: Database,
    batch: bool,
) -> None:
    topic = topic_prefix + "orders.commands"
    user = f"dlq-{demo_db.schema}"
    good = [place_order(user, i) for i in range(3)]
    oversized = b'{"id": "' + b"x" * 100_000 + b'"}'
    wrong_topic = encode(
        new_message(
            OrderRejected(
                client_order_id="x",
                symbol="BTC_USDT",
                side="buy",
                order_type="limit",
                quantity=Decimal(1),
                source="risk",
                reason_code="INSUFFICIENT_BALANCE",
                reason="r",
            ),
            user_id=user,
        )
    )
    poison = place_order(user, 9, prefix="poison")
    bad = [b"{not json", oversized, wrong_topic, b'{"type": "PlaceOrder"}', poison]
    key = user.encode()
    stream = [good[0], *bad[:3], good[1], *bad[3:], good[2], good[1]]  # good[1] twice
    await produce(
        kafka_settings,
        topic,
        [(key, v) for v in stream],
        headers=[("traceparent", b"00-abc-def-01")],
    )

    service = build(kafka_settings, database_url, demo_db.schema, topic_prefix, batch=batch)
    await service.start()
    try:
        await wait_for(lambda: _has_effects(demo_db, f"co-{user}", 3), timeout=30)
    finally:
        await service.stop()

    letters = [
        r for r in await read_all(kafka_settings, topic + ".dlq", expect=len(bad)) if r.key == key
    ]
    assert [r.value for r in letters] == bad
    headers = [{k: v.decode() for k, v in r.headers} for r in letters]
    codes = [h[DLQ_HEADERS.ERROR_CODE] for h in headers]
    assert codes[:3] == ["MALFORMED_JSON", "MESSAGE_TOO_LARGE", "WRONG_TOPIC"]
    assert codes[4] == "POISON"
    for h, record_value in zip(headers, bad, strict=True):
        assert h[DLQ_HEADERS.SERVICE] == "demo"
        assert h[DLQ_HEADERS.TOPIC] == topic
        assert int(h[DLQ_HEADERS.PARTITION]) >= 0
        assert int(h[DLQ_HEADERS.OFFSET]) >= 0
        assert h[DLQ_HEADERS.ATTEMPTS] == "1"
        assert h[DLQ_HEADERS.ERROR]
        assert h["traceparent"] == "00-abc-def-01"
        assert record_value
    assert await count_effects(demo_db, f"co-{user}") == (3, 3)


async def _has_effects(db: Database, prefix: str, n: int) -> bool:
    return (await count_effects(db, prefix))[0] >= n


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
async def test_consume_when_killed_mid_batch_then_each_effect_and_outbox_message_exactly_once(
    kafka_settings: KafkaSettings,
    database_url: str,
    topic_prefix: str,
    demo_db: Database,
    batch: bool,
) -> None:
    users = [f"crash-{demo_db.schema}-{u}" for u in range(12)]
    mine = f"co-crash-{demo_db.schema}"
    total = 240
    await produce(
        kafka_settings,
        topic_prefix + "orders.commands",
        [(users[i % 12].encode(), place_order(users[i % 12], i)) for i in range(total)],
    )
    argv = [
        sys.executable,
        str(Path(__file__).with_name("demo_service.py")),
        "--database-url",
        database_url,
        "--schema",
        demo_db.schema,
        "--prefix",
        topic_prefix,
        "--delay",
        "0.01",
        *(["--batch"] if batch else []),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
    }
    kills = 0
    for threshold in (40, 120):
        child = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            await wait_for(
                lambda t=threshold: _has_effects(demo_db, mine, t), timeout=60, interval=0.02
            )
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        kills += 1
    assert kills == 2
    assert (await count_effects(demo_db, mine))[0] < total

    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_for(lambda: _has_effects(demo_db, mine, total), timeout=90)

        async def drained() -> bool:
            return await outbox_size(demo_db) == 0

        await wait_for(drained, timeout=30)
    finally:
        child.send_signal(signal.SIGTERM)
        await asyncio.to_thread(child.wait, 20)

    assert await count_effects(demo_db, mine) == (total, total)
    published = [
        decode(r.value, topic="orders.events")
        for r in await read_all(
            kafka_settings, topic_prefix + "orders.events", expect=total, timeout=60
        )
        if r.key is not None and r.key.decode() in users
    ]
    assert len(published) == total
    assert len({e.causation_id for e in published}) == total
    assert len({e.id for e in published}) == total
