from __future__ import annotations

import asyncio
import struct
from typing import Any

from services.notifier.bench import LeanClient, order_bytes, percentile
from shared.contracts import OrderAccepted, decode


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def frame(opcode: int, payload: bytes) -> bytes:
    if len(payload) < 126:
        return struct.pack("!BB", 0x80 | opcode, len(payload)) + payload
    return struct.pack("!BBH", 0x80 | opcode, 126, len(payload)) + payload


def test_percentile_when_values_then_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.99) == 0.0


async def test_lean_client_when_frames_arrive_in_pieces_then_texts_and_pong() -> None:
    texts: list[bytes] = []
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    client = LeanClient("/ws", ready, texts.append)
    transport: Any = Transport()
    client.transport = transport
    big = b'{"type":"order_update","data":{"id":"b1"},"pad":"' + b"x" * 300 + b'"}'
    stream = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        + frame(0x1, b'{"type":"subscribed","data":{}}')
        + frame(0x9, b"ping")
        + frame(0x1, big)
    )
    for i in range(0, len(stream), 7):  # arbitrary TCP segmentation
        client.data_received(stream[i : i + 7])
    assert ready.done()
    assert texts[1] == big
    pong = transport.written[-1]
    assert pong[0] == 0x8A  # FIN + pong, masked payload follows
    assert pong[1] == 0x80 | 4


def test_order_bytes_when_built_then_a_valid_event_keyed_by_index() -> None:
    envelope = decode(order_bytes("u1", 7), topic="orders.events")
    assert envelope.user_id == "u1"
    assert envelope.data_as(OrderAccepted).client_order_id == "b7"
