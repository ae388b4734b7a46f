"""The ``/ws`` endpoint: a raw ASGI WebSocket handler and one `Connection` per client.

Per connection there is one task reading the client (the ASGI handler itself) and, only
while something is queued, one writer task draining its `Outbound`. The Kafka side
reaches a connection through the hub's ``offer*`` calls, which queue and return; a queue
over its byte budget gets the client disconnected as slow (4500) without anyone waiting
on its socket. Subscriptions are processed by the writer, in order with the queued
frames, so a resume and the live stream meet without a gap or a duplicate: the writer
tracks the last seq it sent, drops what it already sent and fills any hole from the
store before going on.

An idle authenticated connection holds this object, its handler's frame and one timer
(its token's expiry): no writer task, no queue, no per-connection buffers of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

import structlog

from services.notifier import metrics
from services.notifier.adapters.hub import Hub
from services.notifier.config import NotifierSettings
from services.notifier.domain.auth import AuthError, AuthFailure, Identity
from services.notifier.domain.outbound import Outbound
from services.notifier.domain.protocol import (
    Auth,
    ChannelSet,
    ClientFrame,
    CloseCode,
    ErrorCode,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    authenticated_frame,
    error_frame,
    parse_channels,
    parse_client_frame,
    parse_resume,
    pong_frame,
    subscribed_frame,
    token_expiring_frame,
    unsubscribed_frame,
)
from services.notifier.domain.stream import (
    Cursor,
    Resume,
    ResumeDecision,
    StreamEntry,
    is_contiguous,
)

__all__ = ["FORCE_CLOSE", "Connection", "StreamReader", "Verifier", "WebSocketEndpoint"]

log = structlog.get_logger(__name__)

FORCE_CLOSE = "opexbridge.force_close"
"""ASGI scope extension (adapters/server.py): ``{"close": callable(code, reason, grace),
"send_texts": async callable(texts)}``. ``close`` writes a close frame even when the
transport is paused and aborts the socket if the client has not answered after
``grace`` seconds; ``send_texts`` writes several messages at once. Without it (another
server) plain ASGI messages are used."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ForceClose = Callable[[int, str, float], None]
SendTexts = Callable[[list[str]], Awaitable[None]]

_MAX_ERRORS = 20
_WRITE_FRAMES = 64
_WRITE_BYTES = 64 * 1024
_REQUEST_SIZE = 64
_PUSHED_USER = metrics.PUSHED.labels(kind="user")
_PUSHED_REPLAY = metrics.PUSHED.labels(kind="replay")
_PUSHED_TICKER = metrics.PUSHED.labels(kind="ticker")
_PUSHED_CONTROL = metrics.PUSHED.labels(kind="control")
_OPEN = metrics.CONNECTIONS.labels(state="open")
_PENDING = metrics.CONNECTIONS.labels(state="pending")
_background: set[asyncio.Task[None]] = set()


class Verifier(Protocol):
    async def verify(self, token: str) -> Identity: ...


class StreamReader(Protocol):
    """What connections read from the store (adapters/store.py `StreamStore`)."""

    async def resume(
        self, user_id: str, since: int | None, epoch: str | None
    ) -> tuple[Cursor, ResumeDecision, list[StreamEntry]]: ...

    async def read_range(self, user_id: str, after: int, through: int) -> list[StreamEntry]: ...


@dataclass
class Context:
    """What every connection shares."""

    settings: NotifierSettings
    hub: Hub
    store: StreamReader
    verifier: Verifier


@dataclass(frozen=True, slots=True)
class _Ping:
    id: str | int | None


_CLOSE_FOR_AUTH = {
    AuthFailure.INVALID: CloseCode.INVALID_TOKEN,
    AuthFailure.EXPIRED: CloseCode.TOKEN_EXPIRED,
    AuthFailure.UNAVAILABLE: CloseCode.UNAVAILABLE,
}


def _spawn(coroutine: Awaitable[None]) -> None:
    task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


class Connection:
    """One client: its identity, subscriptions, stream position and outbound queue."""

    __slots__ = (
        "_ctx",
        "_force",
        "_send",
        "_send_texts",
        "_timer",
        "_writer",
        "closing",
        "epoch",
        "errors",
        "expires_at",
        "last_seq",
        "mask",
        "out",
        "tickers",
        "tracking",
        "user_id",
    )

    def __init__(
        self,
        ctx: Context,
        send: Send,
        force: ForceClose | None,
        send_texts: SendTexts | None = None,
    ) -> None:
        self._ctx = ctx
        self._send = send
        self._force = force
        self._send_texts = send_texts
        self._timer: asyncio.TimerHandle | None = None
        self._writer: asyncio.Task[None] | None = None
        self.user_id = ""
        self.expires_at: datetime | None = None
        self.mask = 0
        self.tickers: frozenset[str] = frozenset()
        self.tracking = False
        self.last_seq: int | None = None
        self.epoch: str | None = None
        self.out: Outbound[StreamEntry | str | Subscribe | Unsubscribe | _Ping] = Outbound(
            ctx.settings.send_budget_bytes
        )
        self.closing: CloseCode | None = None
        self.errors = 0

    # ------------------------------------------------------------ from the hub

    def offer(self, entry: StreamEntry) -> None:
        """A user event (never blocks)."""
        if not self.tracking or self.closing is not None:
            return
        size = len(entry.frame) if entry.channel & self.mask else 16
        if self.out.push(entry, size):
            self._wake()
        else:
            self.close_soon(CloseCode.SLOW_CONSUMER)

    def offer_ticker(self, symbol: str, frame: str) -> None:
        if self.closing is not None:
            return
        accepted, replaced = self.out.push_ticker(symbol, frame)
        if not accepted:
            self.close_soon(CloseCode.SLOW_CONSUMER)
            return
        if replaced:
            metrics.DROPPED.labels(reason="conflated").inc()
        self._wake()

    def offer_control(self, frame: str) -> None:
        self._request(frame, len(frame))

    def _request(self, item: str | Subscribe | Unsubscribe | _Ping, size: int) -> None:
        if self.closing is not None:
            return
        if self.out.push(item, size):
            self._wake()
        else:
            self.close_soon(CloseCode.SLOW_CONSUMER)

    # ------------------------------------------------------------------ writer

    def _wake(self) -> None:
        # The writer exits only when it finds the queue empty with nothing left to
        # write, without awaiting in between; so a writer that exists will see
        # anything queued now.
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Write what is queued, in order, several frames per socket write; pause the
        batching for what needs the store (a subscription, a hole to fill)."""
        batch: list[str] = []
        size = 0
        try:
            while self.closing is None:
                item, ticker = self.out.pop()
                if ticker is not None:
                    batch.append(ticker)
                    size += len(ticker)
                    _PUSHED_TICKER.inc()
                elif item is None:
                    if not batch:
                        break  # nothing queued, nothing pending: no await before exit
                    await self._flush(batch)  # more may be queued meanwhile: look again
                    size = 0
                    continue
                elif isinstance(item, StreamEntry):
                    last = self.last_seq
                    if last is None or item.seq <= last:
                        continue  # not streaming yet, or already sent
                    if item.seq > last + 1:
                        await self._flush(batch)
                        size = 0
                        await self._fill(last, item.seq - 1)
                        if self.last_seq != item.seq - 1:
                            continue
                    if item.channel & self.mask:
                        batch.append(item.frame)
                        size += len(item.frame)
                        _PUSHED_USER.inc()
                    self.last_seq = item.seq
                elif isinstance(item, str):
                    batch.append(item)
                    size += len(item)
                    _PUSHED_CONTROL.inc()
                else:
                    await self._flush(batch)
                    size = 0
                    if isinstance(item, Subscribe):
                        await self._subscribe(item)
                    elif isinstance(item, Unsubscribe):
                        await self._unsubscribe(item)
                    else:
                        await self._write(pong_frame(item.id, seq=self.last_seq, epoch=self.epoch))
                        _PUSHED_CONTROL.inc()
                if len(batch) >= _WRITE_FRAMES or size >= _WRITE_BYTES:
                    await self._flush(batch)
                    size = 0
        except OSError:
            pass  # the client is gone; the reader sees the disconnect
        except Exception as error:
            log.warning(
                "writer_failed",
                user_id=self.user_id,
                error=f"{type(error).__name__}: {error}"[:300],
            )
            self.close_soon(CloseCode.UNAVAILABLE)
        finally:
            self._writer = None

    async def _flush(self, batch: list[str]) -> None:
        if not batch:
            return
        if self._send_texts is not None:
            await self._send_texts(batch)
        else:
            for frame in batch:
                await self._send({"type": "websocket.send", "text": frame})
        batch.clear()

    async def _write(self, frame: str) -> None:
        if self._send_texts is not None:
            await self._send_texts([frame])
        else:
            await self._send({"type": "websocket.send", "text": frame})

    async def _fill(self, after: int, through: int) -> None:
        """Send the events the hub has not brought (yet) from the store."""
        entries = await self._ctx.store.read_range(self.user_id, after, through)
        if not is_contiguous([e.seq for e in entries], after, through):
            # pruned under a reader far behind: it must reconnect and reload
            self.close_soon(CloseCode.SLOW_CONSUMER)
            return
        await self._replay(entries)

    async def _replay(self, entries: list[StreamEntry]) -> None:
        batch: list[str] = []
        for entry in entries:
            if entry.channel & self.mask:
                batch.append(entry.frame)
                _PUSHED_REPLAY.inc()
            self.last_seq = entry.seq
            if len(batch) >= _WRITE_FRAMES:
                await self._flush(batch)
        await self._flush(batch)

    async def _subscribe(self, request: Subscribe) -> None:
        channels = request.channels
        decision: ResumeDecision | None = None
        replay: list[StreamEntry] = []
        if channels.user:
            if request.since is None and self.last_seq is not None:
                decision = ResumeDecision(Resume.LIVE, self.last_seq)
            else:
                cursor, decision, replay = await self._ctx.store.resume(
                    self.user_id, request.since, request.epoch
                )
                self.epoch = cursor.epoch
            self.mask |= channels.user
        new_tickers = channels.tickers - self.tickers
        self.tickers = self.tickers | channels.tickers
        current = ChannelSet(self.mask, self.tickers)
        if decision is None:
            await self._write(subscribed_frame(current, epoch=None, seq=None, resume=None))
        else:
            await self._write(
                subscribed_frame(
                    current,
                    epoch=self.epoch,
                    seq=decision.start_after,
                    resume=decision.outcome.value,
                    reason=None if decision.reason is None else decision.reason.value,
                )
            )
            metrics.RESUMES.labels(outcome=decision.outcome.value).inc()
            self.last_seq = decision.start_after
            await self._replay(replay)
        _PUSHED_CONTROL.inc()
        if new_tickers:
            self._ctx.hub.watch(self, new_tickers)

    async def _unsubscribe(self, request: Unsubscribe) -> None:
        self.mask &= ~request.channels.user
        gone = self.tickers & request.channels.tickers
        self.tickers = self.tickers - gone
        self._ctx.hub.unwatch(self, gone)
        await self._write(unsubscribed_frame(request.channels))
        _PUSHED_CONTROL.inc()

    # ----------------------------------------------------------- from the reader

    def authenticate(self, identity: Identity) -> None:
        """Take ``identity`` (a first token or a refreshed one): say so to the client,
        then watch the token's expiry."""
        self.user_id = identity.user_id
        self.expires_at = identity.expires_at
        self.offer_control(authenticated_frame(identity.user_id, identity.expires_at))
        self._arm_expiry()

    def subscribe(self, request: Subscribe) -> None:
        if request.channels.user:
            self.tracking = True  # from now on the hub's events are queued
        self._request(request, _REQUEST_SIZE)

    def unsubscribe(self, request: Unsubscribe) -> None:
        self._request(request, _REQUEST_SIZE)

    def ping(self, ping: Ping) -> None:
        self._request(_Ping(ping.id), _REQUEST_SIZE)

    def _arm_expiry(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self.expires_at is not None
        left = self.expires_at.timestamp() - time.time()
        notice_in = left - self._ctx.settings.refresh_notice_s
        loop = asyncio.get_running_loop()
        if notice_in > 0:
            self._timer = loop.call_later(notice_in, self._notify_expiry)
        else:
            self._notify_expiry()

    def _notify_expiry(self) -> None:
        assert self.expires_at is not None
        self.offer_control(token_expiring_frame(self.expires_at))
        left = max(0.0, self.expires_at.timestamp() - time.time())
        self._timer = asyncio.get_running_loop().call_later(left, self._expired)

    def _expired(self) -> None:
        self._timer = None
        self.close_soon(CloseCode.TOKEN_EXPIRED)

    # ----------------------------------------------------------------- closing

    def close_soon(self, code: CloseCode) -> None:
        """Stop serving at once and close with ``code`` in the background."""
        if self._stop(code):
            _spawn(self._close(code))

    async def close(self, code: CloseCode) -> None:
        if self._stop(code):
            await self._close(code)

    def _stop(self, code: CloseCode) -> bool:
        if self.closing is not None:
            return False
        self.closing = code
        dropped = self.out.clear()
        if dropped and code is CloseCode.SLOW_CONSUMER:
            metrics.DROPPED.labels(reason="slow_consumer").inc(dropped)
        self.dispose()
        return True

    def dispose(self) -> None:
        """Leave the hub and stop the timer and the writer (idempotent)."""
        if self.user_id:
            self._ctx.hub.remove(self, self.tickers)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        writer = self._writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
        self._writer = None

    async def _close(self, code: CloseCode) -> None:
        metrics.DISCONNECTS.labels(reason=code.reason).inc()
        if code is CloseCode.SLOW_CONSUMER:
            log.info("slow_consumer_disconnected", user_id=self.user_id)
        grace = self._ctx.settings.slow_close_grace_s
        if self._force is not None:
            self._force(int(code), code.reason, grace)
            return
        with contextlib.suppress(TimeoutError, OSError, RuntimeError):
            await asyncio.wait_for(
                self._send({"type": "websocket.close", "code": int(code), "reason": code.reason}),
                grace,
            )


@dataclass(frozen=True, slots=True)
class _Query:
    """What the connect URL carries: ``token``, and ``channels`` / ``since`` / ``epoch``
    for a subscription made at once."""

    token: str | None
    channels: str | None
    since: str | None
    epoch: str | None

    @classmethod
    def parse(cls, raw: bytes) -> _Query:
        query = parse_qs(raw.decode("latin-1"), max_num_fields=8)

        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        return cls(first("token"), first("channels"), first("since"), first("epoch"))

    def without_token(self) -> _Query:
        return _Query(None, self.channels, self.since, self.epoch)


class WebSocketEndpoint:
    """The ASGI app behind ``/ws`` (README.md, Protocol)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pending = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        query = _Query.parse(scope.get("query_string", b""))
        # the token goes no further: not into uvicorn's access line, not kept in memory
        scope["query_string"] = b""
        scope["headers"] = []
        extension = (scope.get("extensions") or {}).get(FORCE_CLOSE) or {}
        await send({"type": "websocket.accept"})
        connection = Connection(self.ctx, send, extension.get("close"), extension.get("send_texts"))
        try:
            self.pending += 1
            _PENDING.inc()
            try:
                authenticated = await self._authenticate(connection, query.token, receive)
            finally:
                self.pending -= 1
                _PENDING.dec()
            query = query.without_token()  # not kept for the connection's lifetime
            if authenticated:
                _OPEN.inc()
                try:
                    await self._serve(connection, query, receive)
                finally:
                    _OPEN.dec()
        except OSError:
            pass  # the client went away
        except Exception:
            log.exception("connection_failed", user_id=connection.user_id)
            await connection.close(CloseCode.UNAVAILABLE)
        finally:
            connection.dispose()

    async def _authenticate(
        self, connection: Connection, token: str | None, receive: Receive
    ) -> bool:
        settings = self.ctx.settings
        hub = self.ctx.hub
        if len(hub) + self.pending > settings.max_connections:
            await connection.close(CloseCode.TOO_MANY_CONNECTIONS)
            return False
        try:
            async with asyncio.timeout(settings.auth_timeout_s):
                if token is None:
                    token = await self._auth_frame(connection, receive)
                    if token is None:
                        return False
                identity = await self.ctx.verifier.verify(token)
        except TimeoutError:
            await connection.close(CloseCode.AUTH_TIMEOUT)
            return False
        except AuthError as error:
            log.info("auth_refused", failure=error.failure.value, detail=error.message)
            await connection.close(_CLOSE_FOR_AUTH[error.failure])
            return False
        if hub.count(identity.user_id) >= settings.max_connections_per_user:
            await connection.close(CloseCode.TOO_MANY_CONNECTIONS)
            return False
        connection.authenticate(identity)
        hub.add(connection)
        return True

    async def _auth_frame(self, connection: Connection, receive: Receive) -> str | None:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None or len(text) > self.ctx.settings.max_frame_bytes:
            code = CloseCode.BAD_REQUEST if text is None else CloseCode.MESSAGE_TOO_BIG
            await connection.close(code)
            return None
        try:
            frame = parse_client_frame(text, max_channels=self.ctx.settings.max_channels)
        except ProtocolError:
            frame = None
        if not isinstance(frame, Auth):
            await connection.close(CloseCode.BAD_REQUEST)
            return None
        return frame.token

    async def _serve(self, connection: Connection, query: _Query, receive: Receive) -> None:
        settings = self.ctx.settings
        channels = query.channels
        if channels is not None:
            try:
                since, epoch = parse_resume(query.since, query.epoch)
                connection.subscribe(
                    Subscribe(
                        parse_channels(channels, max_channels=settings.max_channels), since, epoch
                    )
                )
            except ProtocolError as error:
                self._refuse(connection, error)
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if connection.closing is not None:
                continue  # closing: wait for the disconnect, read nothing more
            text = message.get("text")
            if text is None:
                self._refuse(
                    connection, ProtocolError(ErrorCode.BAD_REQUEST, "frames are JSON text")
                )
                continue
            if len(text) > settings.max_frame_bytes:
                await connection.close(CloseCode.MESSAGE_TOO_BIG)
                return
            try:
                frame = parse_client_frame(text, max_channels=settings.max_channels)
            except ProtocolError as error:
                self._refuse(connection, error)
                continue
            await self._handle(connection, frame)

    async def _handle(self, connection: Connection, frame: ClientFrame) -> None:
        if isinstance(frame, Subscribe):
            connection.subscribe(frame)
        elif isinstance(frame, Unsubscribe):
            connection.unsubscribe(frame)
        elif isinstance(frame, Ping):
            connection.ping(frame)
        else:
            await self._refresh(connection, frame)

    async def _refresh(self, connection: Connection, frame: Auth) -> None:
        """A new token on an open connection: same user, later expiry."""
        try:
            identity = await self.ctx.verifier.verify(frame.token)
        except AuthError as error:
            if error.failure is AuthFailure.UNAVAILABLE:
                self._refuse(connection, ProtocolError(ErrorCode.UNAVAILABLE, error.message))
                return
            await connection.close(_CLOSE_FOR_AUTH[error.failure])
            return
        if identity.user_id != connection.user_id:
            await connection.close(CloseCode.FORBIDDEN)
            return
        connection.authenticate(identity)

    def _refuse(self, connection: Connection, error: ProtocolError) -> None:
        connection.errors += 1
        if connection.errors > _MAX_ERRORS:
            connection.close_soon(CloseCode.BAD_REQUEST)
            return
        connection.offer_control(error_frame(error.code.value, error.message))
