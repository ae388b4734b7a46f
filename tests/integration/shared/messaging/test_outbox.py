"""The outbox relay against the real broker and database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import PlaceOrder, decode, new_message
from shared.db import Database
from shared.messaging import KafkaSettings, OutboxRelay, outbox_table, stage
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration


def orders(user: str, n: int) -> list[PlaceOrder]:
    return [
        PlaceOrder(
            client_order_id=f"o-{i}",
            symbol="ETH_USDT",
            side="sell",
            type="limit",
            quantity=Decimal("0.5"),
            price=Decimal("3000.5"),
            time_in_force="GTC",
        )
        for i in range(n)
    ]


class CrashAfterKafkaCommit(OutboxRelay):
    """Dies between the Kafka transaction's commit and the database delete."""

    async def _forget(self, session: AsyncSession, ids: list[int]) -> None:
        raise ConnectionError("process died here")


async def rows_left(db: Database) -> int:
    async with db.transaction() as session:
        return int(
            (await session.execute(select(func.count()).select_from(outbox_table))).scalar_one()
        )


async def test_relay_when_transaction_rolls_back_then_nothing_is_published(
    kafka_settings: KafkaSettings, topic_prefix: str, demo_db: Database
) -> None:
    user = f"rollback-{demo_db.schema}"

    async def handler_that_fails_after_staging() -> None:
        async with demo_db.transaction() as session:
            staged = [(new_message(o, user_id=user), None) for o in orders(user, 3)]
            await stage(session, staged, topic_prefix=topic_prefix)
            raise RuntimeError("handler failed after staging")

    with pytest.raises(RuntimeError):
        await handler_that_fails_after_staging()
    assert await rows_left(demo_db) == 0


async def test_relay_when_it_dies_after_kafka_commit_then_restart_does_not_publish_again(
    kafka_settings: KafkaSettings, topic_prefix: str, demo_db: Database
) -> None:
    user = f"relay-{demo_db.schema}"
    envelopes = [new_message(o, user_id=user) for o in orders(user, 25)]
    async with demo_db.transaction() as session:
        await stage(session, [(e, None) for e in envelopes], topic_prefix=topic_prefix)

    crashing = CrashAfterKafkaCommit(
        demo_db,
        kafka_settings,
        service="demo",
        instance=demo_db.schema,
        topic_prefix=topic_prefix,
        batch_size=10,
    )
    with pytest.raises(ConnectionError):
        await crashing.relay_once()
    await crashing.stop()
    assert await rows_left(demo_db) == 25  # the delete never happened

    relay = OutboxRelay(
        demo_db,
        kafka_settings,
        service="demo",
        instance=demo_db.schema,
        topic_prefix=topic_prefix,
        batch_size=10,
    )
    try:
        assert await relay.drain() == 15  # the first 10 were recovered, not re-sent
    finally:
        await relay.stop()
    assert await rows_left(demo_db) == 0

    records = [
        r
        for r in await read_all(kafka_settings, topic_prefix + "orders.commands", expect=25)
        if r.key == user.encode()
    ]
    assert [decode(r.value).id for r in records] == [e.id for e in envelopes]
    headers = {k: v.decode() for k, v in records[0].headers}
    assert headers["x-message-type"] == "PlaceOrder"
    assert headers["x-user-id"] == user
