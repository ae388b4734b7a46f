"""``opexbridge dlq`` against the real broker and database: dead letters seeded by a real
consumer (the shared Consumer with its inbox) are listed with their headers, replayed
after the cause is fixed, processed exactly once, and never replayed twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from opexbridge.dlq import (
    REPLAYED_FROM,
    DeadLetter,
    Selector,
    dlq_entries,
    format_ranges,
    purge,
    replay,
)
from shared.contracts import Envelope, PlaceOrder, encode, new_message
from shared.db import Database, migrate
from shared.messaging import (
    DLQ_HEADERS,
    Consumer,
    DeadLetters,
    Delivery,
    KafkaSettings,
    PermanentError,
    Transaction,
)
from tests.integration.opexbridge.support import invoke
from tests.integration.shared.messaging.demo_service import effects
from tests.support.kafka import produce, read_all, wait_for

pytestmark = pytest.mark.integration
MIGRATIONS = Path(__file__).resolve().parents[1] / "shared" / "messaging" / "migrations"


class ProducerPublisher:
    """DeadLetters' publisher over a bare aiokafka producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(
        self,
        message: bytes,
        topic: str,
        *,
        key: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> object:
        encoded = [(k, v.encode()) for k, v in (headers or {}).items()]
        return await self._producer.send_and_wait(topic, message, key=key, headers=encoded)


@dataclass
class Service:
    """Consumes one user's PlaceOrders; poisoned ones fail until ``fixed``."""

    db: Database
    user: str
    fixed: bool = False


async def handle(service: Service, envelope: Envelope[Any], tx: Transaction) -> None:
    order = envelope.data_as(PlaceOrder)
    if order.client_order_id.startswith("poison") and not service.fixed:
        raise PermanentError("poisoned order", code="POISON")
    await tx.session.execute(
        sa.insert(effects).values(message_id=envelope.id, client_order_id=order.client_order_id)
    )


async def run_service(
    service: Service, settings: KafkaSettings, prefix: str, ready: asyncio.Event
) -> None:
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), acks="all", enable_idempotence=True)
    await producer.start()
    consumer = Consumer(
        name="dlq-test",
        db=service.db,
        dead_letters=DeadLetters(ProducerPublisher(producer), "dlq-test"),
        topic_prefix=prefix,
    )
    source = AIOKafkaConsumer(
        prefix + "orders.commands",
        **settings.aiokafka_kwargs(),
        group_id=f"dlq-test-{service.user}",
        auto_offset_reset="latest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await source.start()
    try:
        while not source.assignment():
            await source.getmany(timeout_ms=100)
        for tp in source.assignment():
            await source.position(tp)
        ready.set()
        while True:
            batch = await source.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    if record.key == service.user.encode():
                        await consumer.process(
                            Delivery.from_record(record),
                            lambda env, tx: handle(service, env, tx),
                        )
    finally:
        await source.stop()
        await producer.stop()


@pytest.fixture
async def service(
    database_url: str, kafka_settings: KafkaSettings, topic_prefix: str
) -> AsyncIterator[Service]:
    schema = f"dlqt_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(migrate, database_url, schema, MIGRATIONS)
    db = Database(database_url, schema, pool_size=2)
    svc = Service(db, f"dlq-{uuid.uuid4().hex[:8]}")
    ready = asyncio.Event()
    task = asyncio.create_task(run_service(svc, kafka_settings, topic_prefix, ready))
    try:
        await asyncio.wait_for(ready.wait(), 20)
        yield svc
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        async with db.transaction() as session:
            await session.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await db.dispose()


def order(user: str, client_order_id: str) -> bytes:
    return encode(
        new_message(
            PlaceOrder(
                client_order_id=client_order_id,
                symbol="BTC_USDT",
                side="buy",
                type="limit",
                quantity=Decimal("0.01"),
                price=Decimal("50000"),
            ),
            user_id=user,
        )
    )


async def effect_counts(db: Database) -> tuple[int, int]:
    async with db.transaction() as session:
        total, distinct = (
            await session.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(effects.c.message_id)))
            )
        ).one()
    return int(total), int(distinct)


async def mine(settings: KafkaSettings, prefix: str, user: str) -> list[DeadLetter]:
    letters = await dlq_entries(settings, "orders.commands", prefix=prefix)
    return [d for d in letters if d.key == user.encode()]


async def test_dlq_when_cause_fixed_then_replay_processes_each_dead_letter_exactly_once(
    kafka_settings: KafkaSettings, topic_prefix: str, service: Service
) -> None:
    topic = topic_prefix + "orders.commands"
    user = service.user
    key = user.encode()
    await produce(
        kafka_settings,
        topic,
        [
            (key, order(user, "good-1")),
            (key, order(user, "poison-1")),
            (key, order(user, "good-2")),
            (key, order(user, "poison-2")),
            (key, order(user, "good-3")),
        ],
    )

    async def settled() -> bool:
        return (await effect_counts(service.db))[0] == 3 and len(
            await mine(kafka_settings, topic_prefix, user)
        ) == 2

    await wait_for(settled, timeout=30)

    # list: the figures match what was produced, with the error headers
    letters = await mine(kafka_settings, topic_prefix, user)
    assert [d.error_code for d in letters] == ["POISON", "POISON"]
    assert all(d.original_topic == topic for d in letters)
    assert all(d.header(DLQ_HEADERS.SERVICE) == "dlq-test" for d in letters)
    assert all("poisoned order" in d.error for d in letters)
    assert [d.message_type for d in letters] == ["PlaceOrder", "PlaceOrder"]
    originals = {int(d.header(DLQ_HEADERS.OFFSET) or -1) for d in letters}
    source = [r for r in await read_all(kafka_settings, topic, expect=1, idle=0.2) if r.key == key]
    assert originals == {r.offset for r in source if b"poison" in (r.value or b"")}

    listed = await invoke("dlq", "list", "orders.commands", "--prefix", topic_prefix, "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    rows = [r for r in rows if r["key"] == user]
    assert [(r["offset"], r["error_code"], r["replayed"]) for r in rows] == [
        (d.offset, "POISON", False) for d in letters
    ]

    shown = await invoke(
        "dlq", "show", "orders.commands", str(letters[0].offset), "--prefix", topic_prefix
    )
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.stdout)
    assert detail["payload"]["data"]["client_order_id"] == "poison-1"
    assert detail["headers"][DLQ_HEADERS.ERROR_CODE] == "POISON"

    # dry run: nothing sent, nothing recorded
    offsets = format_ranges(d.offset for d in letters)
    dry = await replay(
        kafka_settings,
        "orders.commands",
        Selector(offsets=frozenset(d.offset for d in letters)),
        dry_run=True,
        prefix=topic_prefix,
    )
    assert [d.offset for d in dry.replayed] == [d.offset for d in letters]
    assert not dry.already_replayed

    service.fixed = True
    replayed = await invoke(
        "dlq", "replay", "orders.commands", "--offset", offsets, "--prefix", topic_prefix, "--json"
    )
    assert replayed.exit_code == 0, replayed.output
    report = json.loads(replayed.stdout)
    assert report["replayed"] == [d.offset for d in letters]

    async def replay_done() -> bool:
        return await effect_counts(service.db) == (5, 5)

    await wait_for(replay_done, timeout=30)

    # the replayed records: original bytes and key, no x-dlq-* headers, and where from
    again = [r for r in await read_all(kafka_settings, topic, expect=1, idle=0.2) if r.key == key]
    copies = [r for r in again if any(h == REPLAYED_FROM for h, _ in r.headers)]
    assert sorted(r.value for r in copies) == sorted(d.value for d in letters)
    assert all(not h.startswith("x-dlq-original") for r in copies for h, _ in r.headers)

    # a second replay of the same selection replays nothing
    second = await replay(
        kafka_settings,
        "orders.commands",
        Selector(offsets=frozenset(d.offset for d in letters)),
        prefix=topic_prefix,
    )
    assert second.replayed == []
    assert [d.offset for d in second.already_replayed] == [d.offset for d in letters]
    listed = await invoke("dlq", "list", "orders.commands", "--prefix", topic_prefix, "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    assert all(r["replayed"] for r in rows if r["key"] == user)

    # a replay delivered twice (a crash before the ledger was committed) changes nothing
    await produce(kafka_settings, topic, [(key, letters[0].value)])
    await asyncio.sleep(1.5)
    assert await effect_counts(service.db) == (5, 5)


async def test_dlq_purge_when_confirmed_then_deletes_below_the_offset(
    kafka_settings: KafkaSettings, topic_prefix: str
) -> None:
    dlq = topic_prefix + "market.instruments.dlq"
    headers = [(DLQ_HEADERS.ERROR_CODE, b"X"), (DLQ_HEADERS.ERROR, b"broken")]
    await produce(kafka_settings, dlq, [(b"k", b"%d" % i) for i in range(4)], headers)
    before = await dlq_entries(kafka_settings, "market.instruments", prefix=topic_prefix)
    assert len(before) >= 4
    cut = before[-2].offset

    refused = await invoke(
        "dlq", "purge", "market.instruments", "--before", str(cut), "--prefix", topic_prefix
    )
    assert refused.exit_code == 1
    assert "--yes" in refused.output
    assert len(await dlq_entries(kafka_settings, dlq)) == len(before)

    dry = await purge(kafka_settings, dlq, before=cut, dry_run=True)
    assert dry.deleted == len(before) - 2

    done = await invoke(
        "dlq",
        "purge",
        "market.instruments",
        "--before",
        str(cut),
        "--yes",
        "--prefix",
        topic_prefix,
    )
    assert done.exit_code == 0, done.output
    left = await dlq_entries(kafka_settings, dlq)
    assert [d.value for d in left] == [b"2", b"3"]
