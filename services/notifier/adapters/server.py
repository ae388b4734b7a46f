"""Serving the app with uvicorn: the WebSocket protocol it uses, its configuration, and
a log filter that keeps tokens out of uvicorn's lines.

`NotifierWebSocketProtocol` is uvicorn's websockets-sansio protocol with these changes:

- an ``opexbridge.force_close`` scope extension with two calls. ``close``: close a
  connection even when its transport is paused (a client that stopped reading), by
  writing the close frame straight to the transport and aborting the socket if the
  client has not answered after a grace period; through plain ASGI,
  ``websocket.close`` waits until the paused transport drains, which a stuck client
  never lets happen. ``send_texts``: several messages in one transport write, so a
  writer draining a burst makes one system call, not one per frame; the frames are
  built here (`text_frame`), the protocol object only being asked whether it is open.
- the parsed handshake request and response are dropped once the connection is
  accepted (memory per idle connection);
- an optional fixed ``SO_SNDBUF`` per client socket (``NOTIFIER_SOCKET_SEND_BUFFER``),
  which bounds what the kernel holds for a client that stopped reading.

`NotifierHttpProtocol` is uvicorn's httptools protocol whose requests write through a
`CorkedTransport`: uvicorn writes a response's head and its body separately, each
write a system call (on loopback, one that also delivers the data to the reader), so
the writes of one event-loop turn are joined into one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import struct
from asyncio import BaseTransport
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request
from websockets.protocol import Side, State

from services.notifier.adapters.websocket import FORCE_CLOSE
from services.notifier.config import NotifierSettings

__all__ = [
    "CorkedTransport",
    "NotifierHttpProtocol",
    "NotifierWebSocketProtocol",
    "TokenFilter",
    "install_token_filter",
    "text_frame",
    "uvicorn_config",
]

_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)


_FIN_TEXT = 0x81
_HEAD_SHORT = struct.Struct("!BB")
_HEAD_MEDIUM = struct.Struct("!BBH")
_HEAD_LONG = struct.Struct("!BBQ")


def text_frame(text: str) -> bytes:
    """One unmasked, unfragmented WebSocket text frame (RFC 6455 §5.2) carrying
    ``text``: what `websockets`' ``send_text`` writes for a server without extensions,
    without its per-frame objects."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        return _HEAD_SHORT.pack(_FIN_TEXT, length) + payload
    if length < 65536:
        return _HEAD_MEDIUM.pack(_FIN_TEXT, 126, length) + payload
    return _HEAD_LONG.pack(_FIN_TEXT, 127, length) + payload


class CorkedTransport:
    """A transport whose writes of one event-loop turn reach the socket as one write,
    at the end of that turn (in order; a close writes what is pending first). Anything
    else is the wrapped transport's."""

    __slots__ = ("_buffer", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._buffer:
            self._loop.call_soon(self.flush)
        self._buffer.append(data)

    def flush(self) -> None:
        """Write what is pending now."""
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class NotifierHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, each request's response written through a
    `CorkedTransport` (head and body in one system call). The protocol's own writes
    (a 400 for a malformed request, the WebSocket upgrade) use the real transport,
    after anything still pending."""

    _corked: CorkedTransport | None = None

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # created just now
            if self._corked is None:
                self._corked = CorkedTransport(self.transport, self.loop)
            cycle.transport = self._corked  # type: ignore[assignment]

    def send_400_response(self, msg: str) -> None:
        if self._corked is not None:
            self._corked.flush()
        super().send_400_response(msg)

    def handle_websocket_upgrade(self) -> None:
        if self._corked is not None:
            self._corked.flush()
        super().handle_websocket_upgrade()


class NotifierWebSocketProtocol(WebSocketsSansIOProtocol):
    send_buffer = 0
    """``SO_SNDBUF`` for each client socket; 0 keeps the kernel's autotuning."""

    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if self.send_buffer and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        if scope is not None and not self.close_sent:
            scope["extensions"][FORCE_CLOSE] = {
                "close": self.force_close,
                "send_texts": self.send_texts,
            }

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

    async def send_texts(self, texts: list[str]) -> None:
        """Several text messages in one transport write (one system call), after the
        handshake; the same checks as ASGI's ``websocket.send``."""
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if self.close_sent:
            raise RuntimeError("the connection is closing")
        conn = self.conn
        if conn.state is not State.OPEN:
            raise ClientDisconnected()
        pending = conn.data_to_send()  # whatever the protocol queued goes first
        if conn.extensions or conn.expect_continuation_frame or conn.side is not Side.SERVER:
            try:  # pragma: no cover - deflate is off and the server never fragments
                for text in texts:
                    conn.send_text(text.encode())
            except InvalidState:
                raise ClientDisconnected() from None
            pending += conn.data_to_send()
        else:
            pending.extend(map(text_frame, texts))
        self.transport.write(b"".join(pending))

    def force_close(self, code: int, reason: str, grace: float) -> None:
        """Write a close frame now, whatever the transport's state; abort the socket if
        the client has not completed the closing handshake within ``grace`` seconds."""
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(grace, self.transport.abort)


class TokenFilter(logging.Filter):
    """Replaces ``token=...`` in a log record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = _TOKEN_IN_TEXT.sub(r"\1[redacted]", record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                _TOKEN_IN_TEXT.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg
                for arg in args
            )
        return True


def install_token_filter() -> None:
    """Attach `TokenFilter` to uvicorn's loggers (once)."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenFilter) for f in logger.filters):
            logger.addFilter(TokenFilter())


def uvicorn_config(
    app: Any, settings: NotifierSettings, *, port: int | None = None
) -> uvicorn.Config:
    """How the notifier is served: its WebSocket protocol, no per-message deflate (it
    costs tens of KB per connection), a hard frame cap above the protocol's own limit
    (so an oversized client frame gets 4413, not 1009), and the app's own logging."""
    install_token_filter()
    protocol = type(
        "ConfiguredNotifierWebSocketProtocol",
        (NotifierWebSocketProtocol,),
        {"send_buffer": settings.socket_send_buffer},
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        http=NotifierHttpProtocol,
        ws=protocol,
        ws_max_size=max(64 * 1024, settings.max_frame_bytes * 4),
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ws_ping_interval_s or None,
        ws_ping_timeout=20.0,
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        backlog=4096,
        timeout_graceful_shutdown=5,
    )
