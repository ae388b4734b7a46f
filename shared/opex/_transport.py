"""An httpx transport over aiohttp's connection pool (``OPEX_HTTP_BACKEND=aiohttp``).

httpx keeps building the request and reading the answer (so signing, `MockOpex` and the
exception handling of `OpexClient` stay the same); aiohttp only moves the bytes, with its
C HTTP parser, which costs a fraction of httpcore's per request.

The one thing that must not change is what a failure means. Every aiohttp failure is
turned into the httpx exception that says whether the request may have reached the
server; only failures that surely happened before the first byte went out are "not sent":

===============================================  ========================  ==========
aiohttp                                          httpx                     sent?
===============================================  ========================  ==========
``ConnectionTimeoutError`` (pool wait, connect)  ``ConnectTimeout``        not sent
``ClientConnectorError`` and its subclasses      ``ConnectError``          not sent
(refused, DNS, TLS, proxy connect)
``ServerFingerprintMismatch``                    ``ConnectError``          not sent
``InvalidURL``, ``NonHttpUrlClientError``        ``UnsupportedProtocol``   not sent
``SocketTimeoutError`` (``sock_read``)           ``ReadTimeout``           maybe
``ServerTimeoutError``, ``asyncio.TimeoutError``  ``ReadTimeout``           maybe
``ServerDisconnectedError``                      ``RemoteProtocolError``   maybe
``ClientPayloadError`` (truncated body)          ``RemoteProtocolError``   maybe
``ClientResponseError`` (unparsable answer)      ``RemoteProtocolError``   maybe
``ClientOSError``, ``ClientConnectionError``,    ``ReadError``             maybe
any other ``ClientError`` or ``OSError``
===============================================  ========================  ==========

aiohttp also retries a request by itself, once, when a reused keep-alive connection
fails with ``ClientOSError`` or ``ServerDisconnectedError`` and the method is one RFC 9112
calls idempotent (GET, PUT, DELETE ...). OPEX's cancel is a DELETE (``/v3``) or a PUT
(``/opex/v1``) and the pair setting a PUT: a silent second send would turn "maybe
cancelled" into a refusal of the second cancel. `OpexClient` never retries, so this
transport switches that off (``ClientSession._retry_connection``, which aiohttp has no
public setting for; the session refuses to start if the attribute disappears).

Settings: ``max_connections`` is aiohttp's ``limit``; ``keepalive_expiry`` its
``keepalive_timeout`` (0 closes every connection after its answer, as does
``max_keepalive_connections=0``); aiohttp has no separate cap on idle connections, so any
other ``max_keepalive_connections`` is not enforced. Timeouts come from the request, as
with httpx: ``connect`` bounds the TCP connect (``sock_connect``), ``pool + connect`` the
wait for a connection (aiohttp's ``connect``), ``read`` the wait for each read
(``sock_read``, from the end of the request on). aiohttp has no write timeout; OPEX's
requests are far below the socket's buffer, so a write does not wait.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import aiohttp
import httpx
from yarl import URL

__all__ = ["AiohttpTransport", "RawResponse", "map_aiohttp_error"]

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


class RawResponse(NamedTuple):
    """An answer as `AiohttpTransport.send` reads it: the body as received (not decoded)."""

    status: int
    reason: str | None
    raw_headers: tuple[tuple[bytes, bytes], ...]
    content: bytes

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), if any."""
        for key, value in self.raw_headers:
            if key.lower() == name:
                return value
        return None

    def to_httpx(self, request: httpx.Request) -> httpx.Response:
        """The same answer as `handle_async_request` gives it (httpx decodes the body by
        its Content-Encoding)."""
        return httpx.Response(
            self.status,
            headers=self.raw_headers,
            content=self.content,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (self.reason or "").encode("latin-1", "replace"),
            },
            request=request,
        )


def map_aiohttp_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception that says what ``exc`` means for ``request``: "not sent"
    (`httpx.ConnectError`, `httpx.ConnectTimeout`, `httpx.UnsupportedProtocol`) only
    when aiohttp failed before writing it; anything else is "maybe sent"."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # a message that cannot be rendered must not hide the failure
        text = type(exc).__name__
    # Not sent: aiohttp raises these from connector.connect(), before req.send().
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerFingerprintMismatch):
        return httpx.ConnectError(text, request=request)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(text, request=request)
    # Maybe sent: everything else, the unknown included.
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(text, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(text, request=request)
    if isinstance(exc, TimeoutError):  # SocketTimeoutError, ServerTimeoutError
        return httpx.ReadTimeout(text, request=request)
    return httpx.ReadError(text, request=request)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent over one aiohttp connection pool (HTTP/1.1, keep-alive).

    The pool is made on the first request (aiohttp wants a running loop) and closed by
    `aclose` (which `httpx.AsyncClient.aclose` calls). Bodies are read whole before the
    answer is handed back, so a connection cut mid-body raises here, as a
    `httpx.RemoteProtocolError`.
    """

    def __init__(self, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        expiry = limits.keepalive_expiry
        self._force_close = expiry == 0 or limits.max_keepalive_connections == 0
        self._limit = limits.max_connections or 0
        self._keepalive = 5.0 if expiry is None else expiry
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _start(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the transport has been closed")
        if "_retry_connection" not in aiohttp.ClientSession.ATTRS:
            raise RuntimeError(
                "this aiohttp cannot be told not to resend a request on a reused "
                "connection; use OPEX_HTTP_BACKEND=httpx"
            )
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=0,
            force_close=self._force_close,
            keepalive_timeout=None if self._force_close else self._keepalive,
            use_dns_cache=True,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx's client keeps the cookies
            auto_decompress=False,  # httpx decodes, by the Content-Encoding it is handed
            trust_env=False,
            raise_for_status=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )
        session._retry_connection = False  # see the module's docstring
        self._session = session
        return session

    def timeout_for(
        self, connect: float | None, read: float | None, pool: float | None
    ) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts for httpx's ``connect``, ``read`` and ``pool`` (see above)."""
        key = (connect, read, pool)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=None if connect is None or pool is None else connect + pool,
                sock_connect=connect,
                sock_read=read,
            )
            if len(self._timeouts) < 64:
                self._timeouts[key] = timeout
        return timeout

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout") or {}
        return self.timeout_for(given.get("connect"), given.get("read"), given.get("pool"))

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeouts: tuple[float | None, float | None, float | None],
    ) -> RawResponse:
        """One request straight through aiohttp, without an `httpx.Request` (the lean path
        of `OpexClient`): ``url`` is sent as it is (already percent-encoded, the query string
        exactly as signed), ``headers`` as given (aiohttp adds Host and Content-Length),
        ``timeouts`` httpx's (connect, read, pool). Failures are raised as
        `handle_async_request` raises them: the httpx exception that says whether the
        request may have been sent."""
        session = self._session or self._start()
        timeout = self.timeout_for(*timeouts)
        if self._force_close:
            headers = {k: v for k, v in headers.items() if k.lower() != "connection"}
            headers["Connection"] = "close"
        try:
            response = await session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=body if body else (None if method in _NO_BODY else b""),
                allow_redirects=False,
                timeout=timeout,
                compress=None,
                chunked=None,
            )
        except aiohttp.ClientError as exc:
            raise map_aiohttp_error(exc, httpx.Request(method, url)) from exc
        except (TimeoutError, OSError) as exc:
            raise map_aiohttp_error(exc, httpx.Request(method, url)) from exc
        try:
            content = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            response.close()  # half read: the connection must not go back to the pool
            raise map_aiohttp_error(exc, httpx.Request(method, url)) from exc
        except BaseException:
            response.close()
            raise
        response.release()
        return RawResponse(response.status, response.reason, response.raw_headers, content)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._start()
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        if self._force_close:
            headers = [(k, v) for k, v in headers if k.lower() != "connection"]
            headers.append(("Connection", "close"))
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),  # exactly the query string signed
                headers=headers,
                data=body if body or request.method not in _NO_BODY else None,
                allow_redirects=False,
                timeout=self._timeout(request),
                compress=None,
                chunked=None,
            )
        except aiohttp.ClientError as exc:
            raise map_aiohttp_error(exc, request) from exc
        except (TimeoutError, OSError) as exc:
            raise map_aiohttp_error(exc, request) from exc
        try:
            content = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            response.close()  # half read: the connection must not go back to the pool
            raise map_aiohttp_error(exc, request) from exc
        except BaseException:
            response.close()
            raise
        response.release()
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            content=content,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
            request=request,
        )

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
