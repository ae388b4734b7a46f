"""`Connection` with a fake socket and an in-memory store: ordering, resume, gaps,
channel filters, the byte budget and token expiry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notifier.adapters.hub import Hub
from services.notifier.adapters.websocket import Connection, Context
from services.notifier.config import NotifierSettings
from services.notifier.domain.auth import Identity
from services.notifier.domain.protocol import (
    ORDERS,
    POSITIONS,
    ChannelSet,
    CloseCode,
    Ping,
    Subscribe,
)
from services.notifier.domain.stream import Cursor, StreamEntry
from tests.unit.notifier.fakes import FakeSocket, MemoryStore


class Verifier:
    async def verify(self, token: str) -> Identity:
        raise NotImplementedError


def entry(seq: int, channel: int = ORDERS, user: str = "u1", size: int = 0) -> StreamEntry:
    frame = json.dumps({"type": "order_update", "seq": seq, "pad": "x" * size})
    return StreamEntry(user, seq, channel, frame)


class Harness:
    def __init__(self, *, batched: bool = False, write_delay: float = 0, **settings: Any) -> None:
        self.store = MemoryStore()
        self.hub = Hub()
        self.socket = FakeSocket()
        self.closed: list[tuple[int, str]] = []
        values: dict[str, Any] = {"send_budget_bytes": 4096, "refresh_notice_s": 1.0}
        values.update(settings)
        self.ctx = Context(NotifierSettings(**values), self.hub, self.store, Verifier())
        self.writes: list[list[str]] = []
        self.write_delay = write_delay
        self.conn = Connection(
            self.ctx, self.socket, self._force, self._send_texts if batched else None
        )

    async def _send_texts(self, texts: list[str]) -> None:
        if self.write_delay:
            await asyncio.sleep(self.write_delay)  # the transport is paused for a moment
        self.writes.append(list(texts))
        for text in texts:
            await self.socket({"type": "websocket.send", "text": text})

    def _force(self, code: int, reason: str, _grace: float) -> None:
        self.closed.append((code, reason))

    def login(self, user: str = "u1", ttl: float = 3600) -> None:
        self.conn.authenticate(Identity(user, datetime.now(UTC) + timedelta(seconds=ttl)))
        self.hub.add(self.conn)

    def frames(self) -> list[dict[str, Any]]:
        """What the server wrote after ``authenticated``."""
        frames = [json.loads(t) for t in self.socket.texts]
        return frames[1:] if frames and frames[0]["type"] == "authenticated" else frames

    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames() if f["type"] == "order_update"]

    async def settle(self) -> None:
        for _ in range(200):
            await asyncio.sleep(0)
            if self.conn._writer is None:
                return


async def test_subscribe_when_live_then_stream_continues_after_current_seq() -> None:
    h = Harness()
    h.login()
    h.store.cursors["u1"] = Cursor("e1", last_seq=7)
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS)))
    await h.hub.publish([entry(6), entry(7)])  # committed before the subscription read: dropped
    await h.settle()
    await h.hub.publish([entry(8), entry(9)])
    await h.settle()
    subscribed = h.frames()[0]
    assert subscribed["type"] == "subscribed"
    assert subscribed["data"] == {
        "channels": ["orders"],
        "epoch": "e1",
        "seq": 7,
        "resume": "live",
    }
    assert h.seqs() == [8, 9]


async def test_subscribe_when_since_held_then_replay_then_live_without_duplicates() -> None:
    h = Harness()
    h.login()
    h.store.cursors["u1"] = Cursor("e1", last_seq=5)
    h.store.rows["u1"] = [entry(s) for s in range(1, 6)]
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS), since=2, epoch="e1"))
    await h.hub.publish([entry(4), entry(5), entry(6)])  # live overlapping the replay
    await h.settle()
    assert h.frames()[0]["data"]["resume"] == "recovered"
    assert h.frames()[0]["data"]["seq"] == 2
    assert h.seqs() == [3, 4, 5, 6]


async def test_subscribe_when_epoch_changed_then_not_recovered_and_live_from_now() -> None:
    h = Harness()
    h.login()
    h.store.cursors["u1"] = Cursor("e2", last_seq=9)
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS), since=3, epoch="e1"))
    await h.hub.publish([entry(10)])
    await h.settle()
    data = h.frames()[0]["data"]
    assert (data["resume"], data["reason"], data["seq"], data["epoch"]) == (
        "not_recovered",
        "epoch_changed",
        9,
        "e2",
    )
    assert h.seqs() == [10]


async def test_deliver_when_hub_skips_a_seq_then_hole_filled_from_store() -> None:
    h = Harness()
    h.login()
    h.store.cursors["u1"] = Cursor("e1", last_seq=1)
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS)))
    await h.settle()
    h.store.rows["u1"] = [entry(2), entry(3)]
    await h.hub.publish([entry(4)])  # 2 and 3 were committed by another instance
    await h.settle()
    await h.hub.publish([entry(3)])  # arrives late: already sent
    await h.settle()
    assert h.seqs() == [2, 3, 4]


async def test_deliver_when_channel_not_subscribed_then_seq_advances_silently() -> None:
    h = Harness()
    h.login()
    h.store.cursors["u1"] = Cursor("e1", last_seq=0)
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS)))
    await h.settle()
    await h.hub.publish([entry(1), entry(2, POSITIONS), entry(3)])
    await h.settle()
    assert h.seqs() == [1, 3]
    assert h.conn.last_seq == 3


async def test_offer_when_over_budget_then_closed_slow_without_waiting_on_the_socket() -> None:
    h = Harness(send_budget_bytes=2048)
    h.login()
    h.store.cursors["u1"] = Cursor("e1", last_seq=0)
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS)))
    await h.settle()
    # nothing is drained between these offers: the socket "is slow"
    await h.hub.publish([entry(s, size=500) for s in range(1, 10)])
    await asyncio.sleep(0)
    assert h.conn.closing is not None
    assert h.conn.closing.value == 4500
    assert h.closed == [(4500, "slow_consumer")]
    assert not h.hub.has_user("u1")
    assert len(h.conn.out) == 0


async def test_offer_when_a_big_batch_reaches_a_reading_client_then_not_mistaken_for_slow() -> None:
    h = Harness(send_budget_bytes=64 * 1024)
    h.login()
    h.store.cursors["u1"] = Cursor("e1", last_seq=0)
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS)))
    await h.settle()
    await h.hub.publish([entry(s, size=500) for s in range(1, 501)])  # ~260 KB at once
    await h.settle()
    assert h.conn.closing is None
    assert h.seqs() == list(range(1, 501))


async def test_offer_when_socket_takes_nothing_then_budget_trips_within_the_batch() -> None:
    h = Harness(send_budget_bytes=64 * 1024)
    h.login()
    h.store.cursors["u1"] = Cursor("e1", last_seq=0)
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS)))
    await h.settle()
    h.socket.stalled = True
    await h.hub.publish([entry(s, size=500) for s in range(1, 501)])
    assert h.conn.closing is CloseCode.SLOW_CONSUMER
    assert h.closed == [(4500, "slow_consumer")]


async def test_drain_when_burst_and_batched_writes_then_few_socket_writes_same_order() -> None:
    h = Harness(batched=True)
    h.login()
    h.store.cursors["u1"] = Cursor("e1", last_seq=0)
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS)))
    await h.settle()
    h.writes.clear()
    await h.hub.publish([entry(s) for s in range(1, 151)])
    await h.settle()
    assert h.seqs() == list(range(1, 151))
    assert len(h.writes) <= 4  # 64 frames per write at most
    assert max(len(w) for w in h.writes) <= 64


async def test_drain_when_an_entry_arrives_during_the_last_write_then_it_is_not_stranded() -> None:
    h = Harness(batched=True, write_delay=0.02)
    h.login()
    h.store.cursors["u1"] = Cursor("e1", last_seq=0)
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS)))
    for _ in range(10):
        await asyncio.sleep(0.01)
    await h.hub.publish([entry(1), entry(2), entry(3)])
    await asyncio.sleep(0.005)  # the writer is inside its final write now
    await h.hub.publish([entry(4)])
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert h.seqs() == [1, 2, 3, 4]
    assert h.conn._writer is None


async def test_ticker_when_updates_pile_up_then_only_latest_is_written() -> None:
    h = Harness()
    h.login()
    h.conn.subscribe(Subscribe(ChannelSet(0, frozenset({"BTC_USDT"}))))
    await h.settle()
    for price in ("1", "2", "3"):
        h.hub.publish_ticker("BTC_USDT", json.dumps({"type": "ticker", "price": price}))
    await h.settle()
    tickers = [f for f in h.frames() if f["type"] == "ticker"]
    assert [t["price"] for t in tickers] == ["3"]


async def test_ticker_when_subscribing_then_latest_known_price_first() -> None:
    h = Harness()
    h.hub.publish_ticker("BTC_USDT", json.dumps({"type": "ticker", "price": "9"}))
    h.login()
    h.conn.subscribe(Subscribe(ChannelSet(0, frozenset({"BTC_USDT"}))))
    await h.settle()
    assert [f["type"] for f in h.frames()] == ["subscribed", "ticker"]


async def test_ping_when_streaming_then_pong_names_the_last_seq_sent() -> None:
    h = Harness()
    h.login()
    h.store.cursors["u1"] = Cursor("e1", last_seq=0)
    h.conn.subscribe(Subscribe(ChannelSet(ORDERS)))
    await h.hub.publish([entry(1)])
    h.conn.ping(Ping("p"))
    await h.settle()
    pong = h.frames()[-1]
    assert pong["type"] == "pong"
    assert pong["data"] == {"id": "p", "seq": 1, "epoch": "e1"}


async def test_token_when_about_to_expire_then_told_then_closed_4402() -> None:
    h = Harness(refresh_notice_s=10)
    h.login(ttl=0.3)
    await h.settle()
    assert [json.loads(t)["type"] for t in h.socket.texts] == ["authenticated", "token_expiring"]
    await asyncio.sleep(0.5)
    assert h.closed == [(4402, "token_expired")]


async def test_close_when_called_twice_then_closed_once() -> None:
    h = Harness()
    h.login()
    await h.conn.close(CloseCode.INVALID_TOKEN)
    h.conn.close_soon(CloseCode.SLOW_CONSUMER)
    await asyncio.sleep(0)
    assert h.closed == [(4401, "invalid_token")]
