"""Every backend (the lean pool, httpx's pool, aiohttp's pool) against a tiny HTTP server on
127.0.0.1 that misbehaves on purpose: a failure is "not sent" (`OpexUnavailable` for an
order) only when the request surely never reached the server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import SecretStr
from yarl import URL

from shared.opex import (
    ApiKey,
    OpexAmbiguous,
    OpexClient,
    OpexError,
    OpexSettings,
    OpexUnavailable,
)
from shared.opex._settings import HttpBackend
from shared.opex._transport import AiohttpTransport, map_aiohttp_error

CREDS = ApiKey("k", SecretStr("s"))
OK = b'{"symbol":"BTCUSDT","orderId":-1}'
BACKENDS: list[HttpBackend] = ["lean", "httpx", "aiohttp"]

# What the server does with the n-th request it reads (counted from 1; the default: 200).
Behaviour = Callable[["Server", bytes, asyncio.StreamWriter], Awaitable[bool]]
"""Gets the server, the request and the writer; returns whether to keep going."""


async def answer(writer: asyncio.StreamWriter, body: bytes = OK, status: bytes = b"200 OK") -> None:
    writer.write(
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    await writer.drain()


class Server:
    """Reads HTTP/1.1 requests (head + Content-Length body) and applies ``behaviour``."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections = 0
        self.behaviour: dict[int, Behaviour] = {}
        self.stop = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.stop.set()
        for writer in self._writers:
            writer.close()
        await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 5)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                head += await reader.readexactly(length)
                self.requests.append(head)
                behave = self.behaviour.get(len(self.requests))
                if behave is None:
                    await answer(writer)
                elif not await behave(self, head, writer):
                    return
        except ConnectionError:
            return
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)


async def close_at_once(server: Server, head: bytes, writer: asyncio.StreamWriter) -> bool:
    return False  # the request was read: the connection is cut without an answer


async def headers_then_close(server: Server, head: bytes, writer: asyncio.StreamWriter) -> bool:
    # the sandbox's take-no-answer "drop": status line and headers, then nothing
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n")
    await writer.drain()
    return False


async def half_a_body(server: Server, head: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + OK[:10])
    await writer.drain()
    return False


async def garbage(server: Server, head: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 two hundred\r\nwhat\r\n\r\n")
    await writer.drain()
    return False


async def never(server: Server, head: bytes, writer: asyncio.StreamWriter) -> bool:
    await server.stop.wait()
    return False


async def trickle(server: Server, head: bytes, writer: asyncio.StreamWriter) -> bool:
    """A 20-byte answer, a byte every 0.1 s: never a read timeout, but 2 s long."""
    body = b"[" + b" " * 18 + b"]"
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
    for byte in body:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.1)
    return True


def client(server: Server, backend: HttpBackend, **changes: Any) -> OpexClient:
    values: dict[str, Any] = {"api_url": server.url, "timeout": 2, "http_backend": backend}
    return OpexClient(OpexSettings(**{**values, **changes}))


async def place(opex: OpexClient) -> object:
    return await opex.place_order(
        CREDS, "BTC_USDT", "BUY", "LIMIT", Decimal(1), Decimal(100), "GTC"
    )


async def cancel_v3(opex: OpexClient) -> object:
    return await opex.cancel_order(CREDS, "BTC_USDT", 7)  # DELETE


async def cancel_native(opex: OpexClient) -> object:
    return await opex.using("opex").cancel_order(CREDS, "BTC_USDT", 7)  # PUT


async def read(opex: OpexClient) -> object:
    return await opex.using("opex").open_orders(CREDS, "BTC_USDT")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with Server() as running:
        yield running


def test_the_backend_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPEX_HTTP_BACKEND", raising=False)
    assert OpexSettings().http_backend == "lean"
    monkeypatch.setenv("OPEX_HTTP_BACKEND", "httpx")
    assert OpexSettings().http_backend == "httpx"
    monkeypatch.setenv("OPEX_HTTP_BACKEND", "aiohttp")
    assert OpexSettings().http_backend == "aiohttp"
    monkeypatch.setenv("OPEX_HTTP_BACKEND", "requests")
    with pytest.raises(ValueError, match="http_backend"):
        OpexSettings()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_working_server_gets_one_request_per_call(
    server: Server, backend: HttpBackend
) -> None:
    async with client(server, backend) as opex:
        for _ in range(3):
            await place(opex)
        await cancel_v3(opex)
    assert len(server.requests) == 4
    assert server.connections == 1  # keep-alive


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "behaviour",
    [close_at_once, headers_then_close, half_a_body, garbage, never],
    ids=["disconnect", "headers-then-drop", "truncated-body", "garbage", "read-timeout"],
)
@pytest.mark.parametrize("call", [place, cancel_v3, cancel_native], ids=["place", "DELETE", "PUT"])
async def test_after_the_request_was_read_a_state_change_is_ambiguous(
    server: Server,
    backend: HttpBackend,
    behaviour: Behaviour,
    call: Callable[[OpexClient], Awaitable[object]],
) -> None:
    server.behaviour[1] = behaviour
    async with client(server, backend, timeout=0.5) as opex:
        with pytest.raises(OpexError) as caught:
            await call(opex)
    assert type(caught.value) is OpexAmbiguous
    assert len(server.requests) == 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("behaviour", [close_at_once, headers_then_close, never])
async def test_after_the_request_was_read_a_read_is_unavailable(
    server: Server, backend: HttpBackend, behaviour: Behaviour
) -> None:
    server.behaviour[1] = behaviour
    async with client(server, backend, timeout=0.5) as opex:
        with pytest.raises(OpexError) as caught:
            await read(opex)
    assert type(caught.value) is OpexUnavailable


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call", [cancel_v3, cancel_native], ids=["DELETE", "PUT"])
async def test_a_reused_connection_cut_after_the_request_is_not_sent_again(
    server: Server, backend: HttpBackend, call: Callable[[OpexClient], Awaitable[object]]
) -> None:
    """aiohttp would resend an 'idempotent' request (DELETE, PUT) that fails on a reused
    connection: a cancel the server took would be sent twice."""
    server.behaviour[2] = close_at_once
    async with client(server, backend) as opex:
        await place(opex)
        with pytest.raises(OpexAmbiguous):
            await call(opex)
    assert len(server.requests) == 2
    assert server.connections == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_nothing_listening_is_unavailable(backend: HttpBackend) -> None:
    async with Server() as gone:
        url = gone.url
    async with OpexClient(OpexSettings(api_url=url, timeout=2, http_backend=backend)) as opex:
        with pytest.raises(OpexError) as caught:
            await place(opex)
    assert type(caught.value) is OpexUnavailable
    assert caught.value.http_status is None


@pytest.mark.parametrize("backend", BACKENDS)
async def test_waiting_for_a_connection_past_the_timeout_is_unavailable(
    server: Server, backend: HttpBackend
) -> None:
    server.behaviour[1] = trickle
    async with client(server, backend, timeout=0.3, max_connections=1) as opex:
        first = asyncio.create_task(read(opex))
        await asyncio.sleep(0.1)  # the only connection is busy for 2 s
        with pytest.raises(OpexError) as caught:
            await place(opex)
        assert await first == []
    assert type(caught.value) is OpexUnavailable
    assert len(server.requests) == 1  # the order never went out


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_query_signed_is_the_query_sent(server: Server, backend: HttpBackend) -> None:
    async with client(server, backend) as opex:
        await opex.using("opex").place_order(
            CREDS, "BTC_USDT", "BUY", "LIMIT", Decimal("0.5"), Decimal("1e3"), "GTC"
        )
        await opex.deposit(CREDS, Decimal(5), "usdt", "a b/c?d", description="é & ü")
    for raw in server.requests:
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        fields = dict(line.split(": ", 1) for line in lines[1:])
        fields = {name.lower(): value for name, value in fields.items()}
        path, _, query = target.partition("?")
        body_hash = hashlib.sha256(body).hexdigest() if body else ""
        assert fields.get("x-api-body-sha256", "") == body_hash
        canonical = f"{method}\n/api{path}\n{query}\n{body_hash}\n{fields['x-api-timestamp']}"
        digest = hmac.new(b"s", canonical.encode(), hashlib.sha256).digest()
        assert fields["x-api-signature"] == base64.b64encode(digest).decode()
        assert list(fields).count("content-length") <= 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_no_keepalive_closes_each_connection(server: Server, backend: HttpBackend) -> None:
    async with client(server, backend, keepalive_expiry=0) as opex:
        await place(opex)
        await asyncio.sleep(0.05)
        await place(opex)
    assert server.connections == 2


@pytest.mark.parametrize("backend", BACKENDS)
async def test_gzip_answers_are_decoded_once(server: Server, backend: HttpBackend) -> None:
    import gzip

    async def zipped(server: Server, head: bytes, writer: asyncio.StreamWriter) -> bool:
        body = gzip.compress(b'{"status":"UP"}')
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        await writer.drain()
        return True

    server.behaviour[1] = zipped
    async with client(server, backend) as opex:
        assert (await opex.health()).up


KEY = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
INFO = aiohttp.RequestInfo(
    URL("http://127.0.0.1:1/v3/order"), "POST", CIMultiDictProxy(CIMultiDict())
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("pool or connect"), httpx.ConnectTimeout),
        (aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "no such host")), httpx.ConnectError),
        (
            aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")),
            httpx.ConnectError,
        ),
        (aiohttp.ServerFingerprintMismatch(b"a", b"b", "h", 1), httpx.ConnectError),
        (aiohttp.InvalidURL("x"), httpx.UnsupportedProtocol),
        (aiohttp.NonHttpUrlClientError("ftp://x"), httpx.UnsupportedProtocol),
        (aiohttp.SocketTimeoutError("sock_read"), httpx.ReadTimeout),
        (aiohttp.ServerTimeoutError("?"), httpx.ReadTimeout),
        (TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("truncated"), httpx.RemoteProtocolError),
        (aiohttp.ClientResponseError(INFO, (), status=400), httpx.RemoteProtocolError),
        (aiohttp.ClientResponseError(None, (), status=400), httpx.RemoteProtocolError),  # type: ignore[arg-type]
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (aiohttp.ClientConnectionResetError("closing transport"), httpx.ReadError),
        (aiohttp.ClientConnectionError("?"), httpx.ReadError),
        (aiohttp.ClientError("?"), httpx.ReadError),
        (ConnectionResetError(104, "reset"), httpx.ReadError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_exception_map(error: BaseException, expected: type[httpx.TransportError]) -> None:
    request = httpx.Request("POST", "http://127.0.0.1/v3/order")
    mapped = map_aiohttp_error(error, request)
    assert type(mapped) is expected
    assert mapped.request is request


async def test_the_transport_opens_its_pool_lazily_and_closes_it() -> None:
    transport = AiohttpTransport()  # no running request, no session
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/"))
