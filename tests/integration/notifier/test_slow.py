"""Slow-client isolation with real sockets: a client that stops reading is disconnected
with 4500 once its queue passes the byte budget, while a reading client of the same
user is served on time; the slow one then resumes from its last seq."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.messaging import KafkaSettings
from tests.integration.notifier.helpers import (
    Client,
    Notifier,
    Producer,
    StalledClient,
    hs_token,
    notifier_settings,
    order_accepted,
    unique,
)

pytestmark = pytest.mark.integration
EVENTS = 800


@pytest.fixture(scope="module")
async def small_budget(
    kafka_settings: KafkaSettings, database_url: str, topic_prefix: str, schema: str
) -> AsyncIterator[Notifier]:
    """A notifier with a 64 KiB budget and a 16 KiB socket send buffer per connection."""
    settings = notifier_settings(
        schema,
        topic_prefix,
        send_budget_bytes=64 * 1024,
        socket_send_buffer=16 * 1024,
        slow_close_grace_s=30.0,
    )
    server = Notifier(settings, kafka_settings, database_url)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def slow_disconnects(notifier: Notifier) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{notifier.port}/metrics")).text
    for line in text.splitlines():
        if line.startswith('notifier_disconnects_total{reason="slow_consumer"}'):
            return float(line.split()[-1])
    return 0.0


async def test_slow_client_when_it_stops_reading_then_cut_off_while_fast_one_keeps_pace(
    small_budget: Notifier, producer: Producer
) -> None:
    user = unique("slowfast")
    token = hs_token(user)
    before = await slow_disconnects(small_budget)
    stalled = await StalledClient.open(small_budget.port, f"/ws?token={token}&channels=orders")
    fast = await Client.open(small_budget.ws_url(token=token, channels="orders"))
    epoch = (await fast.expect("subscribed"))["data"]["epoch"]
    await asyncio.sleep(0.2)  # the stalled client's subscription is in place too

    arrivals: list[float] = []

    async def read_fast() -> None:
        while len(fast.seq_frames) < EVENTS:
            await fast.next(timeout=20)
            arrivals.append(time.monotonic())

    reading = asyncio.create_task(read_fast())
    sent_at: list[float] = []
    for start in range(0, EVENTS, 50):  # ~2,500 events/s in bursts of 50
        sent_at.append(time.monotonic())
        await producer.send(*(order_accepted(user, f"o{i}") for i in range(start, start + 50)))
        await asyncio.sleep(0.02)
    await asyncio.wait_for(reading, 30)
    done = time.monotonic()
    assert [f["seq"] for f in fast.seq_frames] == list(range(1, EVENTS + 1))
    # the fast client got the last event promptly after it was published
    assert arrivals[-1] - sent_at[-1] < 5.0
    assert done - sent_at[0] < 30.0
    assert await slow_disconnects(small_budget) == before + 1
    await fast.close()

    frames, code = await stalled.drain()
    assert code == 4500
    got = [f["seq"] for f in frames if f["type"] == "order_update"]
    assert got == list(range(1, len(got) + 1))  # what it did get was in order, no hole
    assert len(got) < EVENTS

    # and it comes back: resume from its last seq, get the rest, nothing twice
    last = got[-1] if got else 0
    resumed = await Client.open(
        small_budget.ws_url(token=token, channels="orders", since=last, epoch=epoch)
    )
    try:
        assert (await resumed.expect("subscribed"))["data"]["resume"] == "recovered"
        rest = await resumed.user_frames(EVENTS - last)
    finally:
        await resumed.close()
    assert [f["seq"] for f in rest] == list(range(last + 1, EVENTS + 1))
