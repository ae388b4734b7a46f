"""A lean HTTP/1.1 connection pool on asyncio (``OPEX_HTTP_BACKEND=lean``, the default).

OPEX's calls are small requests with small JSON answers; what they cost is the client
library around them. httpx (httpcore) and aiohttp spend far more CPU per request than the
bytes need: request and response objects, header containers, URL objects, timers,
tracing hooks. This pool writes each request with one ``transport.write`` and reads the
answer in the protocol's ``data_received``: a status line, headers, and a body framed by
``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the connection. It is
also an `httpx.AsyncBaseTransport`, so a call the lean path does not take (a route httpx
must percent-encode, cookies) goes through httpx over the same pool and limits.

What a failure means follows one rule: only a failure before the request was handed to
the socket is "not sent".

==============================================  ===========================  ==========
what happened                                   raised                       sent?
==============================================  ===========================  ==========
no free connection within ``pool`` seconds      ``httpx.PoolTimeout``        not sent
connect took longer than ``connect`` seconds    ``httpx.ConnectTimeout``     not sent
connect failed (refused, DNS, TLS)              ``httpx.ConnectError``       not sent
a header with CR/LF, a non-ASCII target         ``httpx.LocalProtocolError`` not sent
scheme other than http / https                  ``httpx.UnsupportedProtocol`` not sent
no byte for ``read`` seconds                    ``httpx.ReadTimeout``        maybe
closed before the whole answer, garbage         ``httpx.RemoteProtocolError`` maybe
connection reset, any other socket error        ``httpx.ReadError``          maybe
==============================================  ===========================  ==========

Nothing is ever sent twice: a request that fails on a reused connection is not retried
(`OpexClient` never retries). A connection goes back to the pool only after a complete
answer that allows keep-alive, with no stray bytes after it; a cancelled or failed request
closes its connection. Idle connections older than ``keepalive_expiry`` are closed when
next looked at, and one the server closed while idle is never reused.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from typing import Any, cast
from urllib.parse import urlsplit

import httpx

from shared.opex._transport import RawResponse

__all__ = ["LeanTransport"]

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\r\n]*))?")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_MAX_HEAD = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _unsafe(text: str) -> bool:
    return "\r" in text or "\n" in text


class _Broken(Exception):
    """The answer cannot be read (becomes `httpx.RemoteProtocolError`)."""


class _Origin:
    """Where a base URL's requests go: the pool key, the address and the Host header."""

    __slots__ = ("host", "host_header", "port", "scheme")

    def __init__(self, origin: str) -> None:
        parts = urlsplit(origin)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"the scheme of {origin[:64]!r} is not http(s)")
        if not parts.hostname:
            raise httpx.UnsupportedProtocol(f"{origin[:64]!r} has no host")
        self.scheme = scheme
        self.host = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[scheme]
        netloc = parts.netloc.rpartition("@")[2]
        if parts.port == _DEFAULT_PORTS[scheme]:  # httpx leaves a default port out
            netloc = netloc.rpartition(":")[0]
        self.host_header = netloc


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, the answer parsed as it comes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reusable = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[RawResponse] | None = None
        self._head_request = False
        self._timeout = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self._reset()

    def _reset(self) -> None:
        self._head: tuple[int, str, tuple[tuple[bytes, bytes], ...], bool] | None = None
        self._length: int | None = None  # Content-Length framing
        self._chunked = False
        self._chunk_left: int | None = None  # None: a chunk-size line is next
        self._body = bytearray()

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's are not `asyncio.Transport` subclasses)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        self._last_read = self.loop.time()
        self._buffer += data
        try:
            self._parse()
        except _Broken as exc:
            self._fail(httpx.RemoteProtocolError(f"unreadable answer: {exc}"))

    def eof_received(self) -> bool:
        self.closed = True
        self._finish_at_eof()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is not None:
            self._fail(httpx.ReadError(f"{type(exc).__name__}: {exc}"))
        else:
            self._finish_at_eof()

    # -- a request ----------------------------------------------------------------------

    def request(
        self, data: bytes, *, head: bool, read_timeout: float | None
    ) -> asyncio.Future[RawResponse]:
        """Write ``data`` (a whole request) and return the future of its answer."""
        assert self.transport is not None
        assert self._waiter is None
        self._waiter = waiter = self.loop.create_future()
        self._head_request = head
        self.reusable = False
        self._reset()
        self._last_read = self.loop.time()
        self.transport.write(data)
        if read_timeout is not None:
            self._timeout = read_timeout
            self._timer = self.loop.call_at(self._last_read + read_timeout, self._check_timeout)
        return waiter

    def _check_timeout(self) -> None:
        self._timer = None
        if self._waiter is None or self._waiter.done():
            return
        due = self._last_read + self._timeout
        if self.loop.time() >= due:
            self._fail(httpx.ReadTimeout(f"no answer within {self._timeout:g} s"))
        else:
            self._timer = self.loop.call_at(due, self._check_timeout)

    def _settle(self) -> asyncio.Future[RawResponse] | None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return waiter if waiter is not None and not waiter.done() else None

    def _fail(self, exc: httpx.TransportError) -> None:
        waiter = self._settle()
        self.close()
        if waiter is not None:
            waiter.set_exception(exc)

    def _complete(self, body: bytes) -> None:
        assert self._head is not None
        status, reason, headers, keep_alive = self._head
        self.reusable = keep_alive and not self._buffer and not self.closed
        self._reset()
        waiter = self._settle()
        if waiter is not None:
            waiter.set_result(RawResponse(status, reason, headers, body))

    def _finish_at_eof(self) -> None:
        if self._waiter is None:
            return
        head = self._head
        if head is not None and self._length is None and not self._chunked:
            # framed by the end of the connection: the body is complete now
            self._head = (head[0], head[1], head[2], False)
            self._complete(bytes(self._buffer))
            self._buffer.clear()
            return
        what = "the answer's body" if head is not None else "an answer"
        self._fail(httpx.RemoteProtocolError(f"the server closed the connection before {what}"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.abort()

    # -- parsing --------------------------------------------------------------------------

    def _parse(self) -> None:
        buffer = self._buffer
        while self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    raise _Broken("head too long")
                return
            lines = bytes(buffer[:end]).split(b"\r\n")
            del buffer[: end + 4]
            self._read_head(lines)
        if self._chunked:
            self._read_chunks()
            return
        length = self._length
        if length is not None and len(buffer) >= length:
            body = bytes(buffer[:length])
            del buffer[:length]
            self._complete(body)
        # else: more to come (or, without a length, until the connection ends)

    def _read_head(self, lines: list[bytes]) -> None:
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise _Broken("not an HTTP/1.x status line")
        status = int(match[2])
        headers: list[tuple[bytes, bytes]] = []
        length: bytes | None = None
        encoding: bytes | None = None
        connection = b""
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or _TOKEN.fullmatch(name) is None:
                raise _Broken("malformed header line")
            value = value.strip(b" \t")
            headers.append((name, value))
            lower = name.lower()
            if lower == b"content-length":
                if length is not None and length != value:
                    raise _Broken("conflicting Content-Length")
                length = value
            elif lower == b"transfer-encoding":
                encoding = value.lower()
            elif lower == b"connection":
                connection += b"," + value.lower()
        if 100 <= status < 200:
            if status == 101:
                raise _Broken("unexpected protocol switch")
            return  # an interim answer: the real one follows
        keep_alive = match[1] == b"1" and b"close" not in [
            token.strip() for token in connection.split(b",")
        ]
        self._length = None
        self._chunked = False
        if self._head_request or status in (204, 304):
            self._length = 0
        elif encoding is not None:
            if encoding.rsplit(b",", 1)[-1].strip() == b"chunked":
                self._chunked = True
            else:
                keep_alive = False  # read to the end of the connection
        elif length is not None:
            if not length.isdigit():
                raise _Broken("bad Content-Length")
            self._length = int(length)
        else:
            keep_alive = False
        reason = (match[3] or b"").decode("latin-1")
        self._head = (status, reason, tuple(headers), keep_alive)

    def _read_chunks(self) -> None:
        buffer = self._buffer
        while True:
            left = self._chunk_left
            if left is None:  # a chunk-size line
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > _MAX_HEAD:
                        raise _Broken("chunk size line too long")
                    return
                size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
                if _HEX.fullmatch(size_text) is None:
                    raise _Broken("bad chunk size")
                del buffer[: end + 2]
                size = int(size_text, 16)
                if size == 0:
                    self._chunk_left = -1  # trailers next
                    continue
                self._chunk_left = size
            elif left == -1:  # trailers (ignored), up to an empty line
                if buffer[:2] == b"\r\n":
                    del buffer[:2]
                else:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buffer) > _MAX_HEAD:
                            raise _Broken("trailers too long")
                        return
                    del buffer[: end + 4]
                body = bytes(self._body)
                self._complete(body)
                return
            else:
                if len(buffer) < left + 2:
                    return
                if buffer[left : left + 2] != b"\r\n":
                    raise _Broken("chunk not followed by CRLF")
                self._body += buffer[:left]
                del buffer[: left + 2]
                self._chunk_left = None


class LeanTransport(httpx.AsyncBaseTransport):
    """The pool (see the module's docstring). ``max_connections`` bounds the requests in
    flight and so the connections open to one origin; ``max_keepalive_connections`` the
    idle ones kept per origin; ``keepalive_expiry`` how long one is kept (0: none is, each
    request says ``Connection: close``)."""

    def __init__(self, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        expiry = limits.keepalive_expiry
        self._force_close = expiry == 0 or limits.max_keepalive_connections == 0
        self._max_idle = limits.max_keepalive_connections
        self._keepalive = 5.0 if expiry is None else expiry
        self._limit = limits.max_connections
        self._slots: asyncio.Semaphore | None = None
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._origins: dict[str, _Origin] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    # -- the lean path --------------------------------------------------------------------

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeouts: tuple[float | None, float | None, float | None],
    ) -> RawResponse:
        """One request: ``url`` sent as it is (already percent-encoded, the query string as
        signed), Host and Content-Length added to ``headers``. ``timeouts`` are httpx's
        (connect, read, pool). Raises the httpx exceptions of the module's table."""
        start = url.find("/", url.find("//") + 2)
        if start < 0:
            origin_text, target = url, "/"
        else:
            origin_text, target = url[:start], url[start:]
        origin = self._origins.get(origin_text)
        if origin is None:
            origin = _Origin(origin_text)
            if len(self._origins) < 64:
                self._origins[origin_text] = origin
        if _unsafe(method) or _unsafe(target) or " " in target:
            raise httpx.LocalProtocolError("the request line holds a space or a line break")
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
        for name, value in headers.items():
            if self._force_close and name.lower() == "connection":
                continue
            if _unsafe(name) or _unsafe(value):
                raise httpx.LocalProtocolError(f"header {name[:32]!r} holds a line break")
            lines.append(f"{name}: {value}\r\n")
        if body:
            lines.append(f"Content-Length: {len(body)}\r\n")
        elif method not in _NO_BODY:
            lines.append("Content-Length: 0\r\n")
        if self._force_close:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        try:
            data = text.encode("ascii")
        except UnicodeEncodeError:
            try:
                data = text.encode("latin-1")
            except UnicodeEncodeError as exc:
                raise httpx.LocalProtocolError("a header is not latin-1") from exc
            if not target.isascii():
                raise httpx.LocalProtocolError("the request target is not ASCII") from None
        if body:
            data += body
        return await self._exchange(origin, method, data, timeouts)

    # -- httpx's interface ----------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport has been closed")
        body = await request.aread()
        url = request.url
        origin_text = f"{url.scheme}://{url.netloc.decode('ascii')}"
        origin = self._origins.get(origin_text) or _Origin(origin_text)
        head = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            if self._force_close and name.lower() == b"connection":
                continue
            if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
                raise httpx.LocalProtocolError("a header holds a line break", request=request)
            head += [name, b": ", value, b"\r\n"]
        if self._force_close:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        data = b"".join(head)
        given = request.extensions.get("timeout") or {}
        timeouts = (given.get("connect"), given.get("read"), given.get("pool"))
        try:
            answer = await self._exchange(origin, request.method, data + body, timeouts)
        except httpx.TransportError as exc:
            exc.request = request
            raise
        return answer.to_httpx(request)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    # -- the pool -------------------------------------------------------------------------

    async def _exchange(
        self,
        origin: _Origin,
        method: str,
        data: bytes,
        timeouts: tuple[float | None, float | None, float | None],
    ) -> RawResponse:
        if self._closed:
            raise RuntimeError("the transport has been closed")
        connect_timeout, read_timeout, pool_timeout = timeouts
        slots = self._slots
        if slots is None:
            slots = self._slots = asyncio.Semaphore(self._limit or 1 << 30)
        if slots.locked():
            try:
                await asyncio.wait_for(slots.acquire(), pool_timeout)
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection in time") from None
        else:
            await slots.acquire()
        conn: _Connection | None = None
        try:
            conn = self._take_idle(origin)
            if conn is None:
                conn = await self._connect(origin, connect_timeout)
            waiter = conn.request(data, head=method == "HEAD", read_timeout=read_timeout)
            answer = await waiter
        except BaseException:
            if conn is not None:
                conn.abort()
            slots.release()
            raise
        if conn.reusable and not conn.closed and not self._force_close and not self._closed:
            self._put_idle(origin, conn)
        else:
            conn.close()
        slots.release()
        return answer

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get((origin.scheme, origin.host, origin.port))
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._keepalive:
                return conn
            conn.close()
        return None

    def _put_idle(self, origin: _Origin, conn: _Connection) -> None:
        key = (origin.scheme, origin.host, origin.port)
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = deque()
        conn.idle_since = conn.loop.time()
        idle.append(conn)
        if self._max_idle is not None and len(idle) > self._max_idle:
            idle.popleft().close()

    async def _connect(self, origin: _Origin, timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            context = self._ssl
        conn = _Connection(loop)
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: conn,
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                ),
                timeout,
            )
        except TimeoutError:
            conn.abort()
            raise httpx.ConnectTimeout(f"connecting to {origin.host_header}") from None
        except (OSError, ssl.SSLError) as exc:
            conn.abort()
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return conn

    def __repr__(self) -> str:
        idle: Any = sum(len(q) for q in self._idle.values())
        return f"LeanTransport(max_connections={self._limit}, idle={idle})"
