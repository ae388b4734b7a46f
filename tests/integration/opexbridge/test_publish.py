"""``opexbridge publish`` against the real broker: valid commands land keyed by user,
invalid ones are refused with the field and exit code 2."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from opexbridge.publish import command, publish
from shared.contracts import CancelOrder, PlaceOrder, decode
from shared.messaging import KafkaSettings
from tests.integration.opexbridge.support import invoke
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration


async def test_publish_when_valid_then_the_command_is_on_the_topic_keyed_by_user(
    kafka_settings: KafkaSettings, topic_prefix: str, tmp_path: Path
) -> None:
    user = f"p-{uuid.uuid4().hex[:8]}"
    sent = await publish(
        kafka_settings,
        command("CancelOrder", user, symbol="BTCUSDT", client_order_id="c-1"),
        prefix=topic_prefix,
    )
    result = await invoke(
        "publish", "place", "--user", user, "--symbol", "BTCUSDT", "--side", "buy",
        "--type", "limit", "--quantity", "0.001", "--price", "45000",
        "--client-order-id", "cli-1", "--prefix", topic_prefix, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    placed = json.loads(result.stdout)
    body = tmp_path / "close.json"
    body.write_text(json.dumps({"type": "ClosePosition", "user_id": user, "symbol": "ETH_USDT"}))
    from_file = await invoke("publish", "--file", str(body), "--prefix", topic_prefix, "--json")
    assert from_file.exit_code == 0, from_file.output
    closed = json.loads(from_file.stdout)

    topic = topic_prefix + "orders.commands"
    records = [
        r
        for r in await read_all(kafka_settings, topic, expect=1, idle=0.2)
        if r.key == user.encode()
    ]
    by_id = {str(decode(r.value).id): r for r in records}
    assert set(by_id) == {sent.id, placed["id"], closed["id"]}
    order = decode(by_id[placed["id"]].value).data_as(PlaceOrder)
    assert (order.symbol, str(order.quantity), str(order.price)) == ("BTC_USDT", "0.001", "45000")
    assert decode(by_id[sent.id].value).data_as(CancelOrder).client_order_id == "c-1"
    assert dict(by_id[closed["id"]].headers)["x-message-type"] == b"ClosePosition"
    assert (by_id[placed["id"]].partition, by_id[placed["id"]].offset) == (
        placed["partition"],
        placed["offset"],
    )


async def test_publish_when_invalid_then_names_the_field_and_exits_2(topic_prefix: str) -> None:
    result = await invoke(
        "publish", "place", "--user", "42", "--symbol", "BTCUSDT", "--side", "buy",
        "--type", "limit", "--quantity", "-1", "--price", "45000", "--prefix", topic_prefix,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "data.quantity" in result.output
    missing = await invoke(
        "publish", "place", "--user", "42", "--symbol", "BTCUSDT", "--side", "buy",
        "--type", "limit", "--quantity", "1", "--prefix", topic_prefix,
    )  # fmt: skip
    assert missing.exit_code == 2
    assert "data.price" in missing.output
