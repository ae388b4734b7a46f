"""Cross-user isolation with real WebSocket clients: two users, each sees only its own
orders, positions and account events (and both see the public ticker)."""

from __future__ import annotations

import pytest

from tests.integration.notifier.helpers import (
    Client,
    Notifier,
    Producer,
    balances_updated,
    hs_token,
    order_accepted,
    position_updated,
    ticker,
    unique,
)

pytestmark = pytest.mark.integration


async def test_two_users_when_both_have_events_then_each_sees_only_its_own(
    notifier: Notifier, producer: Producer
) -> None:
    alice, bob = unique("alice"), unique("bob")
    a = await Client.open(
        notifier.ws_url(token=hs_token(alice), channels="orders,positions,account")
    )
    b = await Client.open(notifier.ws_url(token=hs_token(bob), channels="orders,positions,account"))
    try:
        for client in (a, b):
            assert (await client.expect("authenticated"))["data"]["user_id"] in (alice, bob)
            subscribed = await client.expect("subscribed")
            assert subscribed["data"]["resume"] == "live"
        await producer.send(
            order_accepted(alice, "a-1"),
            order_accepted(bob, "b-1"),
            position_updated(alice, "BTC_USDT", "0.5"),
            balances_updated(bob, "100"),
            order_accepted(alice, "a-2"),
            position_updated(bob, "ETH_USDT", "-2"),
        )
        got_a = await a.user_frames(3)
        got_b = await b.user_frames(3)
    finally:
        await a.close()
        await b.close()
    # one seq per user, contiguous; topics interleave in the order they were recorded
    assert [f["seq"] for f in got_a] == [1, 2, 3]
    assert [f["seq"] for f in got_b] == [1, 2, 3]
    assert sorted((f["type"], f["data"]["id"]) for f in got_a if f["channel"] == "orders") == [
        ("order_update", "a-1"),
        ("order_update", "a-2"),
    ]
    assert [f["data"]["symbol"] for f in got_a if f["channel"] == "positions"] == ["BTC_USDT"]
    account = [f for f in got_b if f["type"] == "account_update"]
    assert account[0]["data"]["balances"] == [{"asset": "USDT", "free": "100", "locked": "0"}]
    assert [f["data"]["quantity"] for f in got_b if f["channel"] == "positions"] == ["-2"]
    for frame in got_a:
        assert bob not in str(frame)
    for frame in got_b:
        assert alice not in str(frame)
    first = next(f for f in got_a if f["data"].get("id") == "a-1")
    assert first["data"]["status"] == "accepted"
    assert first["data"]["filled_quantity"] == "0"


async def test_ticker_channel_when_subscribed_then_public_prices_for_everyone_who_asked(
    notifier: Notifier, producer: Producer
) -> None:
    watcher_a = await Client.open(notifier.ws_url(token=hs_token(unique("ta"))))
    watcher_b = await Client.open(notifier.ws_url(token=hs_token(unique("tb")), channels="orders"))
    try:
        await watcher_a.send({"type": "subscribe", "channels": ["ticker:btcusdt"]})
        subscribed = await watcher_a.expect("subscribed")
        await watcher_b.send({"type": "subscribe", "channels": ["ticker:BTC_USDT"]})
        await watcher_b.expect("subscribed")
        await watcher_b.expect("subscribed")
        await producer.send(ticker("ETH_USDT", "3000"), ticker("BTC_USDT", "65000.5"))
        got_a = await watcher_a.expect("ticker")
        got_b = await watcher_b.expect("ticker")
        await watcher_a.send({"type": "unsubscribe", "channels": ["ticker:BTC_USDT"]})
        await watcher_a.expect("unsubscribed")
    finally:
        await watcher_a.close()
        await watcher_b.close()
    assert subscribed["data"] == {"channels": ["ticker:BTC_USDT"]}
    for frame in (got_a, got_b):
        assert frame["channel"] == "ticker:BTC_USDT"
        assert frame["data"]["last_price"] == "65000.5"
        assert "seq" not in frame
