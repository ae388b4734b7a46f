"""``opexbridge tail`` against the real broker: decoded, filtered messages."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import pytest

from opexbridge.tail import collect
from shared.contracts import CancelOrder, PlaceOrder, encode, new_message
from shared.messaging import KafkaSettings
from tests.integration.opexbridge.support import invoke
from tests.support.kafka import produce

pytestmark = pytest.mark.integration


def place(user: str, n: int) -> bytes:
    data = PlaceOrder(
        client_order_id=f"t-{n}",
        symbol="BTC_USDT",
        side="buy",
        type="limit",
        quantity=Decimal("0.5"),
        price=Decimal("100"),
    )
    return encode(new_message(data, user_id=user))


def cancel(user: str, n: int) -> bytes:
    return encode(
        new_message(CancelOrder(symbol="BTC_USDT", client_order_id=f"t-{n}"), user_id=user)
    )


async def test_tail_when_filtered_by_user_and_type_then_shows_exactly_the_seeded_messages(
    kafka_settings: KafkaSettings, topic_prefix: str
) -> None:
    topic = topic_prefix + "orders.commands"
    alice, bob = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    await produce(
        kafka_settings,
        topic,
        [
            (alice.encode(), place(alice, 1)),
            (bob.encode(), place(bob, 2)),
            (alice.encode(), cancel(alice, 1)),
            (alice.encode(), b"{not json"),
            (alice.encode(), place(alice, 3)),
        ],
    )

    records = await collect(
        kafka_settings,
        "orders.commands",
        prefix=topic_prefix,
        from_beginning=True,
        follow=False,
        user=alice,
    )
    assert [r.type for r in records] == ["PlaceOrder", "CancelOrder", None, "PlaceOrder"]
    assert records[2].envelope is None
    assert "MALFORMED_JSON" in (records[2].error or "")
    assert all(r.key == alice for r in records)

    cancels = await collect(
        kafka_settings,
        topic,
        from_beginning=True,
        follow=False,
        user=alice,
        type_="CancelOrder",
    )
    assert [r.envelope.data.client_order_id for r in cancels if r.envelope] == ["t-1"]

    result = await invoke(
        "tail", "orders.commands", "--prefix", topic_prefix, "--from-beginning", "--no-follow",
        "--user", bob,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [(x["type"], x["user_id"], x["data"]["client_order_id"]) for x in lines] == [
        ("PlaceOrder", bob, "t-2")
    ]


async def test_tail_when_following_from_the_end_then_shows_only_new_messages(
    kafka_settings: KafkaSettings, topic_prefix: str
) -> None:
    topic = topic_prefix + "orders.commands"
    user = f"f-{uuid.uuid4().hex[:8]}"
    await produce(kafka_settings, topic, [(user.encode(), place(user, 0))])  # before: not shown
    task = asyncio.create_task(collect(kafka_settings, topic, user=user, limit=2, follow=True))
    n = 1
    while not task.done() and n < 100:
        await asyncio.sleep(0.3)
        await produce(kafka_settings, topic, [(user.encode(), place(user, n))])
        n += 1
    records = await asyncio.wait_for(task, 10)
    ids = [r.envelope.data.client_order_id for r in records if r.envelope]
    assert len(ids) == 2
    assert "t-0" not in ids
    assert ids == sorted(ids, key=lambda s: int(s.split("-")[1]))
