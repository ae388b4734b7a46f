"""The sandbox server's write coalescing: an answer leaves in one write, nothing is lost,
reordered or held past the loop step."""

from __future__ import annotations

import asyncio
from typing import Any

from services.opex_sandbox.server import CoalescingTransport


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def wrap(fake: FakeTransport) -> CoalescingTransport:
    return CoalescingTransport(fake, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_head_and_body_go_out_in_one_write() -> None:
    fake = FakeTransport()
    transport = wrap(fake)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert fake.writes == []
    assert transport.get_write_buffer_size() == 19
    transport.write(b"{}")
    assert fake.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    await asyncio.sleep(0)
    assert fake.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]


async def test_a_lone_write_goes_out_at_the_end_of_the_step() -> None:
    fake = FakeTransport()
    transport = wrap(fake)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")  # e.g. a HEAD answer: no body write
    await asyncio.sleep(0)
    assert fake.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]


async def test_more_writes_keep_their_order() -> None:
    fake = FakeTransport()
    transport = wrap(fake)
    for part in (b"a", b"b", b"c"):
        transport.write(part)
    await asyncio.sleep(0)
    assert b"".join(fake.writes) == b"abc"


async def test_close_sends_what_is_held_first() -> None:
    fake = FakeTransport()
    transport = wrap(fake)
    transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n")  # the "drop" fault
    transport.close()
    assert fake.writes == [b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n"]
    assert fake.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert len(fake.writes) == 1


async def test_abort_discards_what_is_held() -> None:
    fake = FakeTransport()
    transport = wrap(fake)
    transport.write(b"x")
    transport.abort()
    await asyncio.sleep(0)
    assert fake.writes == []
    assert fake.aborted


async def test_everything_else_is_the_transport_s() -> None:
    fake = FakeTransport()
    transport = wrap(fake)
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
    assert transport.is_closing() is False
