"""The lean pool (`shared.opex._wire.LeanTransport`) on the answers a real server may give
beyond the common case, and its keep-alive rules (the failure semantics shared by every
backend are in test_transport.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.opex import OpexAmbiguous, OpexError, OpexUnavailable
from shared.opex._wire import LeanTransport
from tests.unit.shared.opex.test_transport import OK, Behaviour, Server, client, place, read


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with Server() as running:
        yield running


def replying(raw: bytes, *, keep: bool = True) -> Behaviour:
    async def behave(server: Server, head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep

    return behave


async def test_a_chunked_answer_is_joined(server: Server) -> None:
    body = b'{"symbol":"BTCUSDT",' + b'"orderId":-1}'
    server.behaviour[1] = replying(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"14;ext=1\r\n" + body[:20] + b"\r\n" + b"d\r\n" + body[20:] + b"\r\n0\r\n\r\n"
    )
    async with client(server, "lean") as opex:
        assert (await place(opex)).order_id == -1  # type: ignore[attr-defined]
        await place(opex)  # the connection is reused after a complete chunked answer
    assert server.connections == 1


async def test_chunked_trailers_are_skipped(server: Server) -> None:
    server.behaviour[1] = replying(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n" % len(OK) + OK + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    async with client(server, "lean") as opex:
        await place(opex)
        await place(opex)
    assert server.connections == 1


async def test_an_interim_answer_is_skipped(server: Server) -> None:
    server.behaviour[1] = replying(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(OK) + OK
    )
    async with client(server, "lean") as opex:
        await place(opex)


async def test_an_answer_framed_by_the_end_of_the_connection_is_read_whole(
    server: Server,
) -> None:
    server.behaviour[1] = replying(b"HTTP/1.0 200 OK\r\n\r\n" + OK, keep=False)
    async with client(server, "lean") as opex:
        await place(opex)
        await place(opex)  # on a new connection
    assert server.connections == 2


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_an_answer_that_ends_keep_alive_is_not_reused(server: Server, head: bytes) -> None:
    server.behaviour[1] = replying(head % len(OK) + OK)
    async with client(server, "lean") as opex:
        await place(opex)
        await place(opex)
    assert server.connections == 2


async def test_stray_bytes_after_an_answer_spoil_the_connection(server: Server) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(OK) + OK
    server.behaviour[1] = replying(answer + b"HTTP/1.1 200 OK\r\n")
    async with client(server, "lean") as opex:
        await place(opex)
        await place(opex)
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_reused(server: Server) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(OK) + OK
    server.behaviour[1] = replying(answer, keep=False)
    async with client(server, "lean") as opex:
        await place(opex)
        await asyncio.sleep(0.1)  # the server's close arrives while the connection is idle
        await place(opex)  # a new connection, not a failure
    assert len(server.requests) == 2
    assert server.connections == 2


async def test_an_idle_connection_past_the_expiry_is_not_reused(server: Server) -> None:
    async with client(server, "lean", keepalive_expiry=0.05) as opex:
        await place(opex)
        await asyncio.sleep(0.1)
        await place(opex)
    assert server.connections == 2


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
    ],
    ids=["two-lengths", "negative-length", "bad-header", "bad-chunk", "upgrade", "http2"],
)
async def test_an_unreadable_answer_is_ambiguous_for_an_order(server: Server, head: bytes) -> None:
    server.behaviour[1] = replying(head)
    async with client(server, "lean", timeout=0.5) as opex:
        with pytest.raises(OpexError) as caught:
            await place(opex)
    assert type(caught.value) is OpexAmbiguous


async def test_a_header_with_a_line_break_is_refused_before_sending(server: Server) -> None:
    async with client(server, "lean") as opex:
        opex._lean_defaults["X-Evil"] = "a\r\nX-Injected: 1"
        with pytest.raises(OpexError) as caught:
            await place(opex)
        with pytest.raises(OpexError):
            await read(opex)
    assert type(caught.value) is OpexUnavailable
    assert server.requests == []


async def test_a_request_cancelled_in_flight_closes_its_connection(server: Server) -> None:
    async def slow(server: Server, head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.3)
        return True

    server.behaviour[1] = slow
    async with client(server, "lean") as opex:
        task = asyncio.create_task(place(opex))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await place(opex)  # not on the connection whose answer is still owed
    assert server.connections == 2


async def test_httpx_requests_go_over_the_same_pool(server: Server) -> None:
    transport = LeanTransport(httpx.Limits(max_connections=1))
    async with httpx.AsyncClient(transport=transport, base_url=server.url) as http:
        first = await http.get("/a b")  # httpx encodes what the lean path would not take
        second = await http.post("/x", content=b"body")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json() == {"symbol": "BTCUSDT", "orderId": -1}
    assert server.requests[0].startswith(b"GET /a%20b HTTP/1.1\r\n")
    assert server.requests[1].endswith(b"\r\n\r\nbody")
    assert server.connections == 1


async def test_a_closed_pool_refuses_requests() -> None:
    transport = LeanTransport()
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/"))


async def test_a_scheme_other_than_http_is_refused() -> None:
    transport = LeanTransport()
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.send("GET", "ftp://127.0.0.1/x", {}, None, (1, 1, 1))


def test_the_pool_works_on_uvloop() -> None:
    """The services run on uvloop (uvicorn's default loop), whose transports are not
    `asyncio.Transport` subclasses."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> int:
        async with Server() as server:
            async with client(server, "lean") as opex:
                await place(opex)
                await place(opex)
            return server.connections

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == 1
