"""Gap-free resume with a real WebSocket client: a client that reconnects with its last
seq gets exactly what it missed, in order, then the live stream; or an explicit
``not_recovered`` telling it to reload. And snapshot-then-stream: the REST snapshot's
seq is where the stream picks up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.notifier.adapters.store import StreamStore
from services.notifier.domain.stream import Retention
from tests.integration.notifier.helpers import (
    Client,
    Notifier,
    Producer,
    hs_token,
    order_accepted,
    position_updated,
    unique,
)
from tests.support.kafka import wait_for

pytestmark = pytest.mark.integration


async def stream_position(notifier: Notifier, token: str) -> tuple[int, str]:
    async with notifier.http() as http:
        body = (
            await http.get("/api/trading/account", headers={"Authorization": f"Bearer {token}"})
        ).json()
    return int(body["seq"]), str(body["epoch"])


async def recorded(notifier: Notifier, token: str, seq: int) -> None:
    async def reached() -> bool:
        return (await stream_position(notifier, token))[0] >= seq

    await wait_for(reached, timeout=20)


def ids(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"]["id"] for f in frames]


async def test_resume_when_disconnected_mid_stream_then_exactly_what_was_missed_in_order(
    notifier: Notifier, producer: Producer
) -> None:
    user = unique("resume")
    token = hs_token(user)
    first = await Client.open(notifier.ws_url(token=token, channels="orders,positions"))
    epoch = (await first.expect("subscribed"))["data"]["epoch"]
    await producer.send(*(order_accepted(user, f"o{i}") for i in range(10)))
    got = (await first.user_frames(4))[:4]  # the client processed 4, then dropped
    await first.close()
    last = got[-1]["seq"]
    await producer.send(
        *(order_accepted(user, f"o{i}") for i in range(10, 18)),
        position_updated(user, "BTC_USDT", "1"),
    )
    await recorded(notifier, token, 19)

    second = await Client.open(
        notifier.ws_url(token=token, channels="orders,positions", since=last, epoch=epoch)
    )
    try:
        subscribed = await second.expect("subscribed")
        replayed = await second.user_frames(19 - last)
        await producer.send(order_accepted(user, "live-1"), order_accepted(user, "live-2"))
        everything = await second.user_frames(19 - last + 2)
        await asyncio.sleep(0.3)  # anything doubled would arrive now
    finally:
        await second.close()
    assert subscribed["data"] == {
        "channels": ["orders", "positions"],
        "epoch": epoch,
        "seq": last,
        "resume": "recovered",
    }
    assert [f["seq"] for f in replayed] == list(range(last + 1, 20))
    assert [f["seq"] for f in second.seq_frames] == list(range(last + 1, 22))
    seen = ids(got) + ids(everything)
    expected = [f"o{i}" for i in range(18)] + [f"p-{user}-BTC_USDT", "live-1", "live-2"]
    assert sorted(seen) == sorted(expected)  # nothing lost, nothing twice


async def test_resume_when_epoch_unknown_or_seq_ahead_then_not_recovered(
    notifier: Notifier, producer: Producer
) -> None:
    user = unique("stale")
    token = hs_token(user)
    await producer.send(order_accepted(user, "a"), order_accepted(user, "b"))
    await recorded(notifier, token, 2)
    _seq, epoch = await stream_position(notifier, token)
    for since, claimed, reason in ((1, "not-the-epoch", "epoch_changed"), (99, epoch, "ahead")):
        client = await Client.open(
            notifier.ws_url(token=token, channels="orders", since=since, epoch=claimed)
        )
        try:
            data = (await client.expect("subscribed"))["data"]
            await producer.send(order_accepted(user, f"after-{reason}"))
            live = await client.user_frames(1)
        finally:
            await client.close()
        assert (data["resume"], data["reason"], data["epoch"]) == ("not_recovered", reason, epoch)
        assert live[0]["seq"] == data["seq"] + 1  # live from where the reload will stand


async def test_resume_when_events_were_pruned_then_too_old_but_retained_ones_recover(
    notifier: Notifier, producer: Producer
) -> None:
    user = unique("pruned")
    token = hs_token(user)
    await producer.send(*(order_accepted(user, f"o{i}") for i in range(15)))
    await recorded(notifier, token, 15)
    _seq, epoch = await stream_position(notifier, token)
    store: StreamStore = notifier.app.state.store
    keep_ten = StreamStore(store.db, retention=Retention(events=10))
    assert await keep_ten.prune() >= 5

    client = await Client.open(
        notifier.ws_url(token=token, channels="orders", since=3, epoch=epoch)
    )
    data = (await client.expect("subscribed"))["data"]
    await client.close()
    assert (data["resume"], data["reason"]) == ("not_recovered", "too_old")

    client = await Client.open(
        notifier.ws_url(token=token, channels="orders", since=5, epoch=epoch)
    )
    try:
        data = (await client.expect("subscribed"))["data"]
        replay = await client.user_frames(10)
    finally:
        await client.close()
    assert data["resume"] == "recovered"
    assert [f["seq"] for f in replay] == list(range(6, 16))


async def test_resume_when_stream_reset_then_new_epoch_and_client_told_to_reload(
    notifier: Notifier, producer: Producer
) -> None:
    user = unique("reset")
    token = hs_token(user)
    await producer.send(order_accepted(user, "a"))
    await recorded(notifier, token, 1)
    seq, old_epoch = await stream_position(notifier, token)
    await notifier.app.state.store.reset_stream(user)
    client = await Client.open(
        notifier.ws_url(token=token, channels="orders", since=seq, epoch=old_epoch)
    )
    try:
        data = (await client.expect("subscribed"))["data"]
    finally:
        await client.close()
    assert (data["resume"], data["reason"]) == ("not_recovered", "epoch_changed")
    assert data["epoch"] != old_epoch


async def test_snapshot_then_stream_when_events_keep_coming_then_no_gap_no_duplicate(
    notifier: Notifier, producer: Producer
) -> None:
    user = unique("snap")
    token = hs_token(user)
    await producer.send(*(order_accepted(user, f"s{i}") for i in range(5)))
    await recorded(notifier, token, 5)
    publishing = asyncio.create_task(
        producer.send(*(order_accepted(user, f"s{i}") for i in range(5, 25)))
    )
    async with notifier.http() as http:
        snapshot = (
            await http.get(
                "/api/trading/orders",
                params={"limit": 1000},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
    client = await Client.open(
        notifier.ws_url(
            token=token, channels="orders", since=snapshot["seq"], epoch=snapshot["epoch"]
        )
    )
    try:
        await publishing
        streamed = await client.user_frames(25 - snapshot["seq"])
        await asyncio.sleep(0.3)
    finally:
        await client.close()
    assert len(snapshot["items"]) == snapshot["seq"]
    assert {item["seq"] for item in snapshot["items"]} == set(range(1, snapshot["seq"] + 1))
    assert [f["seq"] for f in client.seq_frames] == list(range(snapshot["seq"] + 1, 26))
    loaded = {item["id"] for item in snapshot["items"]}
    assert loaded.isdisjoint(ids(streamed))
    assert loaded | set(ids(streamed)) == {f"s{i}" for i in range(25)}
