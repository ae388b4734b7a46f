"""The demo page (``GET /demo`` on the notifier) in headless Chromium, against a real
notifier fed with events published directly to this session's topics: what happened
before the page opened comes from the REST snapshots, what happens after over the
WebSocket, and only the token's user is shown."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import (
    Fill,
    OrderFilled,
    OrderRejected,
    new_message,
)
from shared.db import migrate
from shared.messaging import KafkaSettings
from tests.integration.notifier.helpers import (
    Notifier,
    Producer,
    balances_updated,
    hs_token,
    notifier_settings,
    order_accepted,
    position_updated,
    ticker,
)
from tests.integration.opexbridge.browser import Browser, find_chromium
from tests.integration.order_gateway.support import drop_schema

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium on this machine (apt-get install chromium, or set CHROMIUM)",
    ),
    pytest.mark.timeout(180),
]
MIGRATIONS = (
    Path(__file__).resolve().parents[3] / "services" / "notifier" / "migrations" / "versions"
)

ROWS = """JSON.stringify(Array.from(document.querySelectorAll('#orders tbody tr'))
  .map(tr => [tr.dataset.id, tr.dataset.status]))"""
POSITIONS = """JSON.stringify(Array.from(document.querySelectorAll('#positions tbody tr'))
  .map(tr => [tr.dataset.symbol, tr.dataset.quantity]))"""


@pytest.fixture(scope="module")
def schema(database_url: str) -> Iterator[str]:
    name = f"notifier_demo_t{uuid.uuid4().hex[:8]}"
    migrate(database_url, name, MIGRATIONS)
    yield name
    drop_schema(database_url, name)


@pytest.fixture(scope="module")
async def notifier(
    kafka_settings: KafkaSettings, database_url: str, topic_prefix: str, schema: str
) -> AsyncIterator[Notifier]:
    server = Notifier(notifier_settings(schema, topic_prefix), kafka_settings, database_url)
    await server.start()
    try:
        yield server
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


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    browser = Browser(CHROMIUM)
    await browser.start()
    try:
        yield browser
    finally:
        await browser.close()


def filled(user: str, client_order_id: str) -> Any:
    fill = Fill(
        trade_id=f"t-{client_order_id}",
        price=Decimal("49999.5"),
        quantity=Decimal("0.01"),
        fee=Decimal("0.00001"),
        fee_asset="BTC",
        liquidity="maker",
    )
    return new_message(
        OrderFilled(
            client_order_id=client_order_id,
            order_id=f"x-{client_order_id}",
            symbol="BTC_USDT",
            side="buy",
            order_type="limit",
            status="filled",
            quantity=Decimal("0.01"),
            price=Decimal(50000),
            filled_quantity=Decimal("0.01"),
            avg_price=Decimal("49999.5"),
            last_fill=fill,
        ),
        user_id=user,
    )


def rejected(user: str, client_order_id: str) -> Any:
    return new_message(
        OrderRejected(
            client_order_id=client_order_id,
            symbol="BTC_USDT",
            side="buy",
            order_type="limit",
            quantity=Decimal(40),
            price=Decimal(50000),
            source="risk",
            reason_code="ORDER_VALUE_OUT_OF_BOUNDS",
            reason="too big",
        ),
        user_id=user,
    )


async def rows(browser: Browser, expression: str) -> list[list[str]]:
    return list(json.loads(await browser.evaluate(expression)))


async def test_the_page_loads_then_streams_one_users_orders_and_positions(
    notifier: Notifier, producer: Producer, browser: Browser
) -> None:
    user, other = f"demo-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    # before the page opens: only the snapshots can show these
    await producer.send(
        order_accepted(user, "early"),
        balances_updated(user, "100000"),
        order_accepted(other, "not-mine"),
    )
    async with notifier.http() as http:
        token = hs_token(user, ttl=600)
        for _ in range(100):  # the notifier has recorded them
            answer = await http.get(
                "/api/trading/orders", headers={"Authorization": f"Bearer {token}"}
            )
            if answer.json()["items"]:
                break
            await asyncio.sleep(0.1)
        page = await http.get("/demo")
        assert page.status_code == 200

    await browser.goto(f"http://127.0.0.1:{notifier.port}/demo#token={token}")
    await browser.wait_for("document.querySelector('#status')?.dataset.state === 'live'")
    assert await browser.evaluate("location.hash") == ""  # the token left the address bar
    assert user in await browser.evaluate("document.querySelector('#who').textContent")
    await browser.wait_for("document.querySelector('#orders tbody tr[data-id=\"early\"]') !== null")
    await browser.wait_for(
        "document.querySelector('#balances tbody tr[data-asset=\"USDT\"]') !== null"
    )

    # after: live over the WebSocket
    await producer.send(
        order_accepted(user, "live-1"),
        rejected(user, "too-big"),
        position_updated(other, "BTC_USDT", "9"),
        ticker("BTC_USDT", "49999.5"),
    )
    await producer.send(filled(user, "live-1"), position_updated(user, "BTC_USDT", "0.01"))
    await browser.wait_for(
        "document.querySelector('#orders tbody tr[data-id=\"live-1\"]')?.dataset.status === 'filled'"
    )
    await browser.wait_for(
        "document.querySelector('#orders tbody tr[data-id=\"too-big\"]')?.dataset.status === 'rejected'"
    )
    await browser.wait_for("document.querySelectorAll('#positions tbody tr').length === 1")
    shown = dict(await rows(browser, ROWS))
    assert shown == {"early": "accepted", "live-1": "filled", "too-big": "rejected"}
    assert await rows(browser, POSITIONS) == [["BTC_USDT", "0.01"]]
    rejected_text = await browser.evaluate(
        "document.querySelector('#orders tbody tr[data-id=\"too-big\"] .status').textContent"
    )
    assert "ORDER_VALUE_OUT_OF_BOUNDS" in rejected_text

    # a flat position leaves the table
    await producer.send(position_updated(user, "BTC_USDT", "0"))
    await browser.wait_for("document.querySelectorAll('#positions tbody tr').length === 0")
    assert browser.errors == []


async def test_a_bad_token_asks_for_another(notifier: Notifier, browser: Browser) -> None:
    await browser.goto(f"http://127.0.0.1:{notifier.port}/demo#token=not-a-token")
    await browser.wait_for("document.querySelector('#status')?.dataset.state === 'error'")
    assert await browser.evaluate("document.querySelector('#token-form').hidden") is False
